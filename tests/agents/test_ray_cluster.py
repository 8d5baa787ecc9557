"""`kisim sweep --ray` on a real Ray cluster - a head and a separate worker node, each started
with ``ray start`` - gives the same summary.csv bytes as without Ray. (`kisim eval --ray` and
`kisim benchmark --ray` go through the same executor; docs/ray.md has their measured checks.)

The cluster lives in network and PID namespaces this test creates (``unshare``): its only
interface is loopback, so every Ray component registers as 127.0.0.1 and no packet can leave
the machine, which ``ss -tanp`` sampled during the Ray run confirms; and when the script ends
the kernel ends whatever it left (``ray stop`` must already have: the test checks that no Ray
process and no listening port remain). Skipped where the ray extra or namespaces are missing.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
PORT = 6379
SWEEP = ["--param", "pools.cpu.max_replicas=1,2", "--policies", "static,hpa", "--runs", "2",
         "--duration", "60", "--metrics", "p95_ms"]  # fmt: skip

SCRIPT = Path(__file__).with_name("ray_cluster.sh")

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    r = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "true"],
                       capture_output=True, timeout=30)  # fmt: skip
    return r.returncode == 0


def _host(addr: str) -> str:
    host = addr.rsplit(":", 1)[0]
    return host.strip("[]")


pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the ray extra"),
]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Ray's Unix sockets live under its temp folder, and their paths must stay < 108 bytes:
    pytest's tmp_path is too deep."""
    d = Path(tempfile.mkdtemp(prefix="kr", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_sweep_on_a_head_and_worker_cluster_matches_the_local_run(short_dir: Path) -> None:
    if not _namespaces_work():
        pytest.skip("needs unshare (network and PID namespaces: root)")
    t = short_dir
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(t), "BIN": str(BIN),
           "T": str(t), "PORT": str(PORT), "SWEEP": " ".join(SWEEP),
           "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    r = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "bash", str(SCRIPT)],
                       env=env, capture_output=True, text=True, timeout=400)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    rc = (t / "rc.txt").read_text()
    log = (t / "sweep-ray.log").read_text()
    assert rc.split() == ["sweep-ray", "0", "stop", "0"], (rc, log)
    assert "runs on 2 nodes" in log, log  # the head's and the worker's
    # every TCP connection seen during the Ray runs was loopback to loopback
    rows = [ln.split() for ln in (t / "ss.txt").read_text().splitlines() if ln.strip()]
    est = [x for x in rows if x[0] == "ESTAB"]
    assert est, "no Ray connection seen"
    off = [x for x in est if _host(x[3]) not in LOOPBACK or _host(x[4]) not in LOOPBACK]
    assert not off, off[:3]
    # ray stop left nothing running and nothing listening
    assert (t / "left-procs.txt").read_text().strip() == ""
    assert (t / "left-ports.txt").read_text().strip() == ""

    # the same sweep here, without Ray: identical bytes
    kisim = str(BIN / "kisim")
    subprocess.run([kisim, "sweep", *SWEEP, "--out", str(t / "local")], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    same = (t / "ray" / "summary.csv").read_bytes() == (t / "local" / "summary.csv").read_bytes()
    assert same
