"""Fuzzing the inputs a user gives kisim: scenarios, calibrations, trace bundles, command lines.

Each property: a malformed input ends as a `KisimError` (exit 2 on the command line) with
one line naming the file or field, never another exception or a traceback, and leaves
nothing half-written. Hypothesis bounds the work by example counts (``max_examples``,
``deadline=None``; derandomized, so CI runs the same inputs every time); the number of
inputs tried closes the terminal summary (tests/fuzz/conftest.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kisim.core.config import load_calibration, load_scenario, read_yaml  # noqa: E402
from kisim.core.errors import KisimError  # noqa: E402
from kisim.core.guards import Limits, check  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCEN = ROOT / "configs" / "scenarios" / "default.yaml"
CAL = ROOT / "configs" / "calibration" / "rtx3080-desktop-cpu.yaml"
BUNDLE = ROOT / "traces" / "cpu-b16-step"
KISIM = Path(sys.executable).with_name("kisim")

FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])  # fmt: skip

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=12)  # fmt: skip
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True), TEXT,
    st.lists(st.integers(-5, 5), max_size=3), st.dictionaries(TEXT, st.integers(), max_size=2),
    st.sampled_from([0, -1, 1e9, 1e300, "nan", "inf", "", "gpu", "cpu", "ramp"]),
)  # fmt: skip


def _paths(d: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into nested mappings and lists."""
    out = []
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out += _paths(v, (*prefix, k))
    return out


def _mutate(data: dict[str, Any], draw: Any) -> dict[str, Any]:
    """1-3 edits: a value replaced, a key removed, or an unknown key added."""
    data = json.loads(json.dumps(data))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = data
        for k in path[:-1]:
            parent = parent[k]
        op = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if op == "set":
            parent[path[-1]] = draw(VALUES)
        elif op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(TEXT) or "x"] = draw(VALUES)
    return data


