"""`kisim benchmark`: the tuning search, the leaderboard's arithmetic, bad input, a small run."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agents.benchmark import leaderboard, tuning
from agents.benchmark.episode import label
from agents.benchmark.opponents import OPPONENTS, constant_grid
from agents.benchmark.run import run_benchmark
from kisim.core.config import load_scenario, override, resolved_json
from kisim.env.environment import DEFAULT_SCENARIO

ROOT = Path(__file__).resolve().parents[2]
SPIKE = ROOT / "configs" / "scenarios" / "patterns" / "spike.yaml"


@pytest.fixture(scope="module")
def sc():
    return override(load_scenario(DEFAULT_SCENARIO), "test", duration_s=90.0)


def test_pareto_front():
    pts = [("a", 1.0, 0.9), ("b", 2.0, 0.95), ("c", 2.5, 0.9), ("d", 3.0, 0.99), ("e", 0.5, 0.5)]
    assert leaderboard.pareto_front(pts) == ["e", "a", "b", "d"]  # c: b is cheaper and better


def test_cost_without_a_money_column(sc):
    # default prices per replica-hour: GPU 4, CPU 1 -> 4 x 1 h + 1 x 2 h = 6 per 1e6 requests
    s = {"gpu_replica_s": 3600.0, "cpu_replica_s": 7200.0, "served": 1e6,
         "slo_violation_rate": 0.02, "p95_ms": 50.0, "episode_reward": 1.0}  # fmt: skip
    m, src = leaderboard.run_metrics(s, sc)
    assert src == "relative prices"
    assert m["cost_per_mreq"] == pytest.approx(6.0) and m["slo_attainment"] == pytest.approx(0.98)
    m, src = leaderboard.run_metrics({**s, "cost_per_million": 3.5, "slo_attainment": 0.9}, sc)
    assert (src, m["cost_per_mreq"], m["slo_attainment"]) == ("summary", 3.5, 0.9)


def test_grids_hold_the_upstream_defaults(sc):
    assert "ray:2:30:600" in OPPONENTS["ray"].grid(sc)  # Ray's documented defaults
    assert "triton-hpa:50:300" in OPPONENTS["triton-hpa"].grid(sc)  # NVIDIA's chart, K8s 300 s
    assert "hpa:0.6:300" in OPPONENTS["hpa"].grid(sc)
    assert constant_grid(sc)[:3] == ["static", "fixed:gpu=1", "fixed:gpu=2"]


def test_tuning_on_training_seeds_is_reused(sc, tmp_path):
    data = json.loads(resolved_json(sc))
    grid = ["hpa:0.3:30", "hpa:0.6:30", "hpa:0.9:30", "fixed:gpu=1"]
    seeds = tuning.train_seeds(3)
    assert min(seeds) >= tuning.TRAIN_SEED0
    r = tuning.tune(data, label(sc), "hpa", grid, seeds, tmp_path, "fp", progress=False)
    assert r["rungs"][0]["seeds"] == seeds[:2] and len(r["rungs"][0]["candidates"]) == 4
    assert len(r["rungs"][1]["candidates"]) == 3  # the best third, at least three
    assert r["chosen"] == max(r["rungs"][1]["candidates"], key=lambda c: c["mean_reward"])["spec"]
    seeds_run = {json.loads(p.read_text())["seed"] for p in tmp_path.rglob("summary.json")}
    assert seeds_run == set(seeds)  # training seeds only
    mtime = (tmp_path / "tuning.json").stat().st_mtime_ns
    again = tuning.tune(data, label(sc), "hpa", grid, seeds, tmp_path, "fp", progress=False)
    assert again == r and (tmp_path / "tuning.json").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("args,msg", [
    (["--scenarios", "/nonexistent.yaml"], "no such file or folder"),
    (["--scenarios", str(SPIKE), "--runs", "1"], "--runs 1"),
    (["--scenarios", str(SPIKE), "--opponents", "keda"], "must include hpa"),
    (["--scenarios", str(SPIKE), "--opponents", "hpa,nope"], "unknown 'nope'"),
    (["--scenarios", str(SPIKE), "--runs", "3", "--oracle-runs", "4"], "--oracle-runs 4"),
])  # fmt: skip
def test_bad_input_is_one_line_exit_2(args, msg, tmp_path):
    code = "import sys; from kisim.cli import main; sys.argv[0] = 'kisim'; main()"
    r = subprocess.run([sys.executable, "-c", code, "benchmark", "--out",
                        str(tmp_path / "o"), *args], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_small_benchmark_end_to_end(tmp_path):
    out = tmp_path / "bm"
    res = run_benchmark([SPIKE], out, runs=3, train=1, jobs=1, opponents=["hpa", "ray"],
                        oracle=True, oracle_runs=2, duration=60.0, progress=False)  # fmt: skip
    for f in ("leaderboard.md", "leaderboard.tex", "leaderboard.html", "leaderboard.csv",
              "tuned.json", "figures/pareto-spike.png", "figures/pareto-spike.pdf"):
        assert (out / f).is_file(), f
    page = (out / "leaderboard.html").read_text()
    assert "data:image/png;base64," in page
    b = res.boards[0]
    assert b.best_rule in (b.tuned["hpa"], b.tuned["ray"])
    roles = {e.role for e in b.entries}
    assert {"best constant", "tuned hpa", "untuned ray", "oracle"} <= roles
    # the oracle on its own seeds (0, 1), in its own folder; everything else on 0..2
    assert {s for e in b.entries for s in e.seeds["episode_reward"]} == {0, 1, 2}
    assert set(next(e for e in b.entries if e.role == "oracle").seeds["episode_reward"]) == {0, 1}
    assert (out / "spike" / "oracle" / "eval.json").is_file()
    # seeds.csv holds what the statistics were computed from: one row per policy and seed
    with (out / "seeds.csv").open() as f:
        per_seed = list(csv.DictReader(f))
    assert len(per_seed) == sum(len(e.seeds["episode_reward"]) for e in b.entries)
    hpa_rewards = [float(r["episode_reward"]) for r in per_seed if r["policy"] == b.hpa]
    hpa_row = next(r for r in b.rows if r["policy"] == b.hpa)
    assert sum(hpa_rewards) / len(hpa_rewards) == pytest.approx(hpa_row["episode_reward"])
    # two pools: each rule is tuned with its setup (placement), the untuned one runs without
    tuned = json.loads((out / "spike" / "tuned.json").read_text())["tuned"]
    assert "@" in b.tuned["hpa"] and tuned["hpa"]["steps"]["final"] == b.tuned["hpa"]
    assert tuned["hpa"]["setups"] == ["prefer-gpu", "balanced", "prefer-cpu"]
    # resumable: a rerun runs nothing new
    n = len(list(out.rglob("summary.json")))
    run_benchmark([SPIKE], out, runs=3, train=1, opponents=["hpa", "ray"], oracle=True,
                  oracle_runs=2, duration=60.0, progress=False)  # fmt: skip
    assert len(list(out.rglob("summary.json"))) == n
