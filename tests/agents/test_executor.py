"""Executors behind the harness: the choice (explicit, `using`, local), the Ray executor's
checks and write-back, and the CLI's bare ``--ray`` - without starting Ray (the real cluster
is tests/agents/test_ray_cluster.py)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from agents.evaluation.executor import LocalExecutor, Task, current, run_one, using
from agents.evaluation.harness import evaluate
from agents.evaluation.ray_executor import check_reachable, import_ray, write_back
from kisim.cli.app import optional_values
from kisim.core.errors import KisimError, is_interrupt
from kisim.core.rundir import is_complete, write_run


def _episode(policy: str, pattern: str, seed: int, run_dir: Path) -> None:
    write_run(run_dir, {"policy": policy}, [], {"policy": policy, "pattern": pattern,
                                                "seed": seed, "p95_ms": 10.0 + seed}, {})


class Recording:
    """An executor that runs tasks in order and remembers them."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[Task] = []
        self.closed = False

    def run(self, episode, tasks, done) -> None:  # type: ignore[no-untyped-def]
        for t in tasks:
            self.seen.append(t)
            episode(t[0], t[1], t[2], t[3])
            done(t, None)

    def close(self) -> None:
        self.closed = True


def test_evaluate_runs_on_the_executor_using_chose(tmp_path: Path) -> None:
    ex = Recording()
    with using(ex):
        assert current() is ex
        res = evaluate(["a", "b"], ["p"], [0, 1], tmp_path, _episode, progress=False,
                       reference="a", figures=False)  # fmt: skip
    assert current() is None and ex.closed
    assert res.ran == 4 and [t[:3] for t in ex.seen] == [("a", "p", 0), ("b", "p", 0),
                                                         ("a", "p", 1), ("b", "p", 1)]
    assert json.loads((tmp_path / "eval.json").read_text())["executor"] == "recording"
    again = evaluate(["a", "b"], ["p"], [0, 1], tmp_path, _episode, progress=False,
                     reference="a", figures=False, executor=Recording())  # fmt: skip
    assert (again.ran, again.skipped) == (0, 4)  # resumed: nothing left to run


def test_local_executor_names() -> None:
    assert LocalExecutor(1).name == "local" and LocalExecutor(3).name == "local x3"
    assert LocalExecutor(0).jobs >= 1


def test_write_back_marks_the_run_complete_last_and_refuses_odd_names(tmp_path: Path) -> None:
    d = tmp_path / "run"
    src = tmp_path / "src"
    _episode("a", "p", 0, src)
    files = {p.name: p.read_bytes() for p in src.iterdir()}
    write_back(d, files)
    assert is_complete(d) and {p.name for p in d.iterdir()} == set(files)
    assert all((d / n).read_bytes() == b for n, b in files.items())
    with pytest.raises(KisimError, match="refusing"):
        write_back(tmp_path / "x", {"../evil": b"x"})


def test_missing_ray_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(KisimError, match=r"--ray needs Ray: pip install 'kisim\[ray\]'"):
        import_ray()


def test_addresses_are_checked_before_any_work() -> None:
    with pytest.raises(KisimError, match="expected HOST:PORT"):
        check_reachable("nonsense")
    with socket.socket() as s:  # a port nobody listens at: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(KisimError, match="cannot reach a Ray head"):
            check_reachable(f"127.0.0.1:{port}", timeout_s=1.0)


@pytest.mark.parametrize(("argv", "want"), [
    (["sweep", "--ray"], ["sweep", "--ray", "local"]),
    (["sweep", "--ray", "--out", "o"], ["sweep", "--ray", "local", "--out", "o"]),
    (["sweep", "--ray", "10.0.0.5:6379"], ["sweep", "--ray", "10.0.0.5:6379"]),
    (["x", "--", "--ray"], ["x", "--", "--ray"]),
])  # fmt: skip
def test_bare_ray_means_a_local_instance(argv: list[str], want: list[str]) -> None:
    assert optional_values(argv) == want


def test_ray_with_real_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from kisim.cli.app import main

    with pytest.raises(SystemExit) as e:
        main(["eval", "--real", "--ray", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--ray runs twin episodes" in err
    assert len(err.strip().splitlines()) == 1


def test_ctrl_c_inside_a_compiled_function_stops_the_runs(tmp_path: Path) -> None:
    """Ctrl-C that lands inside a numba function comes out as a SystemError caused by the
    KeyboardInterrupt (CPython: "returned a result with an exception set"; seen in CI as
    `run failed: ... SystemError: CPUDispatcher(<function window_figures ...>)`): it must stop
    the evaluation like Ctrl-C anywhere else, not count as one failed run."""
    def compiled_interrupted(policy: str, pattern: str, seed: int, run_dir: Path) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError("CPUDispatcher(<f>) returned a result with an exception set") from e

    def broken(policy: str, pattern: str, seed: int, run_dir: Path) -> None:
        raise SystemError("a genuine bug")

    with pytest.raises(KeyboardInterrupt):
        run_one(compiled_interrupted, ("p", "constant", 0, tmp_path / "a"))
    assert run_one(broken, ("p", "constant", 0, tmp_path / "b")) == "SystemError: a genuine bug"
    assert (tmp_path / "b" / "error.txt").is_file()
    assert not is_interrupt(ValueError("x")) and is_interrupt(KeyboardInterrupt())
