"""`kisim train --tune`: the search space, trial configs, and a tiny real Ray Tune search."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")

from agents.training.train_config import TrainConfig, load_train_config  # noqa: E402
from agents.training.training_env import EVAL_SEED_BASE, TRAIN_SEED_MIN  # noqa: E402
from agents.training.tune import SPACE, TUNE_SEED_BASE, draw_trials, trial_config  # noqa: E402

TINY = {"ppo": {"n_steps": 64, "batch_size": 64}, "envs": {"n_envs": 2, "patterns": ["ramp"]},
        "budget": {"timesteps": 128}, "evaluation": {"every_steps": 128, "seeds_per_pattern": 2},
        "convergence": {"enabled": False}, "checkpoints": {"every_steps": 100000}}  # fmt: skip


def test_draws_are_reproducible_and_inside_the_space() -> None:
    a, b = draw_trials(20, 7), draw_trials(20, 7)
    assert a == b and a != draw_trials(20, 8)
    for t in a:
        for d in SPACE:
            v = t[d.key]
            assert v in d.choices if d.choices else d.low <= v <= d.high  # type: ignore[operator]


def test_tuning_seeds_are_disjoint_from_training_and_evaluation_seeds() -> None:
    # held-out evaluation uses EVAL_SEED_BASE + k (k < seeds_per_pattern), training >= 1e6
    assert EVAL_SEED_BASE + 10_000 <= TUNE_SEED_BASE < TRAIN_SEED_MIN


def test_trial_config_applies_params_and_keeps_the_batch_valid() -> None:
    base = TrainConfig.model_validate(TINY)
    cfg = trial_config(base, {"ppo.learning_rate": 2e-4, "ppo.n_steps": 16.0,
                              "ppo.ent_coef": 0.01, "ppo.gamma": 0.95}, 999)  # fmt: skip
    assert cfg.ppo.n_steps == 16 and isinstance(cfg.ppo.n_steps, int)
    assert cfg.ppo.batch_size == 32  # shrunk to n_steps x n_envs
    assert (cfg.ppo.learning_rate, cfg.ppo.gamma, cfg.budget.timesteps) == (2e-4, 0.95, 999)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the ray extra")
def test_tiny_search_ranks_trials_and_writes_a_loadable_best_config(tmp_path: Path) -> None:
    from agents.training.tune import tune_ppo
    from kisim.core.config import load_scenario
    from kisim.core.paths import default_scenario

    sc = load_scenario(default_scenario())
    res = tune_ppo(sc, TrainConfig.model_validate(TINY), tmp_path / "t", trials=2,
                   timesteps=128, seeds_per_pattern=1, jobs=2, progress=False)  # fmt: skip
    assert [r["trial"] for r in res.rows] == [0, 1]
    assert all(r["status"] == "ok" and math.isfinite(r["score"]) for r in res.rows)
    assert res.best_score == max(r["score"] for r in res.rows)
    best = load_train_config(res.files["best"])
    assert best.ppo.learning_rate == res.best_params["ppo.learning_rate"]
    assert best.budget.timesteps == 128 and best.name == "default-tuned"
    assert (tmp_path / "t" / "trials" / "trial-001" / "model.zip").is_file()


def test_rerun_keeps_finished_trials_and_redoes_unfinished_ones(tmp_path: Path) -> None:
    from agents.training.tune import SCORE, _finished
    from kisim.core.config import load_scenario, override
    from kisim.core.errors import KisimError
    from kisim.core.paths import default_scenario
    from kisim.core.rundir import write_json

    sc = load_scenario(default_scenario())
    base = TrainConfig.model_validate(TINY)
    configs = [trial_config(base, p, 128).model_dump(mode="json") for p in draw_trials(3, 0)]
    out = tmp_path / "t"
    assert _finished(out, sc, configs, 1) == {}
    t0, t1 = out / "trials" / "trial-000", out / "trials" / "trial-001"
    t0.mkdir(parents=True)
    write_json(t0 / SCORE, {"score": 1.5, "config": configs[0]})
    t1.mkdir()
    (t1 / "model.zip").write_bytes(b"half-trained")  # interrupted: no score.json
    done = _finished(out, sc, configs, 1)
    assert list(done) == [0] and done[0]["score"] == 1.5 and not t1.exists()
    other = [trial_config(base, p, 256).model_dump(mode="json") for p in draw_trials(3, 0)]
    assert _finished(out, sc, other, 1) == {}  # another budget: trained again
    with pytest.raises(KisimError, match="another scenario"):
        _finished(out, override(sc, "test", duration_s=60.0), configs, 1)
