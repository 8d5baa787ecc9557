"""The `kisim` command line: one typer app per command group, joined in `app`."""

from kisim.cli.app import app, main

__all__ = ["app", "main"]
