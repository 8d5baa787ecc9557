"""Resource guards (kisim.core.guards) and output/temporary-file hygiene (kisim.core.outputs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kisim.core.config import load_scenario, override
from kisim.core.errors import KisimError, ResourceError
from kisim.core.guards import Limits, check, estimate, memory_watchdog, resident_bytes
from kisim.core.outputs import (
    HIDDEN_TEMP,
    KISIM_TMP,
    check_out_dir,
    check_out_file,
    remove_stale,
    tmp_dir,
)

ROOT = Path(__file__).resolve().parents[2]
SCEN = ROOT / "configs" / "scenarios" / "default.yaml"


def _constant(level: float, **more: object):  # type: ignore[no-untyped-def]
    sc = load_scenario(SCEN)
    pattern = {"name": "constant", "params": {"level": level}}
    return override(sc, "test", **{"traffic.pattern": pattern, **more})


def test_the_default_scenario_is_small() -> None:
    est = check(load_scenario(SCEN), Limits())
    assert 1e3 < est.requests < 1e7 and est.memory_bytes < 2**30


def test_estimate_grows_with_users_and_duration() -> None:
    a, b = estimate(_constant(100)), estimate(_constant(1e6))
    assert b.in_flight == 1e6 > a.in_flight and b.memory_bytes > a.memory_bytes
    long = estimate(_constant(100, duration_s=1e9))
    assert long.windows == pytest.approx(1e9 / 15, rel=1e-6)


def test_too_large_is_refused_and_allow_large_lifts_it() -> None:
    with pytest.raises(ResourceError, match="a run would need .* over the budget"):
        check(_constant(1e9), Limits())
    with pytest.raises(ResourceError, match=r"x 4 parallel runs"):
        check(_constant(1e6), Limits(memory_bytes=2**30), parallel=4)
    with pytest.raises(ResourceError, match="requests, over the budget of 1e\\+03"):
        check(_constant(100), Limits(max_requests=1000))
    assert check(_constant(1e9), Limits(allow_large=True)).in_flight == 1e9


def test_exact_latency_mode_counts_every_record() -> None:
    """~1e8 requests: kept one by one (exact) they need ~12 GiB more than sketched; `auto`
    sketches a run that large, and keeps a small one's records (then counted, but small)."""
    long = {"duration_s": 1e6}
    exact = estimate(_constant(100, **long, **{"metrics.latency_stats": "exact"}))
    sketch = estimate(_constant(100, **long, **{"metrics.latency_stats": "sketch"}))
    auto = estimate(_constant(100, **long))
    assert exact.exact and not sketch.exact and not auto.exact
    assert exact.memory_bytes - sketch.memory_bytes == pytest.approx(exact.requests * 128)
    assert auto.memory_bytes == sketch.memory_bytes
    budget = Limits(memory_bytes=4 * 2**30)
    assert check(_constant(100, **long, **{"metrics.latency_stats": "sketch"}), budget)
    with pytest.raises(ResourceError, match="every latency of ~.* kept: metrics.latency_stats"):
        check(_constant(100, **long, **{"metrics.latency_stats": "exact"}), budget)
    small = estimate(_constant(100))  # auto: exact below 2 M requests, its records counted
    assert small.exact and small.memory_bytes < 2**30


def test_open_loop_counts_what_capacity_cannot_serve() -> None:
    sc = _constant(1e7, **{"traffic.mode": "open"})
    est = estimate(sc)
    assert est.requests == pytest.approx(1e7 * sc.duration_s)
    assert est.in_flight > 1e9  # arrivals far beyond the pools' capacity wait in memory


