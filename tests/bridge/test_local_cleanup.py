"""Safety of the local stack: nothing outlives an error, a Ctrl-C or a killed kisim.

Replicas, Prometheus and Locust run in their own sessions with PR_SET_PDEATHSIG, so even
SIGKILL of the owning process (no clean-up code runs) takes them down; an exception in a
`with` block (KeyboardInterrupt takes the same path) runs close().
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_stack import needs_stack, port_open, small_scenario

pytestmark = [pytest.mark.server, needs_stack]
HERE = Path(__file__).resolve().parent

CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {here!r})
from local_stack import small_scenario
from bridge.backend import make_local_backend
b = make_local_backend(Path({work!r}))
b.reset(small_scenario(**{{"pools.gpu.replicas": 0}}), 0)
addrs = [a for _, h, m in b.actuator.replicas("cpu") for a in (h, m)]
addrs.append(b.prometheus.url.removeprefix("http://"))
pids = [b.load.proc.pid, b.prometheus._proc.pid]
print(json.dumps({{"addrs": addrs, "pids": pids}}), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its reaper is dead
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_exception_in_with_block_removes_everything(tmp_path: Path) -> None:
    from bridge.backend import make_local_backend

    with pytest.raises(RuntimeError), make_local_backend(tmp_path) as b:
        b.reset(small_scenario(**{"pools.gpu.replicas": 0}), 0)
        addrs = [a for _, h, m in b.actuator.replicas("cpu") for a in (h, m)]
        addrs.append(b.prometheus.url.removeprefix("http://"))
        assert all(port_open(a) for a in addrs)
        raise RuntimeError("policy crashed")
    assert not [a for a in addrs if port_open(a)]


def test_sigkill_of_kisim_takes_the_stack_down(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(here=str(HERE), work=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        info = json.loads(line)
        assert all(port_open(a) for a in info["addrs"])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = [a for a in info["addrs"] if port_open(a)] + [p for p in info["pids"] if _alive(p)]
        if not left:
            break
        time.sleep(0.5)
    assert not left, f"still running after the owner was killed: {left}"