def _dump(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _one_line(e: KisimError, *names: str) -> str:
    """The message names the file (or a file it refers to) and prints as one line."""
    from kisim.cli.app import one_line

    msg = str(e)
    assert one_line(msg) and "\n" not in one_line(msg), repr(msg)
    assert any(n in msg for n in names), msg
    return msg


def _scenario_base() -> dict[str, Any]:
    data = read_yaml(SCEN)
    if isinstance(data.get("calibration"), str):
        data["calibration"] = str((SCEN.parent / data["calibration"]).resolve())
    return data


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_malformed_scenarios_are_one_clear_error(tmp_path: Path, data: Any,
                                                 record_property: Any) -> None:  # fmt: skip
    record_property("fuzz_inputs", 1)
    mutated = _mutate(_scenario_base(), data.draw)
    path = _dump(tmp_path / "s.yaml", mutated)
    try:
        check(load_scenario(path), Limits())
    except KisimError as e:
        # a bad `calibration:` or `extends:` path names that file instead
        _one_line(e, str(path), str(mutated.get("calibration")), str(mutated.get("extends")))


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_malformed_calibrations_are_one_clear_error(tmp_path: Path, data: Any,
                                                    record_property: Any) -> None:  # fmt: skip
    record_property("fuzz_inputs", 1)
    path = _dump(tmp_path / "c.yaml", _mutate(read_yaml(CAL), data.draw))
    try:
        load_calibration(path)
    except KisimError as e:
        _one_line(e, str(path))


@settings(FUZZ, max_examples=100)
@given(blob=st.one_of(st.binary(max_size=300), TEXT.map(str.encode),
                      st.sampled_from([b"", b"\xff\xfe", b"a: [", b"- 1\n- 2", b"{a: 1}"])))
def test_arbitrary_bytes_as_a_scenario_are_one_clear_error(tmp_path: Path, blob: bytes,
                                                           record_property: Any) -> None:  # fmt: skip
    record_property("fuzz_inputs", 1)
    path = tmp_path / "b.yaml"
    path.write_bytes(blob)
    with pytest.raises(KisimError) as e:
        load_scenario(path)
    _one_line(e.value, str(path))


BUNDLE_FILES = ["manifest.yaml", "requests.csv", "service_times.csv", "recording.yaml",
                "events.csv", "locust_stats_history.csv"]  # fmt: skip


@settings(FUZZ, max_examples=60)
@given(name=st.sampled_from(BUNDLE_FILES),
       op=st.sampled_from(["truncate", "line", "delete", "binary", "append"]),
       where=st.floats(0, 1), junk=st.one_of(TEXT, st.sampled_from(["nan", "-1", ",,,", "1e400"])),
       blob=st.binary(min_size=1, max_size=64))  # fmt: skip
def test_damaged_bundles_are_one_clear_error(tmp_path: Path, name: str, op: str, where: float,
                                             junk: str, blob: bytes,
                                             record_property: Any) -> None:  # fmt: skip
    from calibration.bundle import load_bundle

    record_property("fuzz_inputs", 1)
    b = tmp_path / "bundle"
    shutil.rmtree(b, ignore_errors=True)
    shutil.copytree(BUNDLE, b)
    f = b / name
    raw = f.read_bytes()
    if op == "truncate":
        f.write_bytes(raw[: int(len(raw) * where)])
    elif op == "line":
        lines = raw.decode().splitlines()
        lines[min(int(len(lines) * where), len(lines) - 1)] = junk
        f.write_text("\n".join(lines) + "\n")
    elif op == "delete":
        f.unlink()
    elif op == "binary":
        f.write_bytes(blob)
    else:
        f.write_bytes(raw + blob)
    try:
        load_bundle(b)
    except KisimError as e:
        _one_line(e, str(b))


# --------------------------------------------------------------------------- command lines

BAD = ["abc", "-1", "0", "inf", "nan", "1e9", "", ",", "/bin/ls", "configs", "/no/such",
       "/proc/x", "ramp", "hpa", "static,hpa", "ppo:/no/model.zip", "cpu=x"]  # fmt: skip
COMMANDS: dict[str, list[str]] = {
    "simulate": ["--scenario", "--pattern", "--policy", "--seed", "--duration", "--max-requests"],
    "eval": ["--scenario", "--policies", "--patterns", "--runs", "--jobs", "--duration",
             "--reference", "--backend", "--max-requests"],
    "train": ["--scenario", "--patterns", "--timesteps", "--seed", "--config", "--episodes",
              "--learning-rate", "--max-replicas"],
    "calibrate": ["--prior", "--device", "--bootstrap", "--name"],
    "validate": ["--config", "--seeds", "--window-s", "--min-requests", "--device", "--repeat"],
    "demo": ["--runs", "--jobs", "--timesteps", "--minutes", "--patterns", "--baselines"],
    "record": ["--schedule", "--backend", "--scenario"],
}  # fmt: skip
NUMERIC = {"--seed", "--duration", "--runs", "--jobs", "--timesteps", "--episodes", "--seeds",
           "--learning-rate", "--bootstrap", "--window-s", "--min-requests", "--minutes"}  # fmt: skip
FILES = {"--scenario": ["/bin/ls", "configs", "/no/such.yaml"]}


@st.composite
def command_lines(draw: Any) -> list[str]:
    """A command, some options with odd values, and one certain mistake ("poison")."""
    cmd = draw(st.sampled_from(sorted(COMMANDS)))
    opts = COMMANDS[cmd]
    argv = [cmd]
    for opt in draw(st.lists(st.sampled_from(opts), max_size=3, unique=True)):
        argv += [opt, draw(st.one_of(st.sampled_from(BAD), TEXT))]
    num = [o for o in opts if o in NUMERIC]
    kinds = ["unknown"] + (["number"] if num else []) + (["file"] if "--scenario" in opts else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "unknown":
        poison = [f"--zz-{draw(st.text('abcdefgh', min_size=1, max_size=6))}"]
    elif kind == "number":
        poison = [draw(st.sampled_from(num)), draw(st.sampled_from(["abc", "1x", "", "--"]))]
    else:
        poison = ["--scenario", draw(st.sampled_from(FILES["--scenario"]))]
    at = draw(st.integers(1, len(argv)))
    at -= (at - 1) % 2  # between option/value pairs, not inside one
    return argv[:at] + poison + argv[at:]


def _with_out(argv: list[str], out: Path) -> list[str]:
    if argv[0] in ("calibrate", "validate"):
        argv = [*argv, str(BUNDLE)]
    if argv[0] == "validate" and "--config" not in argv:
        argv = [*argv, "--config", str(CAL)]
    return [*argv, "--out", str(out)]


def _run_in_process(argv: list[str]) -> tuple[int, str, str]:
    from kisim.cli import main

    err, out = io.StringIO(), io.StringIO()
    code: Any = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code
    return int(code or 0), out.getvalue(), err.getvalue()


def _assert_clean(code: int, stdout: str, stderr: str, out: Path, argv: list[str]) -> None:
    assert code == 2, (argv, code, stderr[-500:])
    assert "Traceback" not in stderr + stdout, (argv, stderr[-1000:])
    assert len(stderr.strip().splitlines()) == 1, (argv, stderr)
    assert stderr.startswith("error: "), (argv, stderr)
    assert not out.exists(), (argv, "left", list(out.parent.iterdir()))


@settings(FUZZ, max_examples=250)
@given(argv=command_lines())
def test_bad_command_lines_are_one_line_exit_2(tmp_path: Path, argv: list[str],
                                               record_property: Any) -> None:  # fmt: skip
    record_property("fuzz_inputs", 1)
    out = tmp_path / "o"
    shutil.rmtree(out, ignore_errors=True)
    full = _with_out(argv, out)
    _assert_clean(*_run_in_process(full), out, full)


@pytest.mark.slow
@settings(FUZZ, max_examples=15)
@given(argv=command_lines())
def test_bad_command_lines_through_the_console_script(tmp_path: Path, argv: list[str],
                                                      record_property: Any) -> None:  # fmt: skip
    record_property("fuzz_inputs", 1)
    out = tmp_path / "o"
    shutil.rmtree(out, ignore_errors=True)
    full = _with_out(argv, out)
    r = subprocess.run([str(KISIM), *full], capture_output=True, text=True, cwd=ROOT,
                       timeout=600)  # fmt: skip
    _assert_clean(r.returncode, r.stdout, r.stderr, out, full)
