"""The parts of real fault injection that need no server: the schedule, its checks, the
injector's timing and undo (against stand-ins for the actuator and Prometheus, named as
such), the observer's view without Prometheus, and a disk that is really full (a small
tmpfs in a user namespace, where the kernel answers ENOSPC)."""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge import faults as F
from bridge.faults import FaultInjector, RealFault, check_faults, parse_faults
from kisim.core.errors import KisimError


def test_schedule_parses_sorts_and_round_trips() -> None:
    fs = parse_faults("disk-full@50s+5s, kill:cpu-0@20s,sigstop:cpu@30+10,prometheus-restart@40s")
    assert [f.kind for f in fs] == ["kill", "sigstop", "prometheus-restart", "disk-full"]
    assert fs[0] == RealFault("kill", 20.0, "cpu-0", 0.0)
    assert fs[1] == RealFault("sigstop", 30.0, "cpu", 10.0)
    assert fs[2].duration_s == F.DEFAULT_DURATION_S and fs[3].duration_s == 5.0
    assert parse_faults(",".join(f.spec() for f in fs)) == fs
    assert parse_faults("") == () and parse_faults(None) == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("kill@3s", "kill needs a target"),
        ("explode:cpu-0@3s", "unknown fault 'explode'"),
        ("prometheus-restart:cpu@3s", "takes no target"),
        ("kill:cpu-0@3s+2s", "kill takes no duration"),
        ("sigstop:cpu@3s+0s", "duration must be > 0"),
        ("kill:cpu-0", "expected KIND[:TARGET]@SECONDS"),
        ("kill:cpu-0@-3s", "expected KIND[:TARGET]@SECONDS"),
    ],
)
def test_bad_schedule_is_one_line_naming_the_item(text: str, says: str) -> None:
    with pytest.raises(KisimError, match=r"^--inject '.*': .*") as e:
        parse_faults(text)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_checks_before_anything_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KisimError, match="--backend local only"):
        check_faults(parse_faults("kill:cpu@1s"), "kubernetes", tmp_path)
    check_faults(parse_faults("kill:cpu@1s"), "local", tmp_path)
    monkeypatch.setattr(F, "DISK_FULL_MAX_FREE", 0)  # any real disk has more free than that
    with pytest.raises(KisimError, match="disk-full: .* free; filling it is refused"):
        check_faults(parse_faults("disk-full@1s"), "local", tmp_path / "not" / "yet")
    with pytest.raises(KisimError, match="refused"):
        F.fill_disk(tmp_path / F.FILLER)
    assert not (tmp_path / F.FILLER).exists()


# ---------------------------------------------------------------- the injector, on stand-ins


@dataclass
class StandInActuator:
    """Records the signals a `LocalActuator.signal_replica` would send."""

    sent: list[tuple[str, int]] = field(default_factory=list)

    def signal_replica(self, target: str, sig: int) -> tuple[str, str, int]:
        self.sent.append((target, sig))
        if target == "gone":
            from kisim.core.errors import BackendError

            raise BackendError("local actuator: no live replica 'gone'")
        return "cpu", target if "-" in target else f"{target}-0", 1234


@dataclass
class StandInPrometheus:
    running: bool = True
    url: str = "http://127.0.0.1:1"

    def pause(self) -> None:
        self.running = False

    def resume(self) -> None:
        self.running = True


@dataclass
class StandInBackend:
    actuator: StandInActuator = field(default_factory=StandInActuator)
    prometheus: StandInPrometheus = field(default_factory=StandInPrometheus)


def test_injector_fires_on_episode_time_and_undoes_everything() -> None:
    b: Any = StandInBackend()
    inj = FaultInjector(parse_faults("kill:cpu-0@2s,sigstop:cpu@3s+600s,prometheus-restart@3s+600s,"
                                     "kill:gone@4s,kill:cpu-1@99s"))  # fmt: skip
    inj.poll(b, 1.9)
    assert b.actuator.sent == [] and inj.events == []
    inj.poll(b, 3.0)
    assert b.actuator.sent == [("cpu-0", signal.SIGKILL), ("cpu", signal.SIGSTOP)]
    assert not b.prometheus.running
    inj.poll(b, 4.0)  # a target that is gone: recorded, not fatal
    assert [(e.replica, e.kind, e.detail.split()[0]) for e in inj.events] == [
        ("cpu-0", "fault", "kill"), ("cpu-0", "fault", "sigstop"),
        ("prometheus", "fault", "prometheus-restart"), ("gone", "fault", "kill"),
    ]  # fmt: skip
    assert "not injected" in inj.events[-1].detail
    inj.restore(b)  # the episode ended before the 600 s were up; kill:cpu-1@99s never fires
    assert b.prometheus.running and b.actuator.sent[-1] == ("cpu-0", signal.SIGCONT)
    assert [e.kind for e in inj.events[-2:]] == ["restored", "restored"]
    inj.restore(b)
    inj.poll(b, 100.0)
    assert len(b.actuator.sent) == 4  # idempotent, and nothing after restore
    inj.rearm()  # a new episode replays the schedule
    inj.poll(b, 2.0)
    assert b.actuator.sent[-1] == ("cpu-0", signal.SIGKILL)


