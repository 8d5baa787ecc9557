"""`kisim sweep`: the grid, bad input as one line, summary.csv (order, identical across
executors), resuming, heat maps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from agents.evaluation.executor import LocalExecutor
from agents.sweep import grid
from agents.sweep.run import run_sweep
from kisim.core.config import load_scenario
from kisim.core.errors import KisimError
from kisim.core.paths import default_scenario

PARAMS = ["pools.cpu.max_replicas=1,2", "traffic.pattern.params.peak=30,90"]


def _sweep(out: Path, **kw: object) -> object:
    args: dict[str, object] = {"duration": 60.0, "metrics": ["p95_ms"], "progress": False}
    args.update(kw)
    return run_sweep(default_scenario(), PARAMS, ["static", "hpa"], 2, out, **args)  # type: ignore[arg-type]


def test_params_parse_as_yaml_scalars_in_grid_order() -> None:
    ps = grid.parse_params(["pools.gpu.max_replicas=1,2,4", "traffic.arrival=exponential",
                            "traffic.wait_time_s=0.5"])  # fmt: skip
    assert ps[0].values == (1, 2, 4) and ps[1].values == ("exponential",)
    assert ps[2].values == (0.5,)
    pts = grid.points(ps)
    assert len(pts) == 3 and [dict(p)["pools.gpu.max_replicas"] for p in pts] == ["1", "2", "4"]
    assert grid.label(pts[0]) == ("pools.gpu.max_replicas=1;traffic.arrival=exponential;"
                                  "traffic.wait_time_s=0.5")  # fmt: skip


@pytest.mark.parametrize(("specs", "needle"), [
    (["pools.gpu.max_replicas"], "expected KEY=V1,V2"),
    (["pools.gpu.max_replicas=1,,2"], "empty value"),
    (["pools.gpu.max_replicas=1,1"], "repeats"),
    (["a b=1"], "not a dotted scenario key"),
    (["pools.gpu.max_replicas=1", "pools.gpu.max_replicas=2"], "given twice"),
    (["pools.gpu=1", "pools.gpu.max_replicas=2"], "one contains the other"),
    ([], "at least one"),
])  # fmt: skip
def test_bad_param_syntax_names_the_param(specs: list[str], needle: str) -> None:
    with pytest.raises(KisimError, match=needle):
        grid.parse_params(specs)


@pytest.mark.parametrize(("spec", "needle"), [
    ("pools.nopool.max_replicas=1", "no 'nopool' in pools"),
    ("pools.cpu.max_replicas=-1", "max_replicas"),
    ("pools.cpu.nosuch=1", "nosuch"),
    ("traffic.pattern.params.nosuch=3", "nosuch"),
])  # fmt: skip
def test_bad_key_or_value_is_one_line_exit_2(
    tmp_path: Path, spec: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from kisim.cli.app import main

    out = tmp_path / "o"
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--param", spec, "--runs", "1", "--duration", "30", "--out", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err and "--param" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()  # nothing ran, nothing written


def test_check_keys_catches_a_typo_the_schema_would_accept() -> None:
    base = load_scenario(default_scenario())
    with pytest.raises(KisimError, match="no 'gpuu' in pools"):
        grid.check_keys(base, grid.parse_params(["pools.gpuu.max_replicas=1"]))


def test_summary_one_row_per_run_in_grid_order_and_resumable(tmp_path: Path) -> None:
    out = tmp_path / "s"
    res = _sweep(out)
    assert res.eval.ran == 16 and not res.eval.failed  # type: ignore[attr-defined]
    with (out / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    keys = [(r["pools.cpu.max_replicas"], r["traffic.pattern.params.peak"], r["policy"],
             r["seed"]) for r in rows]  # fmt: skip
    assert keys == [(a, b, p, s) for a in ("1", "2") for b in ("30", "90")
                    for p in ("static", "hpa") for s in ("0", "1")]  # fmt: skip
    # the swept value reached the run: a higher peak offers more requests (same seed, policy)
    offered = {k: float(r["offered"]) for k, r in zip(keys, rows, strict=True)}
    assert offered[("1", "90", "static", "0")] > offered[("1", "30", "static", "0")]
    for m in ("png", "pdf"):
        assert (out / "figures" / f"heatmap-p95_ms.{m}").stat().st_size > 1000
    first = (out / "summary.csv").read_bytes()
    again = _sweep(out)  # a rerun runs nothing and writes the same table
    assert again.eval.ran == 0 and again.eval.skipped == 16  # type: ignore[attr-defined]
    assert (out / "summary.csv").read_bytes() == first


def test_process_pool_gives_the_same_bytes(tmp_path: Path) -> None:
    _sweep(tmp_path / "one")
    _sweep(tmp_path / "two", jobs=2)
    assert (tmp_path / "one" / "summary.csv").read_bytes() == \
        (tmp_path / "two" / "summary.csv").read_bytes()


def test_an_extended_grid_reuses_the_points_already_run(tmp_path: Path) -> None:
    out = tmp_path / "s"
    run_sweep(default_scenario(), ["pools.cpu.max_replicas=1"], ["static"], 1, out,
              duration=60.0, metrics=[], progress=False)  # fmt: skip
    res = run_sweep(default_scenario(), ["pools.cpu.max_replicas=1,2"], ["static"], 1, out,
                    duration=60.0, metrics=[], progress=False)  # fmt: skip
    assert (res.eval.ran, res.eval.skipped) == (1, 1)


def test_local_executor_rejects_negative_jobs() -> None:
    with pytest.raises(KisimError, match="--jobs -1"):
        LocalExecutor(-1)