def test_platform_models_count_their_requests_and_latencies() -> None:
    """A platform section adds its models' arrivals: `rate_rps` x mean level / peak level
    (detect 150, segment 40, embed 80 req/s at the peak of a sine between 5 and 35, mean
    20: 270 x 20/35 req/s over the hour), 8 bytes of latency each; a run of a platform whose
    models send 1e7 req/s is refused on requests."""
    plat = load_scenario(ROOT / "configs" / "scenarios" / "platform" / "mixed-platform.yaml")
    without = estimate(override(plat, "test", platform=None))
    with_p = estimate(plat)
    extra = with_p.requests - without.requests
    assert extra == pytest.approx(270 * 20 / 35 * 3600, rel=0.01)
    assert with_p.memory_bytes - without.memory_bytes == pytest.approx(extra * 8)
    flood = override(plat, "test", **{"platform.models.detect.rate_rps": 1e7})
    with pytest.raises(ResourceError, match="requests, over the budget"):
        check(flood, Limits())


def test_watchdog_stops_the_body_cleanly() -> None:
    cleaned = []
    with pytest.raises(ResourceError, match="memory use reached .* over the budget"):
        with memory_watchdog(Limits(memory_bytes=1), period_s=0.01):
            try:
                while True:
                    time.sleep(0.01)
            finally:
                cleaned.append(True)
    assert cleaned == [True]
    with memory_watchdog(Limits(memory_bytes=resident_bytes() * 100), period_s=0.01):
        time.sleep(0.05)  # under budget: nothing happens


def test_out_checks_name_the_path_before_any_work(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(KisimError, match="exists and is not a directory"):
        check_out_dir(f)
    with pytest.raises(KisimError, match="not writable"):
        check_out_dir(f / "sub")
    with pytest.raises(KisimError, match="is a directory"):
        check_out_file(tmp_path)
    with pytest.raises(KisimError, match="/proc/x.yaml: not writable"):
        check_out_file(Path("/proc/x.yaml"))
    check_out_dir(tmp_path / "a" / "b")
    check_out_file(tmp_path / "a" / "c.yaml")
    assert not (tmp_path / "a").exists()  # checking creates nothing
    assert list(tmp_path.iterdir()) == [f]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead, live = _dead_pid(), os.getpid()
    for name in (f".timeseries_cpu.{dead}.pdf", f".summary.{live}.png", "summary.png"):
        (tmp_path / name).write_text("x")
    removed = remove_stale(tmp_path, HIDDEN_TEMP)
    assert [p.name for p in removed] == [f".timeseries_cpu.{dead}.pdf"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".summary.{live}.png", "summary.png"]


def test_tmp_dirs_carry_the_pid_and_stale_ones_go(tmp_path: Path, monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"kisim-{_dead_pid()}-local-abc"
    stale.mkdir()
    (stale / "targets.json").write_text("[]")
    other = tmp_path / "kisim-local-legacy"
    other.mkdir()
    d = tmp_dir("cpu-0")
    assert KISIM_TMP.fullmatch(d.name) and d.name.startswith(f"kisim-{os.getpid()}-cpu-0-")
    assert not stale.exists() and other.exists() and d.is_dir()


def _synthetic_episode():  # type: ignore[no-untyped-def]
    """The harness tests' synthetic episode (tests/agents/test_evaluate.py), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_kisim_synth_eval", ROOT / "tests" / "agents" / "test_evaluate.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod.synth_episode


def test_eval_rerun_removes_hidden_figure_files_of_a_killed_render(tmp_path: Path) -> None:
    from agents.evaluation.harness import evaluate

    synth_episode = _synthetic_episode()

    out = tmp_path / "ev"
    (out / "figures").mkdir(parents=True)
    junk = out / "figures" / f".timeseries_ramp.{_dead_pid()}.pdf"
    junk.write_text("half a pdf")
    evaluate(["hpa"], ["ramp"], [0, 1], out, synth_episode, progress=False, figures=False)
    assert not junk.exists()


def test_jobs_below_zero_is_an_error(tmp_path: Path) -> None:
    from agents.evaluation.harness import evaluate

    synth_episode = _synthetic_episode()

    with pytest.raises(KisimError, match="--jobs -1"):
        evaluate(["hpa"], ["ramp"], [0], tmp_path / "ev", synth_episode, jobs=-1, progress=False)
