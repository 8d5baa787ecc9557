"""kisim.cli.real_options: the real backend's options declared once, given to a command as
one `RealTarget`, and checked before anything starts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from agents.evaluation.run import RealTarget
from kisim.cli.real_options import LOCAL, checked, given, with_real_options
from kisim.core.errors import KisimError

seen: list[tuple[int, RealTarget, bool]] = []


@with_real_options
def _cmd(
    runs: Annotated[int, typer.Option(help="Runs.")] = 1,
    real_options: RealTarget = LOCAL,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """A command with the real options between two of its own."""
    seen.append((runs, real_options, dry_run))


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("cmd")(_cmd)
    app.command("other")(lambda: None)  # two commands: typer keeps the command's name
    return app


def _run(*args: str) -> RealTarget:
    seen.clear()
    r = CliRunner().invoke(_app(), ["cmd", *args])
    assert r.exit_code == 0, r.output
    assert len(seen) == 1
    return seen[0][1]


def test_the_options_reach_the_command_as_one_value() -> None:
    assert _run() == LOCAL and not given(LOCAL)
    got = _run("--runs", "3", "--backend", "kubernetes", "--kubeconfig", "kc", "--context", "c",
               "--namespace", "ns", "--prometheus-url", "http://p:9090", "--dry-run")  # fmt: skip
    assert got == RealTarget("kubernetes", Path("kc"), "c", "ns", "http://p:9090")
    assert given(got) and seen[0][0] == 3 and seen[0][2] is True
    assert given(_run("--namespace", "ns"))
    assert _cmd.__doc__ and "real options" in _cmd.__doc__


def test_help_lists_them_in_place() -> None:
    out = CliRunner().invoke(_app(), ["cmd", "--help"]).output
    order = [out.index(f) for f in ("--runs", "--backend", "--kubeconfig", "--context",
                                    "--namespace", "--prometheus-url", "--dry-run")]  # fmt: skip
    assert order == sorted(order)
    assert "real-options" not in out and "real_options" not in out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (RealTarget(backend="slurm"), "--backend slurm: expected local or kubernetes"),
        (RealTarget(kubeconfig=Path("kc")), "need --backend kubernetes"),
        (RealTarget(prometheus_url="http://p"), "need --backend kubernetes"),
    ],
)
def test_bad_combinations_end_in_one_line(target: RealTarget, message: str) -> None:
    with pytest.raises(KisimError, match=message):
        checked(target)


def test_checked_adds_the_commands_own_settings() -> None:
    t = checked(RealTarget("kubernetes", Path("kc"), "c", "ns", "http://p"), True, "kill:x@1s")
    assert t == RealTarget("kubernetes", Path("kc"), "c", "ns", "http://p", True, "kill:x@1s")
    assert checked(LOCAL) == LOCAL
