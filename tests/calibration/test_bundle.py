"""Bundle readers: every malformed input ends in an error naming file, line and column, or
in a warning that says what was skipped; nothing is fitted on nothing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from calibration.bundle import load_bundle
from calibration.locate import json_position
from kisim.core.errors import TraceError


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, count))


def raises(bundle: Path, *patterns: str) -> str:
    with pytest.raises(TraceError) as e:
        load_bundle(bundle)
    msg = str(e.value)
    for p in patterns:
        assert re.search(p, msg), f"{p!r} not in {msg!r}"
    return msg


def test_a_synthetic_bundle_reads_clean(bundles: dict[str, Path]) -> None:
    b = load_bundle(bundles["step"])
    assert b.warnings == []
    assert len(b.requests) > 5000 and b.requests.ok.all()
    assert set(b.counters) == {"cpu"} and len(b.counters["cpu"].replicas) == 1
    assert b.events is not None and b.service_times is not None


def test_not_a_folder_and_empty_folder(tmp_path: Path) -> None:
    raises(tmp_path / "nope", r"nope: not a bundle folder")
    (tmp_path / "empty").mkdir()
    raises(tmp_path / "empty", r"empty: empty bundle folder")


@pytest.mark.parametrize("missing", ["manifest.yaml", "requests.csv", "prometheus"])
def test_missing_required_file(copy_bundle, missing: str) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    p = b / missing
    shutil.rmtree(p) if p.is_dir() else p.unlink()
    raises(b, re.escape(str(p)) + r": missing")


def test_manifest_yaml_syntax_error_has_line_and_column(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    edit(b / "manifest.yaml", "backend: local", "backend: [local")
    raises(b, r"manifest.yaml: line \d+, column \d+: not valid YAML")


def test_manifest_bad_value_names_field_line_column(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    edit(b / "manifest.yaml", "replicas: 1", "replicas: many")
    lines = (b / "manifest.yaml").read_text().splitlines()
    line = next(i for i, s in enumerate(lines, 1) if "replicas: many" in s)
    raises(b, rf"manifest.yaml: line {line}, column 15: pools.cpu.replicas: .*integer")


def test_manifest_unknown_key_and_contradictions(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    edit(b / "manifest.yaml", "instances: 1", "instances: 1\n    colour: blue")
    warned = load_bundle(b).warnings  # an unknown key is a warning, and ignored
    assert any(re.search(r"line \d+, column \d+: pools.cpu.colour: unknown key", w) for w in warned)
    edit(b / "manifest.yaml", "replicas: 1", "replicas: one")
    edit(b / "manifest.yaml", "backend: local", "backend: laptop")
    # every problem at once, each with its line, column and key
    raises(b, r"2 problem\(s\)", r"line \d+, column \d+: backend:",
           r"line \d+, column \d+: pools.cpu.replicas:")
    b = copy_bundle("inst2")
    edit(b / "manifest.yaml", "end_unix_s: 1795000180.0", "end_unix_s: 1794000000.0")
    raises(b, r"end_unix_s must be after start_unix_s")


def test_requests_header_number_ok_pool(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    f = b / "requests.csv"
    text = f.read_text()
    f.write_text(text.replace("start_unix_s,latency_ms,ok", "start_unix_s,lat_ms,ok", 1))
    raises(b, r"requests.csv: line 1: header lacks column\(s\) latency_ms")
    rows = text.splitlines()
    rows[3] = rows[3].replace(rows[3].split(",")[1], "fast", 1)
    f.write_text("\n".join(rows) + "\n")
    raises(b, r"requests.csv: line 4, column 2 \(latency_ms\): not a number: 'fast'")
    rows = text.splitlines()
    rows[7] = rows[7].replace(",1,cpu,", ",2,cpu,")
    f.write_text("\n".join(rows) + "\n")
    raises(b, r"requests.csv: line 8, column 3 \(ok\): expected 1 or 0")
    rows = text.splitlines()
    rows[9] = rows[9].replace(",1,cpu,", ",1,tpu,")
    f.write_text("\n".join(rows) + "\n")
    raises(b, r"requests.csv: line 10, column 4 \(pool\): pool 'tpu' is not in manifest")
    rows = text.splitlines()
    rows[5] = rows[5] + ",extra"
    f.write_text("\n".join(rows) + "\n")
    raises(b, r"requests.csv: line 6: 6 fields, the header has 5")


def test_requests_empty_is_an_error(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    (b / "requests.csv").write_text("start_unix_s,latency_ms,ok,pool,replica\n")
    raises(b, r"requests.csv: no requests")


def test_requests_outside_the_span(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    f = b / "requests.csv"
    rows = f.read_text().splitlines()
    rows += [f"1790000000.{i:06d},30.0,1,cpu," for i in range(20)]
    f.write_text("\n".join(rows) + "\n")
    bun = load_bundle(b)  # a few: skipped, and said so
    assert any("skipped 20 request(s) starting outside" in w for w in bun.warnings)
    rows += [f"1790000001.{i:06d},30.0,1,cpu," for i in range(len(rows) // 10)]
    f.write_text("\n".join(rows) + "\n")
    raises(b, r"start outside manifest.yaml's start_unix_s..end_unix_s .*contradicts")


def test_a_pool_without_requests_contradicts(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    m = (b / "manifest.yaml").read_text()
    pool = m[m.index("  cpu:\n") : m.index("routing:")]
    (b / "manifest.yaml").write_text(
        m.replace("routing:", pool.replace("  cpu:", "  gpu:", 1) + "routing:")
    )
    raises(b, r"pool 'gpu' served no request .*contradicts the data")


def test_metric_missing_from_the_export(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    (b / "prometheus" / "nv_inference_exec_count.json").unlink()
    idx = json.loads((b / "prometheus" / "index.json").read_text())
    del idx["nv_inference_exec_count.json"]
    (b / "prometheus" / "index.json").write_text(json.dumps(idx))
    raises(b, r"metric\(s\) missing from the Prometheus export: nv_inference_exec_count")


def test_optional_metric_missing_is_a_warning(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    (b / "prometheus" / "nv_inference_request_duration_us.json").unlink()
    idx = json.loads((b / "prometheus" / "index.json").read_text())
    del idx["nv_inference_request_duration_us.json"]
    (b / "prometheus" / "index.json").write_text(json.dumps(idx))
    bun = load_bundle(b)
    assert any("no nv_inference_request_duration_us.json" in w for w in bun.warnings)


def test_index_lists_a_missing_file(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    (b / "prometheus" / "nv_inference_pending_request_count.json").unlink()
    raises(b, r"index.json: lists 'nv_inference_pending_request_count' but .* is missing")


def test_empty_series_and_rate_queries(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    f = b / "prometheus" / "nv_inference_count.json"
    good = f.read_text()
    f.write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}))
    raises(b, r"nv_inference_count.json: nv_inference_count has no series")
    f.write_text(good)
    idx = json.loads((b / "prometheus" / "index.json").read_text())
    idx["nv_inference_count.json"]["query"] = "rate(nv_inference_count[1m])"
    (b / "prometheus" / "index.json").write_text(json.dumps(idx))
    raises(b, r"not the raw counter")


def test_prometheus_json_errors_are_located(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    f = b / "prometheus" / "nv_inference_queue_duration_us.json"
    good = f.read_text()
    f.write_text(good[:-5])
    raises(b, r"nv_inference_queue_duration_us.json: line 1, column \d+: not valid JSON")
    data = json.loads(good)
    data["data"]["result"][0]["values"][3][1] = "lots"
    text = json.dumps(data, indent=1)
    f.write_text(text)
    line, col = json_position(text, ["data", "result", 0, "values", 3])  # type: ignore[misc]
    raises(b, rf"line {line}, column {col}: not a number in \[.*'lots'\]")
    data = json.loads(good)
    data["status"] = "error"
    data["error"] = "query timed out"
    f.write_text(json.dumps(data))
    raises(b, r"not a successful query_range answer \(query timed out\)")


def test_series_of_an_unknown_pool(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    edit(b / "prometheus" / "nv_inference_count.json", '"pool": "cpu"', '"pool": "gpu"')
    raises(b, r"series of pool 'gpu', which manifest.yaml does not have")


def test_batches_larger_than_the_config_contradict(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    edit(b / "manifest.yaml", "max_batch_size: 8", "max_batch_size: 2")
    raises(b, r"pools.cpu.batching allows batches of at most 2, but the counters show")


def test_service_times_and_events_rows(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    f = b / "service_times.csv"
    rows = f.read_text().splitlines()
    rows[2] = rows[2].replace("cpu,1,", "cpu,1.5,", 1)
    f.write_text("\n".join(rows) + "\n")
    raises(b, r"service_times.csv: line 3, column 2 \(batch_size\): not an integer")
    rows[2] = rows[2].replace("cpu,1.5,", "npu,1,", 1)
    f.write_text("\n".join(rows) + "\n")
    raises(b, r"service_times.csv: line 3, column 1 \(device\): 'npu' is neither a pool nor")
    f.unlink()
    g = b / "events.csv"
    rows = g.read_text().splitlines()
    rows[1] = rows[1].replace("created", "exploded")
    g.write_text("\n".join(rows) + "\n")
    raises(b, r"events.csv: line 2, column 4 \(event\): unknown event 'exploded'")


def test_missing_optional_files_are_warnings(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    for f in ("events.csv", "service_times.csv", "locust_stats.csv"):
        (b / f).unlink()
    w = " | ".join(load_bundle(b).warnings)
    assert "events.csv: missing; start-up times not fitted" in w
    assert "service_times.csv: missing; the service curve comes from the Triton counters" in w
    assert "locust_stats.csv: missing" in w


def test_locust_totals_disagreeing_is_a_warning(copy_bundle) -> None:  # type: ignore[no-untyped-def]
    b = copy_bundle()
    edit(b / "locust_stats.csv", "Aggregated,", "Aggregated,1")
    assert any("Locust counted" in w for w in load_bundle(b).warnings)
