"""The harness end to end on synthetic episodes: parallel, resumable, failure-tolerant."""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from agents.evaluation import report
from agents.evaluation.harness import evaluate
from kisim.core.errors import KisimError
from kisim.core.rundir import is_complete, read_summary, run_path, write_run
from kisim.core.summary import SUMMARY_KEYS, latency_histogram
from kisim.core.window import Window

EFFECT_MS = {"hpa": 0.0, "oracle": -15.0, "ppo:/models/x.zip": 4.0}
PATTERNS = ["ramp", "spike"]
N_WIN = 8


def synth_episode(
    policy: str, pattern: str, seed: int, run_dir: Path,
    fail: tuple[str, int] | None = None, crash: tuple[str, int] | None = None,
    calls: list | None = None,
) -> None:  # fmt: skip
    """Deterministic synthetic run: a seed effect shared by all policies (CRN) + policy effect."""
    if calls is not None:
        calls.append((policy, pattern, seed))
    if fail == (policy, seed):
        raise ValueError(f"synthetic failure of {policy} seed {seed}")
    if crash == (policy, seed):
        os._exit(3)  # a worker dying without an exception
    crn = np.random.default_rng([seed, zlib.crc32(pattern.encode())])
    own = np.random.default_rng([seed, zlib.crc32(pattern.encode()), zlib.crc32(policy.encode())])
    level = 20 + 10 * crn.random(N_WIN)
    p95 = 80 + EFFECT_MS.get(policy, 0.0) + 5 * crn.standard_normal() + own.normal(0, 1, N_WIN)
    gpu = 1 + (policy == "oracle") * np.arange(N_WIN) % 3
    windows = [
        Window.from_dict(dict(t_start=15.0 * i, t_end=15.0 * (i + 1), load_level=float(level[i]), offered=100,
               served=98, errors=2, throughput_rps=98 / 15, latency_mean_ms=p95[i] / 2,
               latency_p50_ms=p95[i] / 2, latency_p95_ms=float(p95[i]), latency_p99_ms=p95[i] * 1.3,
               queue_wait_ms=1.0, slo_violations=3, cpu_util=0.5, mem_util=0.3,
               gpu_util=math.nan if i == 0 else 0.6, gpu_desired=int(gpu[i]), gpu_ready=int(gpu[i]),
               gpu_pending=0, cpu_desired=1, cpu_ready=1, cpu_pending=0,
               gpu_replica_s=15.0 * gpu[i], cpu_replica_s=15.0, pending_pod_s=0.0,
               queue_length=0, mean_batch_size=1.5, placement="balanced"))
        for i in range(N_WIN)
    ]  # fmt: skip
    summary: dict[str, object] = {k: float(own.random()) for k in SUMMARY_KEYS}
    summary.update(p95_ms=float(p95.mean()), slo_violation_rate=0.03 + 0.001 * float(p95.mean()),
                   gpu_replica_s=sum(w.gpu_replica_s for w in windows), cpu_replica_s=15.0 * N_WIN,
                   duration_s=15.0 * N_WIN, mean_batch_size=math.nan)  # fmt: skip
    summary.update(policy=policy, pattern=pattern, seed=seed, scenario="synthetic", backend="fake")
    lat = own.lognormal(np.log(p95.mean() / 2), 0.4, 500) / 1000.0
    config = {"name": "synthetic", "slo_ms": 100.0, "traffic": {"mode": "closed"},
              "policy": policy, "pattern": pattern, "seed": seed, "backend": "fake"}  # fmt: skip
    write_run(run_dir, config, windows, summary, latency_histogram(lat))


def _no_write(policy: str, pattern: str, seed: int, run_dir: Path) -> None:
    """An episode that forgets to write its run."""


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


POLICIES = list(EFFECT_MS)


