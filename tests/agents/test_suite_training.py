"""Part 5 of issue 13: the suite's training configs, the generalist's scenario mix and the
benchmark's per-scenario extra policies (tiny: no training runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.benchmark.run import split_extra
from agents.training.train import also_scenarios
from agents.training.train_config import load_train_config
from agents.training.training_env import make_vec_env
from kisim.core.config import load_scenario, override
from kisim.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "configs" / "scenarios" / "suite"
TRAIN = ROOT / "configs" / "train" / "suite"
TRAINED = ["cpu-fleet", "diurnal", "flash-crowd", "gpu-fleet", "hetero"]


@pytest.mark.parametrize("name", TRAINED)
def test_each_config_trains_on_its_scenarios_own_pattern(name: str) -> None:
    cfg = load_train_config(TRAIN / f"{name}.yaml")
    sc = load_scenario(SUITE / f"{name}.yaml")
    assert cfg.envs.patterns == [sc.traffic.pattern.name]
    assert not cfg.envs.also_scenarios and sc.env.reward == "cost"


def test_trace_is_never_trained_on() -> None:
    assert not (TRAIN / "trace.yaml").exists()
    for f in TRAIN.glob("*.yaml"):
        cfg = load_train_config(f)
        assert not any("trace" in p for p in cfg.envs.also_scenarios), f


def test_generalist_mixes_scenarios_with_equal_spaces(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    cfg = load_train_config(TRAIN / "generalist.yaml")
    also = [override(s, "test", duration_s=60.0) for s in also_scenarios(cfg)]
    main = override(load_scenario(SUITE / "flash-crowd.yaml"), "test", duration_s=60.0)
    venv = make_vec_env(main, cfg.envs.patterns, 4, 0, also=also)
    venv.reset()
    pats = [e.env.pattern_name for e in venv.envs]
    assert pats == ["spike", "periodic", "spike", "periodic"]
    diurnal = load_scenario(SUITE / "diurnal.yaml")
    with pytest.raises(ConfigError, match="equal spaces"):
        make_vec_env(main, ["spike"], 2, 0, also=[diurnal])


def test_extra_policies_per_scenario() -> None:
    assert split_extra("gpu-fleet=ppo:m/a.zip") == ("gpu-fleet", "ppo:m/a.zip")
    assert split_extra("ppo:m/a.zip") == (None, "ppo:m/a.zip")
    assert split_extra("fixed:gpu=2") == (None, "fixed:gpu=2")


def test_extra_for_an_unknown_scenario_is_refused(tmp_path) -> None:
    from agents.benchmark.run import run_benchmark
    from kisim.core.errors import KisimError

    with pytest.raises(KisimError, match="no scenario 'nope'"):
        run_benchmark([SUITE / "gpu-fleet.yaml"], tmp_path / "b", runs=2, train=1,
                      extra=["nope=hpa"], progress=False)  # fmt: skip


@pytest.mark.parametrize(("trained", "base"), [
    ("suite-train/cpu-fleet-cost30.yaml", "suite/cpu-fleet.yaml"),
    ("suite-train/cpu-fleet-cost35.yaml", "suite/cpu-fleet.yaml"),
    ("suite-train/day-mix-money.yaml", "suite-train/day-mix.yaml"),
    ("suite-train/day-noise-money.yaml", "suite-train/day-noise.yaml"),
    ("suite-train/day-mix-cost50.yaml", "suite-train/day-mix.yaml"),
    ("suite-train/day-noise-cost50.yaml", "suite-train/day-noise.yaml"),
])  # fmt: skip
def test_reweighted_training_scenarios_change_only_the_money_weight(trained: str,
                                                                    base: str) -> None:
    """A model trained on one of these is played on its base scenario: nothing but the
    reward's weights may differ, or the played scenario is not the trained one."""
    root = ROOT / "configs" / "scenarios"
    a = load_scenario(root / trained).model_dump()
    b = load_scenario(root / base).model_dump()
    assert a["env"].pop("reward_weights")["cost"] > 0.25 == b["env"].pop("reward_weights").get(
        "cost", 0.25)
    for d in (a, b):
        for k in ("name", "description", "source"):
            d.pop(k, None)
    assert a == b