def test_view_without_prometheus_is_missing_not_an_error() -> None:
    from bridge.observer import Observer
    from bridge.ports import free_port
    from kisim.core.config import MetricsConfig

    obs = Observer(f"http://127.0.0.1:{free_port()}", MetricsConfig(), view_retries=0)
    v = obs.view(1e9, 8.0, 8.0)
    assert v.missing and all(math.isnan(getattr(v, k)) for k in ("cpu_util", "queue_wait_ms",
                                                                 "mean_batch_size"))  # fmt: skip


# ---------------------------------------------------------------- a disk that is really full

FULL_DISK = """
import errno, sys
from pathlib import Path
import subprocess
d = Path(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], check=True)
from bridge.faults import FILLER, fill_disk
from kisim.core.rundir import atomic_write
atomic_write(d / "summary.json", "finished")
n = fill_disk(d / FILLER)
try:
    atomic_write(d / "timeline.csv", "x" * 65536)
    sys.exit("wrote on a full disk")
except OSError as e:
    assert e.errno == errno.ENOSPC, e
assert (d / "summary.json").read_text() == "finished"  # the finished file survived
assert not [p.name for p in d.iterdir() if p.name not in ("summary.json", FILLER)]  # no debris
(d / FILLER).unlink()
atomic_write(d / "timeline.csv", "x" * 65536)
print(n)
"""


def _userns() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    return subprocess.run([unshare, "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _userns(), reason="no unprivileged user+mount namespaces (unshare -rm)")
def test_disk_full_is_a_real_enospc_and_finished_files_survive(tmp_path: Path) -> None:
    d = tmp_path / "small"
    d.mkdir()
    code = textwrap.dedent(FULL_DISK)
    r = subprocess.run(["unshare", "-rm", sys.executable, "-c", code, str(d)],
                       capture_output=True, text=True, cwd=Path(__file__).parents[2])  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert 1 << 20 < int(r.stdout) <= 2 << 20  # it filled the 2 MiB tmpfs


EVENT_LOG = """
import sys
from pathlib import Path
import subprocess
d = Path(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], check=True)
from bridge.locust_run import EventLog
from bridge.faults import FILLER, fill_disk
from bridge.records import RequestLog
log = EventLog(d / "events.csv")
log.add("s,1.000000,cpu")
log.flush()
fill_disk(d / FILLER)
for i in range(2000):  # ~60 kB of records while the disk is full: flush must not raise
    log.add(f"s,{2 + i}.000000,cpu")
    log.add(f"c,{2 + i}.000000,5.000,1,cpu,127.0.0.1:1")
    if i % 100 == 0:
        log.flush()
stuck = RequestLog(d / "events.csv")
stuck.read()
(d / FILLER).unlink()
log.flush()
r = RequestLog(d / "events.csv")
r.read()
assert r.sent == [1.0] + [2.0 + i for i in range(2000)], len(r.sent)  # none lost, none doubled
assert len(r.ok) == 2000 and r.watermark > 0
print(len(stuck.sent))
"""


@pytest.mark.skipif(not _userns(), reason="no unprivileged user+mount namespaces (unshare -rm)")
def test_load_records_wait_out_a_full_disk(tmp_path: Path) -> None:
    """The load generator's event writer keeps what ENOSPC refused and writes it, byte-exact,
    once space returns: a full disk delays records, never loses or repeats one."""
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["unshare", "-rm", sys.executable, "-c", textwrap.dedent(EVENT_LOG),
                        str(d)], capture_output=True, text=True,
                       cwd=Path(__file__).parents[2])  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout) < 2001  # while full, not everything had reached the file


def test_bundle_events_with_a_crash_and_faults(tmp_path: Path) -> None:
    """A recording under --inject: the crash is a 'failed' row (bundle vocabulary), a
    startup failure still ends the recording, and the faults go to faults.csv."""
    from bridge.lifecycle import ReplicaEvent
    from bridge.record.bundle_csv import write_events, write_faults
    from kisim.core.errors import BackendError

    ev = [ReplicaEvent(1.0, "cpu", "cpu-0", "created"), ReplicaEvent(2.0, "cpu", "cpu-0", "ready"),
          ReplicaEvent(5.0, "cpu", "cpu-0", "failed", "crashed: exited with code -9; replaced"),
          ReplicaEvent(5.0, "cpu", "cpu-0", "terminated", "rc=-9"),
          ReplicaEvent(5.1, "cpu", "cpu-1", "created")]  # fmt: skip
    write_events(tmp_path / "events.csv", ev, 9.0)
    rows = (tmp_path / "events.csv").read_text().splitlines()
    kinds = [r.split(",")[3] for r in rows[1:] if ",cpu-0," in r]
    assert kinds == ["created", "started", "ready", "failed", "stopping", "stopped"]
    with pytest.raises(BackendError, match="cpu-0 failed: exited with code 1"):
        write_events(tmp_path / "e2.csv", [ReplicaEvent(1.0, "cpu", "cpu-0", "failed",
                                                        "exited with code 1")], 9.0)  # fmt: skip
    faults = [ReplicaEvent(4.0, "cpu", "cpu-0", "fault", "kill SIGKILL pid=1"),
              ReplicaEvent(6.0, "-", "prometheus", "fault", "prometheus-restart a, b"),
              ReplicaEvent(8.0, "-", "prometheus", "restored", "prometheus-restart")]  # fmt: skip
    assert write_faults(tmp_path / "faults.csv", faults) == 2
    lines = (tmp_path / "faults.csv").read_text().splitlines()
    assert lines[0] == "t_unix_s,event,target,detail" and len(lines) == 4
    assert all(len(x.split(",")) == 4 for x in lines)