def test_end_to_end_parallel_outputs_parse(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    res = evaluate(POLICIES, PATTERNS, [0, 1, 2, 3], out, synth_episode, jobs=2, progress=False,
                   fingerprint="abc", meta={"scenario": "synthetic.yaml"})  # fmt: skip
    assert res.ok and res.ran == 24 and res.skipped == 0
    summ = _csv(out / "summary.csv")
    assert list(summ[0]) == ["policy", "pattern", "metric", "mean", "std", "ci95_low",
                             "ci95_high", "n"]  # fmt: skip
    n_metrics = len(SUMMARY_KEYS) + 1  # + derived replica_s
    assert len(summ) == len(POLICIES) * len(PATTERNS) * n_metrics
    # the spec with ':' and '/' keeps its display name but lives in a safe directory
    assert {r["policy"] for r in summ} == set(POLICIES)
    d = run_path(out, "ppo:/models/x.zip", "ramp", 0)
    assert is_complete(d) and ":" not in d.parent.parent.name
    assert read_summary(d)["policy"] == "ppo:/models/x.zip"
    # summary.csv means equal the mean over seeds of summary.json values
    vals = [read_summary(run_path(out, "oracle", "spike", s))["p95_ms"] for s in range(4)]
    row = next(r for r in summ if (r["policy"], r["pattern"], r["metric"]) ==
               ("oracle", "spike", "p95_ms"))  # fmt: skip
    assert float(row["mean"]) == pytest.approx(np.mean(vals)) and row["n"] == "4"
    nb = next(r for r in summ if r["metric"] == "mean_batch_size")  # NaN in every run
    assert nb["n"] == "0" and nb["mean"] == "nan" and math.isnan(float(nb["ci95_low"]))
    sig = _csv(out / "significance.csv")
    assert {r["reference"] for r in sig} == {"hpa"} and "hpa" not in {r["policy"] for r in sig}
    p = next(r for r in sig if (r["policy"], r["pattern"], r["metric"]) ==
             ("oracle", "ramp", "p95_ms"))  # fmt: skip
    assert float(p["paired_p_holm"]) < 0.01 and float(p["rel_change"]) < 0
    for f in ("report.md", "table.tex", "eval.json"):
        assert (out / f).is_file()
    man = json.loads((out / "eval.json").read_text())
    assert man["status"] == "complete" and man["fingerprint"] == "abc"
    for name in ("timeseries_ramp", "timeseries_spike", "metrics_ci", "latency_cdf", "tradeoff"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (out / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    md = (out / "report.md").read_text()
    assert "ppo:x" in md and "figures/tradeoff.png" in md and "n = 4" in md
    # render reproduces the CSVs byte for byte from the run directories
    before = {f: (out / f).read_bytes() for f in ("summary.csv", "significance.csv")}
    report.render(out, figures=False)
    assert before == {f: (out / f).read_bytes() for f in before}
    # a rerun with another scenario fingerprint must not mix runs
    with pytest.raises(KisimError, match="different scenario"):
        evaluate(POLICIES, PATTERNS, [0], out, synth_episode, progress=False, fingerprint="zzz")


def test_resume_skips_complete_runs(tmp_path: Path) -> None:
    calls: list = []
    ep = functools.partial(synth_episode, calls=calls)
    out = tmp_path / "ev"
    evaluate(["hpa", "oracle"], ["ramp"], [0, 1], out, ep, progress=False, figures=False)
    assert len(calls) == 4
    (run_path(out, "oracle", "ramp", 1) / "summary.json").unlink()  # as if killed mid-run
    calls.clear()
    res = evaluate(["hpa", "oracle"], ["ramp"], [0, 1, 2], out, ep, progress=False, figures=False)
    assert sorted(calls) == [("hpa", "ramp", 2), ("oracle", "ramp", 1), ("oracle", "ramp", 2)]
    assert (res.ran, res.skipped) == (3, 3)
    assert {r["n"] for r in _csv(out / "summary.csv") if r["metric"] != "mean_batch_size"} == {"3"}


def test_every_call_on_a_folder_is_kept_in_the_manifest(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    evaluate(["hpa", "oracle"], ["ramp"], [0, 1], out, synth_episode, progress=False,
             figures=False)  # fmt: skip
    man = json.loads((out / "eval.json").read_text())
    man.pop("calls")  # as eval.json was written before it kept its calls
    (out / "eval.json").write_text(json.dumps(man))
    evaluate(["hpa", "oracle"], ["ramp"], [0, 1, 2], out, synth_episode, progress=False,
             figures=False)  # fmt: skip
    evaluate(["hpa", "oracle"], ["ramp"], [0, 1, 2], out, synth_episode, progress=False)
    man = json.loads((out / "eval.json").read_text())
    assert [(c["ran"], c["skipped"]) for c in man["calls"]] == [(4, 0), (2, 4), (0, 6)]
    assert "started_utc" not in man["calls"][0] and man["calls"][2]["status"] == "complete"
    assert (man["ran"], man["skipped"]) == (0, 6)  # the top level is the last call's
    assert "3 calls on this folder ran 4 (time not recorded), 2 (" in (
        out / "report.md").read_text()  # fmt: skip


def test_failing_run_does_not_lose_the_others(tmp_path: Path) -> None:
    out = tmp_path / "ev"
    ep = functools.partial(synth_episode, fail=("oracle", 1))
    res = evaluate(["hpa", "oracle"], PATTERNS, [0, 1, 2], out, ep, jobs=2, progress=False,
                   figures=False)  # fmt: skip
    assert res.ran == 10 and len(res.failed) == 2
    assert {(f.policy, f.pattern, f.seed) for f in res.failed} == {
        ("oracle", p, 1) for p in PATTERNS
    }
    assert "synthetic failure" in res.failed[0].error
    bad = run_path(out, "oracle", "ramp", 1)
    assert not is_complete(bad) and "ValueError" in (bad / "error.txt").read_text()
    man = json.loads((out / "eval.json").read_text())
    assert man["status"] == "incomplete" and len(man["failed"]) == 2
    assert "failed" in (out / "report.md").read_text()
    # paired tests use the 2 matched seeds, unpaired ones all runs
    sig = _csv(out / "significance.csv")
    r = next(r for r in sig if r["metric"] == "p95_ms")
    assert (r["n"], r["n_ref"], r["n_pairs"]) == ("2", "3", "2")
    # the rerun retries exactly the failed runs
    res = evaluate(["hpa", "oracle"], PATTERNS, [0, 1, 2], out, synth_episode, progress=False,
                   figures=False)  # fmt: skip
    assert res.ok and (res.ran, res.skipped) == (2, 10)
    assert not (bad / "error.txt").exists()


def test_worker_crash_is_isolated(tmp_path: Path) -> None:
    ep = functools.partial(synth_episode, crash=("oracle", 0))
    res = evaluate(["hpa", "oracle"], ["ramp"], [0, 1], tmp_path / "ev", ep, jobs=2,
                   progress=False, figures=False)  # fmt: skip
    assert [(f.policy, f.seed) for f in res.failed] == [("oracle", 0)]
    assert "died" in res.failed[0].error and res.ran == 3


def test_episode_that_writes_nothing_is_a_failure(tmp_path: Path) -> None:
    res = evaluate(["hpa"], ["ramp"], [0], tmp_path / "ev", _no_write, progress=False)
    assert len(res.failed) == 1 and "summary.json" in res.failed[0].error
    assert not (tmp_path / "ev" / "summary.csv").exists()


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(KisimError, match=r"file/out: not writable"):
        evaluate(["hpa"], ["ramp"], [0], blocker / "out", synth_episode, progress=False)
    with pytest.raises(KisimError, match="not a directory"):
        evaluate(["hpa"], ["ramp"], [0], blocker, synth_episode, progress=False)
    with pytest.raises(KisimError, match="reference policy 'hpa'"):
        evaluate(["kpa"], ["ramp"], [0], tmp_path / "o", synth_episode, progress=False)
    with pytest.raises(KisimError, match="repeat"):
        evaluate(["hpa", "hpa"], ["ramp"], [0], tmp_path / "o", synth_episode, progress=False)
    with pytest.raises(TypeError, match="picklable"):
        evaluate(["hpa"], ["ramp"], [0, 1], tmp_path / "o", lambda *a: None, jobs=2,
                 progress=False)  # fmt: skip


def test_first_seed_runs_the_held_out_seeds_only(tmp_path: Path) -> None:
    """`kisim eval --first-seed`: model choice on training's held-out seeds (100000..) must not
    touch the evaluation seeds 0.. that the report is made on, and a seed is the same run
    whichever block it is in."""
    from agents.evaluation.run import run_eval
    from kisim.core.paths import default_scenario

    def run(first: int, runs: int, out: Path) -> dict[int, dict]:
        run_eval(default_scenario(), ["hpa"], ["ramp"], runs, out, 1, 60.0, None,
                 first_seed=first)  # fmt: skip
        seeds = list(range(first, first + runs))
        got = sorted(p.name for p in (out / "runs" / "hpa" / "ramp").iterdir())
        assert got == sorted(f"seed-{s}" for s in seeds)
        assert json.loads((out / "eval.json").read_text())["seeds"] == seeds
        return {s: read_summary(run_path(out, "hpa", "ramp", s)) for s in seeds}

    held = run(100000, 2, tmp_path / "held")
    one = run(100001, 1, tmp_path / "one")
    assert one[100001] == held[100001]
    assert held[100000] != held[100001]


def test_a_retrained_model_is_not_taken_for_its_stored_runs(tmp_path: Path) -> None:
    """Runs are named after the spec; the model's bytes decide whether they are still its."""
    model = tmp_path / "m" / "best_model.zip"
    model.parent.mkdir()
    model.write_bytes(b"first model")
    spec, out = f"ppo:{model}", tmp_path / "ev"
    evaluate(["hpa", spec], ["ramp"], [0, 1], out, synth_episode, progress=False, figures=False)
    man = json.loads((out / "eval.json").read_text())
    assert set(man["models"]) == {spec}
    calls: list = []
    ep = functools.partial(synth_episode, calls=calls)
    evaluate(["hpa", spec], ["ramp"], [0, 1], out, ep, progress=False, figures=False)
    assert calls == []  # the same bytes: every run is still this model's
    model.write_bytes(b"retrained into the same folder")
    with pytest.raises(KisimError, match=r"best_model.zip: the model file changed since its runs"):
        evaluate(["hpa", spec], ["ramp"], [0, 1], out, ep, progress=False, figures=False)
    assert calls == []  # refused before any run
    for s in (0, 1):
        (run_path(out, spec, "ramp", s) / "summary.json").unlink()  # its runs deleted: rerun
    evaluate(["hpa", spec], ["ramp"], [0, 1], out, ep, progress=False, figures=False)
    assert sorted(calls) == [(spec, "ramp", 0), (spec, "ramp", 1)]
