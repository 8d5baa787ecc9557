"""Fine-tuning (`kisim train --real`'s loop) driven on the twin backend: the loop is the
same whatever the backend, and the twin makes it fast and deterministic here. The real
backends are exercised by tests/bridge (the env on the local stack) and the CLI check."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")

from agents.training.finetune import FinetuneSettings, bounded, finetune  # noqa: E402
from kisim.core.config import load_scenario, override  # noqa: E402
from kisim.core.errors import KisimError  # noqa: E402
from kisim.env.environment import KisimEnv, default_backend  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _scenario():  # type: ignore[no-untyped-def]
    sc = load_scenario(ROOT / "configs" / "scenarios" / "default.yaml")
    return override(sc, "test", duration_s=120, **{"env.step_s": 30})  # 4 agent steps


def _model(tmp_path: Path) -> Path:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", KisimEnv(_scenario()), n_steps=8, batch_size=8, seed=0,
                device="cpu")  # fmt: skip
    model.save(tmp_path / "twin" / "best_model.zip")
    return tmp_path / "twin" / "best_model.zip"


def test_checkpoint_per_episode_resume_and_bounds(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    src = _model(tmp_path)
    st = FinetuneSettings(source=str(src), backend="twin", episodes=2,
                          max_replicas=(("cpu", 3),), patterns=("spike", "ramp"))  # fmt: skip
    out = tmp_path / "ft"
    made: list[object] = []

    def backend(_work: Path):  # type: ignore[no-untyped-def]
        b = default_backend()
        made.append(b)
        return b

    res = finetune(_scenario(), st, out, backend, echo=lambda _m: None)
    assert res.episodes_done == 2 and len(res.rewards) == 2
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["episode-1", "episode-2"]
    rows = list(csv.DictReader((out / "episodes.csv").open()))
    assert [r["pattern"] for r in rows] == ["spike", "ramp"]
    assert [float(r["reward"]) for r in rows] == pytest.approx(res.rewards)
    assert all(float(r["cpu_replica_s"]) <= 3 * 120 + 1e-9 for r in rows)  # the hard bound
    model = PPO.load(out / "model.zip")
    assert model.learning_rate == pytest.approx(1e-4) and model.n_steps == 4

    with pytest.raises(KisimError, match="holds a fine-tuning run already"):
        finetune(_scenario(), st, out, backend, echo=lambda _m: None)
    other = FinetuneSettings(**{**st.__dict__, "learning_rate": 1e-3})
    with pytest.raises(KisimError, match="other settings"):
        finetune(_scenario(), other, out, backend, resume=True, echo=lambda _m: None)
    res2 = finetune(_scenario(), st, out, backend, resume=True, echo=lambda _m: None)
    assert res2.episodes_done == 2 and len(made) == 1  # nothing left to do: nothing started
    more = FinetuneSettings(**{**st.__dict__, "episodes": 3})  # a resumed run may go on
    res3 = finetune(_scenario(), more, out, backend, resume=True, echo=lambda _m: None)
    assert res3.episodes_done == 3 and res3.rewards[:2] == res.rewards and len(made) == 2
    assert (out / "checkpoints" / "episode-3" / "model.zip").is_file()
    assert len(list(csv.DictReader((out / "episodes.csv").open()))) == 3


def test_bounds_only_lower() -> None:
    sc = _scenario()
    b = bounded(sc, [("cpu", 3), ("gpu", 5)])
    assert b.pools["cpu"].max_replicas == 3 and b.pools["gpu"].max_replicas == 2
    with pytest.raises(KisimError, match="no pool 'tpu'"):
        bounded(sc, [("tpu", 1)])
