"""The `trace` pattern: a rate series from CSV, compressed and scaled, validated at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from kisim.core.config import load_scenario
from kisim.core.errors import ConfigError
from kisim.core.paths import config_path
from kisim.core.patterns import make_pattern

SUITE = config_path("scenarios", "suite")


def _csv(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "rates.csv"
    f.write_text(text)
    return f


def test_trace_compresses_scales_offsets_and_wraps(tmp_path: Path) -> None:
    f = _csv(tmp_path, "t_s,rate_rps\n0,1\n10,2\n20,4\n")
    p = make_pattern("trace", {"csv": str(f)})
    assert [p.level(t) for t in (0, 9.9, 10, 25, 29.9, 30, 41)] == [1, 1, 2, 4, 4, 1, 2]
    q = make_pattern("trace", {"csv": str(f), "speedup": 2, "scale": 10, "offset_s": 10})
    assert [q.level(t) for t in (0, 4.9, 5, 10)] == [20, 20, 40, 10]


@pytest.mark.parametrize(("text", "msg"), [
    ("t,rate\n0,1\n", "line 1: header must contain t_s,rate_rps"),
    ("t_s,rate_rps\n0,1\n5,x\n", "line 3: column rate_rps: not a number"),
    ("t_s,rate_rps\n0,1\n5,-1\n", "line 3: column rate_rps: must be a finite number >= 0"),
    ("t_s,rate_rps\n0,1\n0,2\n", "line 3: column t_s: times must increase"),
    ("t_s,rate_rps\n", "no rows"),
])  # fmt: skip
def test_bad_files_are_one_line_errors_naming_file_line_and_column(tmp_path: Path, text: str,
                                                                   msg: str) -> None:  # fmt: skip
    f = _csv(tmp_path, text)
    sc = tmp_path / "s.yaml"
    sc.write_text(f"extends: {SUITE / 'trace.yaml'}\n"
                  "traffic: {pattern: {name: trace, params: {csv: rates.csv}}}\n")  # fmt: skip
    with pytest.raises(ConfigError) as e:
        load_scenario(sc)
    text_ = str(e.value)
    assert "\n" not in text_
    assert text_.startswith(f"{sc}: traffic.pattern") and str(f) in text_ and msg in text_


def test_missing_file_and_relative_paths(tmp_path: Path) -> None:
    sc = tmp_path / "s.yaml"
    sc.write_text(f"extends: {SUITE / 'trace.yaml'}\n"
                  "traffic: {pattern: {name: trace, params: {csv: nowhere.csv}}}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=rf"{tmp_path}/nowhere.csv: no such file"):
        load_scenario(sc)
    # the suite's trace scenario names its data relative to itself
    s = load_scenario(SUITE / "trace.yaml")
    data = SUITE / "data" / "azure-llm-2023-conv-5s.csv"
    assert Path(s.traffic.pattern.params["csv"]) == data.resolve()


def test_fingerprint_follows_the_csv_bytes_not_the_checkout_path(tmp_path: Path) -> None:
    """Stored runs are matched by fingerprint; the resolved CSV path is absolute, so the
    fingerprint hashes the file's bytes: a copy of the scenario elsewhere resumes its runs,
    a changed CSV does not (the suite's stored trace runs were lost to a path before)."""
    import hashlib
    import shutil

    from kisim.core.config import fingerprint_text, resolved_json, scenario_fingerprint

    copies = []
    for name in ("a", "b"):
        d = tmp_path / name
        (d / "data").mkdir(parents=True)
        (d / "trace.yaml").write_text(f"extends: {SUITE / 'trace.yaml'}\n"
                                      "traffic: {pattern: {params: {csv: data/conv.csv}}}\n")
        shutil.copy(SUITE / "data" / "azure-llm-2023-conv-5s.csv", d / "data" / "conv.csv")
        copies.append(d)
    a, b = (load_scenario(d / "trace.yaml") for d in copies)
    assert resolved_json(a) != resolved_json(b)  # the paths differ ...
    assert scenario_fingerprint(a) == scenario_fingerprint(b)  # ... the scenario does not
    assert str(copies[0]) not in fingerprint_text(a)
    assert scenario_fingerprint(a, "twin") != scenario_fingerprint(a, "local")
    csv = copies[1] / "data" / "conv.csv"
    rows = csv.read_text().splitlines()
    t, r = rows[-1].split(",")
    csv.write_text("\n".join([*rows[:-1], f"{t},{float(r) + 1}"]) + "\n")
    assert scenario_fingerprint(load_scenario(copies[1] / "trace.yaml")) != scenario_fingerprint(a)
    # without a file the text is the resolved scenario, so no other stored run moved
    gpu = load_scenario(SUITE / "gpu-fleet.yaml")
    assert scenario_fingerprint(gpu) == hashlib.sha256(resolved_json(gpu).encode()).hexdigest()
