"""`kisim demo` with tiny budgets: the outputs it promises, its closing lines, resuming a
finished demo, and the "beats" criterion of its headline (on hand-made CSVs)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")

from agents.demo import verdicts  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = """apiVersion: kisim/v1
kind: TrainConfig
name: tiny-demo
ppo: {n_steps: 64, batch_size: 128}
envs: {n_envs: 2, patterns: [ramp, spike]}
budget: {timesteps: 512}
evaluation: {every_steps: 256, seeds_per_pattern: 2}
convergence: {min_evaluations: 2, window: 2}
checkpoints: {every_steps: 256}
logging: {tensorboard: false}
"""


def kisim_demo(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from kisim.cli import main; sys.argv[0] = 'kisim'; main()"
    return subprocess.run([sys.executable, "-c", code, "demo", *args], capture_output=True,
                          text=True, cwd=ROOT)  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    (tmp / "tiny.yaml").write_text(TINY)
    args = ["--out", str(tmp / "out"), "--config", str(tmp / "tiny.yaml"), "--runs", "2",
            "--baselines", "static,hpa", "--patterns", "ramp,spike", "--jobs", "1"]  # fmt: skip
    first = kisim_demo(*args)
    second = kisim_demo(*args)
    return tmp / "out", first, second


def test_demo_writes_the_report_and_the_headline(demo) -> None:
    out, r, _ = demo
    assert r.returncode == 0, r.stderr
    for f in ("report.md", "summary.csv", "significance.csv", "eval.json", "demo.json",
              "train/best_model.zip", "train/stopped.json", "figures/training_progress.png",
              "figures/training_progress.pdf", "figures/tradeoff.png", "figures/tradeoff.pdf"):
        assert (out / f).is_file(), f
    policies = {row["policy"] for row in csv.DictReader((out / "summary.csv").open())}
    assert {"static", "hpa"} < policies and any(p.startswith("ppo:") for p in policies)
    report = (out / "report.md").read_text()
    assert "## Demo: PPO trained on the twin" in report
    assert "figures/training_progress.png" in report
    lines = r.stdout.strip().splitlines()
    assert f"report: {out / 'report.md'}" in r.stdout
    assert lines[-1].startswith("PPO beats hpa on ") and "of 2 patterns" in lines[-1]
    assert sum(ln.strip().startswith(("ramp", "spike")) for ln in lines[-3:]) == 2
    assert "[1/3] training PPO" in r.stderr and "[2/3] evaluating" in r.stderr


def test_kisim_report_keeps_the_demo_section(demo) -> None:
    from agents.evaluation.report import render

    out, _, _ = demo
    before = (out / "report.md").read_text()
    render(out)
    after = (out / "report.md").read_text()
    assert "## Demo: PPO trained on the twin" in after
    strip = [ln for ln in after.splitlines() if not ln.startswith("Generated ")]
    assert strip == [ln for ln in before.splitlines() if not ln.startswith("Generated ")]


def test_a_rerun_reuses_the_model_and_the_runs(demo) -> None:
    _, first, r = demo
    assert r.returncode == 0, r.stderr
    assert "reusing the finished training run" in r.stderr
    assert "(reused)" in r.stdout
    assert first.stdout.splitlines()[-3:] == r.stdout.splitlines()[-3:]


def test_bad_input_is_one_line_exit_2(tmp_path) -> None:
    r = kisim_demo("--out", str(tmp_path / "o"), "--config", "/no/such.yaml")
    assert r.returncode == 2 and "/no/such.yaml" in r.stderr and "Traceback" not in r.stderr
    r = kisim_demo("--out", str(tmp_path / "o"), "--runs", "1")
    assert r.returncode == 2 and "at least 2 seeds" in r.stderr


def _write(out: Path, rows: list[tuple[str, str, float]],
           sig: list[tuple[str, str, str]]) -> None:  # fmt: skip
    """summary.csv and significance.csv with only the columns the headline reads."""
    with (out / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "pattern", "metric", "mean"])
        w.writerows([(p, "spike", m, v) for p, m, v in rows])
    with (out / "significance.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "reference", "pattern", "metric", "paired_p_holm", "wilcoxon_p_holm"])
        w.writerows([("ppo:m", "hpa", "spike", m, t, wx) for m, t, wx in sig])


@pytest.mark.parametrize(("ppo", "sig", "beats"), [
    # fewer violations, significant; cost lower by the same amount every seed (Wilcoxon)
    ((0.0, 600.0, 7.7), [("slo_violation_rate", "0.001", ""), ("replica_s", "", "0.008"),
                         ("episode_reward", "0.001", "")], True),
    # fewer violations but significantly more replica-seconds, reward not better
    ((0.0, 3000.0, 5.0), [("slo_violation_rate", "0.001", ""), ("replica_s", "0.01", ""),
                          ("episode_reward", "0.5", "")], False),
    # better reward, violations not significantly worse
    ((0.02, 2600.0, 6.0), [("slo_violation_rate", "0.3", ""), ("replica_s", "0.01", ""),
                           ("episode_reward", "0.01", "")], True),
    # nothing significant
    ((0.0, 600.0, 7.7), [("slo_violation_rate", "0.2", ""), ("replica_s", "", ""),
                         ("episode_reward", "0.07", "")], False),
])  # fmt: skip
def test_beats_criterion(tmp_path, ppo, sig, beats) -> None:
    slo, rs, rw = ppo
    rows = [("hpa", "slo_violation_rate", 0.01), ("hpa", "replica_s", 2500.0),
            ("hpa", "episode_reward", 5.5), ("oracle", "episode_reward", 7.8),
            ("ppo:m", "slo_violation_rate", slo), ("ppo:m", "replica_s", rs),
            ("ppo:m", "episode_reward", rw)]  # fmt: skip
    _write(tmp_path, rows, sig)
    (v,) = verdicts(tmp_path, "ppo:m", "hpa", ["spike"])
    assert v.beats is beats
    assert v.oracle_share == pytest.approx((rw - 5.5) / (7.8 - 5.5))
