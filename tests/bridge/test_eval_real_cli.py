"""`kisim eval --real` from the command line, without starting anything: flag errors end in
one line and exit 2 before any server starts, and `--dry-run` on Kubernetes (against the
FAKE API server of test_kube_fakeapi.py, no cluster here) reads the cluster, prints each
write it would make and makes none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCEN = str(ROOT / "configs" / "scenarios" / "default.yaml")


def kisim(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from kisim.cli import main; sys.argv[0] = 'kisim'; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "kubernetes"], "need --real"),
        (["--real", "--backend", "slurm"], "--backend slurm: expected local or kubernetes"),
        (["--real", "--kubeconfig", "kc"], "need --backend kubernetes"),
        (["--real", "--backend", "kubernetes"], "needs --prometheus-url"),
        (["--real", "--policies", "hpa:2"], "hpa:2"),
    ],
)
def test_bad_real_flags_end_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    r = kisim("eval", "--scenario", SCEN, "--patterns", "constant", "--runs", "1",
              "--out", str(tmp_path / "out"), *args)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_local_dry_run_starts_nothing(tmp_path: Path) -> None:
    r = kisim("eval", "--real", "--dry-run", "--scenario", SCEN, "--policies",
              "static,threshold,hpa",
              "--patterns", "constant,ramp", "--runs", "2", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "dry run: 12 real runs of 600 s" in r.stdout
    assert "policy threshold: controller external" in r.stdout
    assert "policy hpa: controller external" in r.stdout and "HPA v2 algorithm" in r.stdout
    assert not (tmp_path / "out").exists()


def test_kubernetes_dry_run_prints_the_writes_and_makes_none(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes")
    from fake_kube_api import FakeKubeAPI

    labels = {"app.kubernetes.io/name": "triton"}
    with FakeKubeAPI(ready_after_s=0.0) as fake:
        fake.add_deployment("triton-gpu", 2, {**labels, "kisim.io/pool": "gpu"})
        fake.add_deployment("triton-cpu", 3, {**labels, "kisim.io/pool": "cpu"})
        kc = fake.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
        r = kisim("eval", "--real", "--backend", "kubernetes", "--kubeconfig", str(kc),
                  "--context", "fake", "--prometheus-url", "http://127.0.0.1:9", "--dry-run",
                  "--scenario", SCEN, "--policies", "static,hpa", "--patterns", "constant",
                  "--runs", "1", "--out", str(tmp_path / "out"))  # fmt: skip
        writes = list(fake.writes)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "policy hpa: controller hpa" in out
    assert "would scale deployments/triton-cpu/scale in namespace kisim: replicas 3 -> 1" in out
    assert "would create horizontalpodautoscalers/kisim-triton-cpu" in out
    assert "would delete horizontalpodautoscalers/kisim-triton-cpu" in out
    assert out.count("replicas 1 -> 3") == 2  # the restore, after each policy
    assert writes == []
