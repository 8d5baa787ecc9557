"""Locust CSVs + Prometheus exports + a hand-written import.yaml as a bundle
(calibration/locust_prom.py), on a real recording's own Locust and Prometheus files: the
imported bundle must agree with the recorded one where the import is exact (per-second
counts and means, Triton's counters) and come close where Locust only has 10-s percentiles."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from calibration.bundle import load_bundle
from calibration.validate import real_windows
from kisim.core.errors import TraceError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "locust-prometheus" / "import.yaml"
SRC = ROOT / "traces" / "cpu-b8-step"


def _import_folder(tmp: Path) -> Path:
    """The example import.yaml, edited for the recording, beside its exports (renamed)."""
    d = tmp / "export"
    (d / "prom").mkdir(parents=True)
    for f in ("locust_stats_history.csv", "locust_stats.csv"):
        shutil.copy(SRC / f, d / f)
    spec = yaml.safe_load(EXAMPLE.read_text())
    man = yaml.safe_load((SRC / "manifest.yaml").read_text())
    files = {}
    for m in spec["prometheus"]["files"]:
        shutil.copy(SRC / "prometheus" / f"{m}.json", d / "prom" / f"{m}.json")
        files[m] = f"prom/{m}.json"
    spec["prometheus"]["files"] = files
    traffic = {"mode": "closed", "wait_time_s": man["traffic"]["wait_time_s"]}
    spec.update(name="imported", backend="local", model=man["model"], triton=man["triton"],
                pools=man["pools"], traffic=traffic)  # fmt: skip
    spec["hardware"] = {"description": "the recording's host"}
    (d / "import.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return d


def test_the_example_is_a_valid_import(tmp_path: Path) -> None:
    d = _import_folder(tmp_path)
    b = load_bundle(d)  # a folder with import.yaml reads as a bundle
    assert b.name == "imported" and (d / ".kisim-bundle" / "manifest.yaml").is_file()
    assert any("reconstructed" in w for w in b.warnings)
    ref = load_bundle(SRC)
    # Locust's counts are exact: as many requests, the users schedule from its User Count
    assert abs(len(b.requests) - len(ref.requests)) <= 2
    assert [p.users for p in b.manifest.traffic.schedule] == [
        p.users for p in ref.manifest.traffic.schedule
    ]
    # per-15-s windows: throughput to the second-edge rounding, p50 within Locust's 10-s
    # smoothing, the counter-based batch and utilisation identical
    e1, r1, u1, n1, _ = real_windows(ref, 15.0)
    e2, r2, u2, n2, _ = real_windows(b, 15.0)
    k = min(len(n1), len(n2)) - 1
    ok = n1[:k] >= 20
    tp = np.abs(r2["throughput_rps"][:k] - r1["throughput_rps"][:k]) / r1["throughput_rps"][:k]
    assert np.nanmax(tp[ok]) < 0.1 and np.nanmean(tp[ok]) < 0.04
    p50 = np.abs(r2["p50_ms"][:k] - r1["p50_ms"][:k]) / r1["p50_ms"][:k]
    assert np.nanmean(p50[ok]) < 0.2
    bs = np.abs(r2["batch_size"][:k] - r1["batch_size"][:k])
    assert np.nanmax(bs[ok]) < 0.2


def test_calibrate_from_the_import(tmp_path: Path) -> None:
    from calibration.calibrate import calibrate

    imp = calibrate([load_bundle(_import_folder(tmp_path))], "imp", n_boot=40)
    ref = calibrate([load_bundle(SRC)], "ref", n_boot=40)
    dev, rdev = imp.calibration.devices["cpu"], ref.calibration.devices["cpu"]
    # no isolated times in the import: the curve from the counters alone, the same counters
    assert dev.service.base_ms == pytest.approx(rdev.service.base_ms, rel=0.15)
    # the mean overhead rests on per-interval mean latency, which the import keeps: the same
    # within the recording's own interval (its growth with load is not reliable: Locust's
    # seconds are whole and up to 1 s off Prometheus' scrapes)
    o, ro = imp.devices["cpu"].overhead.total, ref.devices["cpu"].overhead.total
    assert ro.contains(o.value) and abs(o.value - ro.value) < 0.3


def test_a_rate_export_is_refused(tmp_path: Path) -> None:
    d = _import_folder(tmp_path)
    f = d / "prom" / "nv_inference_count.json"
    import re

    first = r'"values":\[\[(\d+),"(\d+)"\]'
    f.write_text(re.sub(first, r'"values":[[\1,"2.5"]', f.read_text(), count=1))
    with pytest.raises(TraceError, match="non-integer values"):
        load_bundle(d)
