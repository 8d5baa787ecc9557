"""`kisim train --real --backend local`: a twin-made PPO model continues on real replicas.

One real episode of 24 s (3 agent steps of 8 s) with hard bounds cpu=1: the command
writes a checkpoint and model.zip that plain `PPO.load` reads, logs the episode, never
exceeds the bound, and leaves no server process behind."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from local_stack import ROOT, needs_stack, small_scenario

from kisim.core.config import resolved_json

pytestmark = [pytest.mark.server, needs_stack]


def test_train_real_fine_tunes_on_the_local_stack(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from kisim.env.environment import KisimEnv

    sc = small_scenario(**{"env.step_s": 8})
    scen = tmp_path / "small.yaml"
    scen.write_text(resolved_json(sc))
    src = tmp_path / "twin" / "best_model.zip"
    PPO("MlpPolicy", KisimEnv(sc), n_steps=6, batch_size=6, seed=0, device="cpu").save(src)
    code = "import sys; from kisim.cli import main; sys.argv[0] = 'kisim'; main()"
    r = subprocess.run([sys.executable, "-c", code, "train", "--real", "--backend", "local",
                        "--scenario", str(scen), "--from", str(src), "--episodes", "1",
                        "--max-replicas", "cpu=1", "--out", str(tmp_path / "ft")],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = tmp_path / "ft"
    assert (out / "checkpoints" / "episode-1" / "model.zip").is_file()
    model = PPO.load(out / "model.zip")
    assert model.n_steps == 3 and model.learning_rate == pytest.approx(1e-4)
    (row,) = list(csv.DictReader((out / "episodes.csv").open()))
    assert float(row["cpu_replica_s"]) <= 24.0 + 0.5  # at most 1 CPU replica, the hard bound
    assert not (out / ".work").exists()
    assert [c.name() for c in psutil.Process().children(recursive=True)] == []
