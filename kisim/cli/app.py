"""Entry point: joins the command modules; every user error ends as one line on stderr.

Usage errors are caught as the exception types of the CLI framework actually installed:
typer >= 0.2x ships its own click (``typer._click``), older typer uses the separate
``click``; either way `typer.BadParameter` descends from the framework's
``ClickException``, so that class is found through it rather than imported.
"""

from __future__ import annotations

import sys

import typer

from kisim.core.errors import Interrupted, KisimError, is_interrupt

app = typer.Typer(
    name="kisim",
    help="Which autoscaling and placement policy serves a Triton model fastest and cheapest?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

USAGE_EXIT = 2


def _framework_base(name: str) -> type[BaseException]:
    """The installed framework's exception class `name`, found in typer.BadParameter's bases."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name:
            return cls
    raise RuntimeError(f"typer.BadParameter has no base {name}")  # a typer we do not know


CLICK_EXCEPTION = _framework_base("ClickException")
USAGE_ERROR = _framework_base("UsageError")


_registered: list[bool] = []
_light: set[str] = set()  # commands attached alone (`LIGHT`)
LIGHT = ("simulate", "bench")
"""Commands attached alone when they are the one invoked: the others' modules import
plotting, statistics and Ray (seconds of start-up, more on a loaded machine) that a twin
run does not need (`kisim bench scale` measures start-up as part of a run)."""


def _register_light(argv: list[str]) -> bool:
    """Attach only the `LIGHT` commands when one of them is invoked (both: typer runs an
    app of one command as that command); False otherwise."""
    first = next((a for a in argv if not a.startswith("-")), None)
    if _registered or first not in LIGHT:
        return False
    if not _light:
        from kisim.cli import bench, simulate

        simulate.register(app)
        app.add_typer(bench.app, name="bench")
        _light.update(LIGHT)
    return True


def _register() -> None:
    """Attach the commands once (`main` may be called many times in one process: tests)."""
    if _registered:
        return
    _registered.append(True)
    from kisim.cli import (
        bench,
        benchmark,
        calibrate,
        demo,
        evaluate,
        record,
        simulate,
        sweep,
        train,
    )

    if "simulate" not in _light:
        simulate.register(app)
    evaluate.register(app)
    demo.register(app)
    train.register(app)
    record.register(app)
    calibrate.register(app)
    benchmark.register(app)
    from kisim.cli import sim2real

    sim2real.register(app)
    sweep.register(app)
    if "bench" not in _light:
        app.add_typer(bench.app, name="bench")


def usage_line(e: BaseException) -> str:
    """One line for a framework error: the command path, the message, where help is."""
    msg = " ".join(str(getattr(e, "format_message", lambda: e)()).split())
    ctx = getattr(e, "ctx", None)
    path = getattr(ctx, "command_path", None) or "kisim"
    if not msg or "Missing command" in msg or type(e).__name__ == "NoArgsIsHelpError":
        return f"error: {path}: missing command (see {path} --help)"
    if isinstance(e, USAGE_ERROR):
        return f"error: {path}: {msg} (see {path} --help)"
    return f"error: {path}: {msg}"


def one_line(text: str) -> str:
    """`text` as exactly one line: a message listing several problems, or quoting a value
    the user typed, may hold line breaks; they become "; "."""
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def _fail(line: str, code: int) -> None:
    print(one_line(line), file=sys.stderr)
    sys.exit(code)


OPTIONAL_VALUES = {"--ray": "local"}
"""Options whose value may be left out (the CLI framework has no such options): a bare
``--ray`` means ``--ray local`` (start Ray on this machine; agents.evaluation.ray_executor)."""


def optional_values(argv: list[str]) -> list[str]:
    """`argv` with the implied value after a bare option of `OPTIONAL_VALUES` (one followed
    by nothing or by another option); everything after ``--`` is left alone."""
    out: list[str] = []
    for i, a in enumerate(argv):
        if a == "--":
            return out + argv[i:]
        out.append(a)
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if a in OPTIONAL_VALUES and (nxt is None or nxt.startswith("-")):
            out.append(OPTIONAL_VALUES[a])
    return out


def main(argv: list[str] | None = None) -> None:
    """`kisim`: exit 0 on success, 2 on any user or usage error, 130 when interrupted."""
    argv = optional_values(sys.argv[1:] if argv is None else list(argv))
    if not _register_light(argv):
        _register()
    try:
        rc = app(args=argv, prog_name="kisim", standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except Interrupted as e:
        _fail(str(e), e.exit_code)
    except KisimError as e:
        _fail(f"error: {e}", USAGE_EXIT)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except typer.Exit as e:
        if e.exit_code == 130 and isinstance(e.__cause__, KeyboardInterrupt):
            _fail("interrupted", 130)
        sys.exit(e.exit_code)
    except typer.Abort:
        _fail("aborted", 130)
    except CLICK_EXCEPTION as e:
        _fail(usage_line(e), USAGE_EXIT)
    except SystemError as e:  # Ctrl-C inside a compiled (numba) function
        if not is_interrupt(e):
            raise
        _fail("interrupted", 130)
