"""PPO training: the stopping rule, the training envs, the config, and tiny end-to-end runs
(a few hundred steps: outputs, plain PPO.load, resume, Ctrl-C, `ppo:PATH` in eval)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from agents.training.convergence import ConvergenceRule, EvalRecord  # noqa: E402
from agents.training.train_config import DEFAULT_TRAIN_CONFIG, TrainConfig, load_train_config  # noqa: E402
from agents.training.training_env import (  # noqa: E402
    EVAL_SEED_BASE,
    TRAIN_SEED_MIN,
    RandomizedBackend,
    Ranges,
    TrainingEnv,
    draw_factors,
    perturb,
)
from kisim.core.config import load_scenario, override  # noqa: E402
from kisim.core.errors import ConfigError, KisimError  # noqa: E402
from kisim.env.environment import DEFAULT_SCENARIO, KisimEnv  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = {"ppo": {"n_steps": 64, "batch_size": 128},
        "envs": {"n_envs": 2, "patterns": ["ramp", "spike"]},
        "budget": {"timesteps": 500}, "evaluation": {"every_steps": 256, "seeds_per_pattern": 2},
        "convergence": {"min_evaluations": 2, "window": 2},
        "checkpoints": {"every_steps": 256}}  # fmt: skip


def rec(i: int, rewards: list[float], kl: float = 1e-4, drift: float = 0.0) -> EvalRecord:
    nan = math.nan
    return EvalRecord(i, 1000 * (i + 1), float(i), rewards, kl if i else nan, drift if i else nan)


# --------------------------------------------------------------------------- stopping rule


def test_rule_stops_on_plateau_with_stable_policy() -> None:
    base = [5.0, 6.0, 7.0, 5.5]
    h = [rec(i, [r + 1e-3 * i for r in base]) for i in range(6)]
    d = ConvergenceRule(window=4, min_evaluations=6).check(h)
    assert d.stop and d.plateau and d.stable and "converged" in d.reason


def test_rule_keeps_going_while_improving_or_moving() -> None:
    rule = ConvergenceRule(window=4, min_evaluations=4)
    rising = [rec(i, [5.0 + 0.5 * i + e for e in (0.0, 0.1, -0.1, 0.05)]) for i in range(4)]
    d = rule.check(rising)
    assert not d.stop and not d.plateau and "still improving" in d.reason
    flat_but_moving = [rec(i, [5.0, 6.0], kl=0.05) for i in range(4)]
    d = rule.check(flat_but_moving)
    assert not d.stop and d.plateau and not d.stable and "policy still moving" in d.reason
    drifting = [rec(i, [5.0, 6.0], drift=0.1) for i in range(4)]
    assert not rule.check(drifting).stop


def test_rule_needs_enough_evaluations_and_steps() -> None:
    h = [rec(i, [5.0, 6.0]) for i in range(5)]
    assert not ConvergenceRule(window=4, min_evaluations=6).check(h).stop
    assert not ConvergenceRule(window=4, min_evaluations=2, min_timesteps=10**6).check(h).stop
    assert ConvergenceRule(window=4, min_evaluations=2).check(h).stop


def test_rule_noise_inside_the_interval_is_no_improvement() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(6, 1, 20)
    h = [rec(i, list(base + rng.normal(0, 0.05, 20))) for i in range(4)]
    d = ConvergenceRule(window=4, min_evaluations=4, min_delta=0.0).check(h)
    assert d.improvement <= d.half_width and d.stop


def test_eval_record_json_round_trip() -> None:
    r = rec(3, [1.0, 2.0], kl=0.01, drift=0.25)
    r.extra["patterns"] = {"ramp": {"reward": 1.0}}
    back = EvalRecord.from_json(json.loads(json.dumps(r.to_json())))
    assert back.to_json() == r.to_json()
    first = EvalRecord.from_json({**rec(0, [1.0]).to_json(), "kl": None, "drift": None})
    assert math.isnan(first.kl)


# --------------------------------------------------------------------------- envs


@pytest.fixture(scope="module")
def sc():
    return load_scenario(DEFAULT_SCENARIO)


@pytest.fixture(scope="module")
def short(sc):
    return override(sc, "test", duration_s=60.0)


def test_rotation_gives_equal_shares_and_training_seeds(short) -> None:
    pats = ["ramp", "spike", "periodic", "random"]
    seen: list[str] = []
    seeds: list[int] = []
    for i in range(2):
        env = TrainingEnv(KisimEnv(short, patterns=pats), pats, "rotate", index=i, n_envs=2)
        for k in range(4):
            _, info = env.reset(seed=7 if k == 0 else None)
            seen.append(info["pattern"])
            seeds.append(info["twin_seed"])
    assert sorted(seen) == sorted(pats * 2)
    assert all(TRAIN_SEED_MIN <= s < 2**31 - 1 for s in seeds) and len(set(seeds)) == len(seeds)
    assert EVAL_SEED_BASE + 1000 < TRAIN_SEED_MIN


def test_training_env_state_continues_the_stream(short) -> None:
    pats = ["ramp", "spike"]
    a = TrainingEnv(KisimEnv(short, patterns=pats), pats, "sample", index=0, n_envs=1)
    a.reset(seed=3)
    st = a.get_state()
    want = [a.reset()[1]["twin_seed"] for _ in range(3)]
    b = TrainingEnv(KisimEnv(short, patterns=pats), pats, "sample", index=0, n_envs=1)
    b.set_state(json.loads(json.dumps(st)))
    # the seed SB3 passes to the first reset after a restore is ignored
    got = [b.reset(seed=3 if k == 0 else None)[1]["twin_seed"] for k in range(3)]
    assert got == want


def test_bad_schedule_is_a_config_error(short) -> None:
    with pytest.raises(ConfigError, match="schedule"):
        TrainingEnv(KisimEnv(short), ["ramp"], "shuffle")


def test_domain_randomisation_factors_and_effect(short) -> None:
    r = Ranges(service_time=(0.5, 2.0), startup=(0.5, 2.0), scrape_interval=(1.0, 1.0))
    f = draw_factors(r, 11)
    assert f == draw_factors(r, 11) and f != draw_factors(r, 12)
    assert 0.5 <= f["service_time"] <= 2.0 and f["scrape_interval"] == 1.0
    p = perturb(short, {"service_time": 2.0, "startup": 0.5, "scrape_interval": 1.5})
    for name, d in p.calibration.devices.items():
        d0 = short.calibration.devices[name]
        assert d.service.base_ms == pytest.approx(2 * d0.service.base_ms)
        assert d.startup.model_load_s == pytest.approx(0.5 * d0.startup.model_load_s)
    assert p.metrics.scrape_interval_s == pytest.approx(1.5 * short.metrics.scrape_interval_s)
    assert short.calibration.devices["desktop-cpu"].service.base_ms == 9.0  # original untouched

    from kisim.env.environment import default_backend

    slow = Ranges(service_time=(3.0, 3.0))

    def mean_p95(backend):
        env = KisimEnv(short, backend, patterns=["ramp"])
        env.reset(seed=5)
        out = [env.step(env.hold())[4]["window"].latency_p95_ms for _ in range(2)]
        return float(np.mean(out))

    assert mean_p95(RandomizedBackend(default_backend(), slow)) > mean_p95(default_backend())


# --------------------------------------------------------------------------- config


def test_default_config_loads_and_every_key_is_commented() -> None:
    cfg = load_train_config()
    seed_plan = TrainConfig().ppo  # the schema's defaults are the seed plan's values
    assert (seed_plan.learning_rate, seed_plan.gamma, seed_plan.gae_lambda, seed_plan.clip_range) \
        == (3e-4, 0.99, 0.95, 0.2)  # fmt: skip
    assert (cfg.ppo.gamma, cfg.ppo.gae_lambda, cfg.ppo.clip_range) == (0.99, 0.95, 0.2)
    for line in DEFAULT_TRAIN_CONFIG.read_text().splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            assert "#" in s, f"uncommented key: {line}"
    tuned = {k for k, v in cfg.ppo.model_dump().items() if v != seed_plan.model_dump()[k]}
    assert tuned == {"learning_rate", "n_steps", "batch_size"}  # as docs/training.md says


@pytest.mark.parametrize(("text", "needle"), [
    ("ppo: {learning_rat: 0.1}", "ppo.learning_rat"),
    ("ppo: {gamma: 1.5}", "ppo.gamma"),
    ("envs: {patterns: [ramp, nope]}", "unknown pattern 'nope'"),
    ("evaluation: {baseline: nope}", "unknown policy 'nope'"),
    ("ppo: {batch_size: 4096}", "batch_size"),
    ("kind: Scenario", "kind"),
])  # fmt: skip
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(f"apiVersion: kisim/v1\nkind: TrainConfig\n{text}\n")
    with pytest.raises(ConfigError, match="bad.yaml") as e:
        load_train_config(p)
    assert needle in str(e.value)


def test_config_extends_another_and_overrides_apply_on_top(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("apiVersion: kisim/v1\nkind: TrainConfig\nname: base\n"
                    "ppo: {gamma: 0.9, n_steps: 64}\nbudget: {timesteps: 5000}\n")  # fmt: skip
    (tmp_path / "sub").mkdir()
    top = tmp_path / "sub" / "top.yaml"
    top.write_text("extends: ../base.yaml\nname: top\nppo: {gamma: 0.95}\n")
    cfg = load_train_config(top, **{"budget.timesteps": 7000})
    assert (cfg.name, cfg.ppo.gamma, cfg.ppo.n_steps) == ("top", 0.95, 64)
    assert cfg.budget.timesteps == 7000
    assert cfg.ppo.net_arch == TrainConfig().ppo.net_arch  # neither file says: the schema's
    base.write_text("extends: sub/top.yaml\n")
    with pytest.raises(ConfigError, match="extends: cycle"):
        load_train_config(top)


def test_suite_variants_written_with_extends_still_give_their_models_configs() -> None:
    """Each variant states only what it changes over its base; loaded, it is still exactly the
    configuration its committed models were trained with (config.json; `--seed` and the
    free-text description aside; a group or field added to the schema since, like `warm_start`
    or `warm_start.demos`, has its default there: off)."""
    later = TrainConfig().model_dump(mode="json")
    trained = {}
    for m in (ROOT / "results" / "benchmark" / "models").glob("*/config.json"):
        train = json.loads(m.read_text())["train"]
        trained.setdefault(train["name"], []).append(train)
    variants = [f for f in (ROOT / "configs" / "train" / "suite").glob("*.yaml")
                if "\nextends:" in f.read_text()]
    assert len(variants) >= 10
    for f in variants:
        cfg = load_train_config(f).model_dump(mode="json")
        assert trained.get(cfg["name"]), f
        for train in trained[cfg["name"]]:
            then = {k: {**v, **train.get(k, {})} if isinstance(v, dict) else train.get(k, v)
                    for k, v in later.items()}  # fmt: skip
            assert {**then, "seed": cfg["seed"], "description": cfg["description"]} == cfg, f


# --------------------------------------------------------------------------- tiny runs


def tiny_cfg(**over) -> TrainConfig:
    data = json.loads(json.dumps(TINY))
    for k, v in over.items():
        data.setdefault(k.split(".")[0], {})[k.split(".")[1]] = v
    return TrainConfig.model_validate(data)


@pytest.fixture(scope="module")
def run(tmp_path_factory, sc):
    from agents.training.train import train

    out = tmp_path_factory.mktemp("train") / "run"
    res = train(sc, tiny_cfg(), out, scenario_file=str(DEFAULT_SCENARIO), log=lambda m: None)
    return out, res


def test_tiny_run_writes_everything(run) -> None:
    out, res = run
    for f in ("config.json", "model.zip", "best_model.zip", "vecnormalize.pkl", "progress.csv",
              "evaluations.json", "eval_baseline.json", "stopped.json", "training_progress.png",
              "training_progress.pdf"):  # fmt: skip
        assert (out / f).is_file(), f
    assert res.timesteps >= 500 and res.stop_kind in ("timesteps", "converged")
    stopped = json.loads((out / "stopped.json").read_text())
    assert stopped["kind"] == res.stop_kind and stopped["reason"]
    assert stopped["best"]["timesteps"] > 0 and "steps_per_s" in stopped["speed"]
    evals = json.loads((out / "evaluations.json").read_text())
    assert len(evals) >= 2 and len(evals[0]["rewards"]) == 4  # 2 patterns x 2 seeds
    assert set(evals[-1]["patterns"]) == {"ramp", "spike"}
    assert max(e["mean_reward"] for e in evals) == pytest.approx(stopped["best"]["mean_reward"])
    cks = sorted((out / "checkpoints").glob("step-*"))
    assert cks and all((c / "state.json").is_file() and (c / "model.zip").is_file() for c in cks)
    assert not list((out / "checkpoints").glob(".tmp-*"))
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["format"] == "kisim-train/1" and cfg["train"]["ppo"]["n_steps"] == 64


def test_models_load_with_plain_ppo_load(run) -> None:
    from stable_baselines3 import PPO

    out, _ = run
    for name in ("model.zip", "best_model.zip"):
        m = PPO.load(str(out / name), device="cpu")
        a, _ = m.predict(np.zeros(10, np.float32), deterministic=True)
        assert a.shape == (3,)


def test_ppo_in_eval_matches_the_training_evaluation(run, sc) -> None:
    """`kisim eval`'s ppo:PATH (run_policy) scores the best model exactly as training did."""
    from agents.evaluation.policy_run import run_policy
    from kisim.core.config import with_pattern

    out, _ = run
    evals = json.loads((out / "evaluations.json").read_text())
    best = next(e for e in reversed(evals) if e["best"])
    r = run_policy(f"ppo:{out / 'best_model.zip'}", with_pattern(sc, "ramp"), EVAL_SEED_BASE)
    assert r.reward == pytest.approx(best["rewards"][0], abs=1e-9)


