"""Entry point: joins the command modules; user errors end as one line and exit code 2."""

from __future__ import annotations

import sys

import typer

from kisim.core.errors import KisimError

app = typer.Typer(
    name="kisim",
    help="Which autoscaling and placement policy serves a Triton model fastest and cheapest?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from kisim.cli import bench, calibrate, demo, evaluate, record, simulate, train

    simulate.register(app)
    evaluate.register(app)
    demo.register(app)
    train.register(app)
    record.register(app)
    calibrate.register(app)
    app.add_typer(bench.app, name="bench")


def main() -> None:
    _register()
    try:
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except KisimError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("interrupted: finished runs are on disk; rerun with the same --out to resume",
              file=sys.stderr)  # fmt: skip
        sys.exit(130)
    except Exception as e:  # click's usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        raise
