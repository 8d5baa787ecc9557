"""Warm start by imitation (agents/training/imitation.py): the returns it fits, the supervised
fit itself, the teacher check, and a tiny training run with a DAgger round."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from agents.evaluation.policy_run import run_policy  # noqa: E402
from agents.training.imitation import (  # noqa: E402
    Demos,
    check_teacher,
    clone,
    demo_seeds,
    running_returns,
    value_targets,
)
from agents.training.ppo_model import new_model  # noqa: E402
from agents.training.train_config import TrainConfig  # noqa: E402
from agents.training.training_env import EVAL_SEED_BASE, TRAIN_SEED_MIN, make_vec_env  # noqa: E402
from kisim.core.config import load_scenario, override, with_pattern  # noqa: E402
from kisim.core.errors import ConfigError  # noqa: E402
from kisim.env.environment import DEFAULT_SCENARIO  # noqa: E402

TINY = {"ppo": {"n_steps": 64, "batch_size": 128},
        "envs": {"n_envs": 2, "patterns": ["ramp", "spike"]},
        "budget": {"timesteps": 256}, "evaluation": {"every_steps": 128, "seeds_per_pattern": 2},
        "convergence": {"min_evaluations": 2, "window": 2}, "checkpoints": {"every_steps": 256},
        "logging": {"figure": False}}  # fmt: skip


@pytest.fixture(scope="module")
def short():
    return override(load_scenario(DEFAULT_SCENARIO), "test", duration_s=120.0)


def test_returns_by_hand() -> None:
    r = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    ep = np.array([0, 0, 0, 1, 1])
    # to the episode's end, discounted by 0.5: 1 + 0.5*2 + 0.25*4 = 3; 2 + 0.5*4 = 4; ...
    assert value_targets(r, ep, 0.5).tolist() == [3.0, 4.0, 4.0, 16.0, 16.0]
    # VecNormalize's running return, restarted at each episode: 1; 0.5 + 2; 1.25 + 4; 8; 4 + 16
    assert running_returns(r, ep, 0.5).tolist() == [1.0, 2.5, 5.25, 8.0, 20.0]


def test_demos_add_numbers_the_new_episodes_after_the_old() -> None:
    a = Demos(np.zeros((3, 2), np.float32), np.zeros((3, 1), np.int64), np.ones(3),
              np.array([0, 0, 1]))  # fmt: skip
    b = Demos(np.ones((2, 2), np.float32), np.ones((2, 1), np.int64), np.ones(2),
              np.array([0, 1]))  # fmt: skip
    c = a + b
    assert c.episode.tolist() == [0, 0, 1, 2, 3] and c.obs.shape == (5, 2)
    assert c.episode_rewards() == [2.0, 1.0, 1.0, 1.0]


def test_demo_seeds_are_training_seeds_after_each_other() -> None:
    assert demo_seeds(0, 3) == [TRAIN_SEED_MIN, TRAIN_SEED_MIN + 1, TRAIN_SEED_MIN + 2]
    assert demo_seeds(3, 2) == [TRAIN_SEED_MIN + 3, TRAIN_SEED_MIN + 4]
    assert min(demo_seeds(0, 1000)) > EVAL_SEED_BASE + 1000  # never a held-out seed


def test_clone_learns_a_rule_of_the_observation(short) -> None:
    """Labels that are a threshold on one feature (progress): an MLP fits them nearly exactly,
    an untrained one matches only by chance (one of 5 x 5 x 3 actions for a uniform policy)."""
    cfg = TrainConfig.model_validate(TINY)
    venv = make_vec_env(short, ["ramp"], 2, 0, "rotate")
    model = new_model(cfg, venv)
    space = venv.observation_space
    rng = np.random.default_rng(0)
    obs = rng.uniform(space.low, space.high, size=(2000, space.shape[0])).astype(np.float32)
    late = obs[:, -1] > 0.5  # progress, the last feature of the default preset
    acts = np.stack([np.full(2000, 2), np.where(late, 4, 1), np.full(2000, 1)], axis=1)
    demos = Demos(obs, acts.astype(np.int64), -np.ones(2000), np.arange(2000) // 20)
    before = (np.asarray(model.predict(obs, deterministic=True)[0]) == acts).all(axis=1).mean()
    fit = clone(model, demos, lambda r: r, 30, 256, 3e-3, True, 0)
    venv.close()
    assert before < 0.5
    assert fit["action_match"] > 0.97 and fit["samples"] == 2000
    # value targets: -1 per step to the end of 20-step episodes, discounted by gamma
    assert fit["value_rmse"] < fit["value_target_std"]


def test_teacher_must_act_in_the_scenarios_action_preset(short) -> None:
    with pytest.raises(ConfigError, match="warm_start.teacher: 'hpa'"):
        check_teacher(short, "hpa")
    check_teacher(short, "threshold")


def test_cli_refuses_an_in_cluster_teacher_in_one_line_and_writes_nothing(tmp_path) -> None:
    from tests.agents.test_train import kisim_train

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("apiVersion: kisim/v1\nkind: TrainConfig\nwarm_start: {teacher: hpa}\n")
    r = kisim_train("--config", str(cfg), "--out", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    assert "warm_start.teacher: 'hpa'" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_warm_start_needs_raw_observations() -> None:
    with pytest.raises(ValueError, match="normalize.obs: false"):
        TrainConfig.model_validate({**TINY, "warm_start": {"teacher": "threshold"},
                                    "normalize": {"obs": True}})  # fmt: skip


def test_training_with_a_warm_start_and_a_dagger_round(tmp_path, short) -> None:
    from agents.training.train import train

    cfg = TrainConfig.model_validate({**TINY, "warm_start": {
        "teacher": "threshold", "episodes": 2, "epochs": 5, "dagger_rounds": 1,
        "dagger_episodes": 1}})  # fmt: skip
    out = tmp_path / "run"
    train(short, cfg, out, log=lambda m: None)
    ws = json.loads((out / "warm_start.json").read_text())
    assert ws["seeds"] == demo_seeds(0, 3) and [f["round"] for f in ws["fits"]] == [0, 1]
    assert ws["fits"][1]["samples"] > ws["fits"][0]["samples"]
    # the teacher's episodes are its `kisim eval` runs on those seeds, step for step
    for k, pattern in enumerate(["ramp", "spike"]):
        run = run_policy("threshold", with_pattern(short, pattern), demo_seeds(0, 2)[k])
        assert ws["teacher_episode_rewards"][k] == pytest.approx(run.reward, rel=1e-12)
    with np.load(out / "demos.npz") as z:
        assert sorted(set(z["episode"].tolist())) == [0, 1, 2]
        assert len(z["obs"]) == ws["fits"][1]["samples"]
    assert (out / "best_model.zip").is_file() and (out / "warm_start_clone.zip").is_file()
    # a second training seed reuses those teacher episodes (warm_start.demos): the same arrays,
    # no teacher episode played; its DAgger round is its own clone's
    again = TrainConfig.model_validate({**TINY, "seed": 1, "warm_start": {
        **cfg.warm_start.model_dump(), "demos": str(out)}})  # fmt: skip
    lines: list[str] = []
    train(short, again, tmp_path / "again", log=lines.append)
    assert not any("threshold episode" in m for m in lines)
    ws2 = json.loads((tmp_path / "again" / "warm_start.json").read_text())
    assert ws2["reused_from"] == str(out) and ws2["seeds"] == ws["seeds"]
    assert ws2["teacher_episode_rewards"] == ws["teacher_episode_rewards"]
    with np.load(out / "demos.npz") as a, np.load(tmp_path / "again" / "demos.npz") as b:
        first = a["episode"] < 2
        for k in ("obs", "actions", "rewards"):
            assert np.array_equal(a[k][first], b[k][b["episode"] < 2])


def test_reused_demos_must_be_the_same_teachers_and_are_refused_before_out(tmp_path) -> None:
    from tests.agents.test_train import kisim_train

    cfg = tmp_path / "c.yaml"
    cfg.write_text("apiVersion: kisim/v1\nkind: TrainConfig\n"
                   f"warm_start: {{teacher: threshold, demos: {tmp_path / 'nowhere'}}}\n")
    r = kisim_train("--config", str(cfg), "--out", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    assert "warm_start.demos" in r.stderr and "no config.json" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_reused_demos_that_cannot_be_read_are_one_line(tmp_path, short) -> None:
    from agents.training.imitation import reuse

    for name, text in (("config.json", "{}"), ("warm_start.json", "{not json"),
                       ("demos.npz", "not a zip")):  # fmt: skip
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match="warm_start.demos: .*unreadable"):
        reuse(short, ["ramp"], "threshold", 1, tmp_path)