def test_fresh_run_refuses_a_used_out_and_resume_needs_a_checkpoint(run, sc, tmp_path) -> None:
    from agents.training.train import train

    out, _ = run
    with pytest.raises(KisimError, match="--resume"):
        train(sc, tiny_cfg(), out, log=lambda m: None)
    (tmp_path / "x").mkdir()
    with pytest.raises(KisimError, match="no checkpoint"):
        train(sc, tiny_cfg(), tmp_path / "x", resume=True, log=lambda m: None)


def _steps(out: Path) -> list[int]:
    with (out / "progress.csv").open() as f:
        return [int(float(r["time/total_timesteps"])) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_interrupt_saves_and_resume_continues(tmp_path, sc, monkeypatch) -> None:
    from agents.training import callbacks
    from agents.training.train import resolve_run, train

    out = tmp_path / "run"
    cfg = tiny_cfg(**{"budget.timesteps": 900})
    orig = callbacks.EpisodeKPIs._on_step

    def boom(self):
        if self.num_timesteps >= 600:
            raise KeyboardInterrupt
        return orig(self)

    monkeypatch.setattr(callbacks.EpisodeKPIs, "_on_step", boom)
    res = train(sc, cfg, out, log=lambda m: None)
    assert res.stop_kind == "interrupted"
    assert json.loads((out / "stopped.json").read_text())["kind"] == "interrupted"
    assert (out / "model.zip").is_file()
    ck = sorted((out / "checkpoints").glob("step-*"))[-1]
    assert int(ck.name.split("-")[1]) == 600
    monkeypatch.setattr(callbacks.EpisodeKPIs, "_on_step", orig)
    sc2, cfg2, _ = resolve_run(out, True, None, None, None, 1200, None)
    assert cfg2.budget.timesteps == 1200 and cfg2.ppo.n_steps == 64
    res2 = train(sc2, cfg2, out, resume=True, log=lambda m: None)
    assert res2.timesteps >= 1200 and res2.stop_kind != "interrupted"
    steps = _steps(out)
    assert steps == sorted(set(steps))  # no row repeated by the resume
    evals = json.loads((out / "evaluations.json").read_text())
    assert [e["index"] for e in evals] == list(range(len(evals)))
    assert all(math.isfinite(e["kl"]) for e in evals[1:])  # KL continues across the resume
    with pytest.raises(ConfigError, match="--seed"):
        resolve_run(out, True, None, None, None, None, 5)


# --------------------------------------------------------------------------- CLI


CLI = """
import importlib, sys
m = importlib.import_module("kisim.cli.app")
from kisim.cli import train
orig = m._register
def reg():
    orig()
    if "train" not in [c.name for c in m.app.registered_commands]:
        train.register(m.app)
m._register = reg
sys.argv[0] = "kisim"
m.main()
"""


def kisim_train(*args: str) -> subprocess.CompletedProcess[str]:
    """`kisim train ...` in a subprocess (registers the command if app.py does not yet)."""
    return subprocess.run([sys.executable, "-c", CLI, "train", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)  # fmt: skip


@pytest.mark.parametrize(("args", "needle"), [
    (["--scenario", "/no/such.yaml"], "/no/such.yaml: no such"),
    (["--config", "/no/such.yaml"], "/no/such.yaml: no such file"),
    (["--patterns", "ramp,nope"], "unknown pattern 'nope'"),
    (["--resume"], "no config.json"),
])  # fmt: skip
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, needle) -> None:
    r = kisim_train("--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
