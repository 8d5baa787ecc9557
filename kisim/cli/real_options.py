"""Where real serving runs, as one group of options: `with_real_options` gives a command
``--backend --kubeconfig --context --namespace --prometheus-url`` (declared once, in
`kisim.cli.options`) and hands them to it as one `RealTarget`; `checked` refuses what does
not fit before anything starts. Typer reads a command's options from its signature, so the
decorator writes them into the signature it shows typer, in place of the command's
`real_options` parameter."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from agents.evaluation.run import RealTarget
from kisim.cli.options import Kubeconfig, KubeContext, Namespace, PrometheusUrl, RealBackend
from kisim.core.errors import KisimError

REAL_BACKENDS: tuple[str, ...] = ("local", "kubernetes")
LOCAL = RealTarget()
"""The default: the local stack (the placeholder default of a `real_options` parameter)."""

_TYPES: dict[str, Any] = {"backend": RealBackend, "kubeconfig": Kubeconfig,
                          "context": KubeContext, "namespace": Namespace,
                          "prometheus_url": PrometheusUrl}  # fmt: skip
_PARAMS = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                             default=getattr(LOCAL, name), annotation=t)
           for name, t in _TYPES.items()]  # fmt: skip


def given(target: RealTarget) -> bool:
    """Whether any of the five options was set (a command may refuse them without --real)."""
    return any(getattr(target, k) != getattr(LOCAL, k) for k in _TYPES)


def checked(target: RealTarget, dry_run: bool = False, inject: str = "") -> RealTarget:
    """`target` with the command's own dry-run and fault schedule; an unknown backend, or
    cluster options given to the local one, end the command in one line."""
    if target.backend not in REAL_BACKENDS:
        raise KisimError(f"--backend {target.backend}: expected local or kubernetes")
    if target.backend == "local" and given(target):
        raise KisimError("--kubeconfig/--context/--namespace/--prometheus-url need "
                         "--backend kubernetes")  # fmt: skip
    return dataclasses.replace(target, dry_run=dry_run, inject=inject)


def with_real_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command` takes ``real_options: RealTarget``; typer sees the five options in its place."""
    hints = typing.get_type_hints(command, include_extras=True)
    sig = inspect.signature(command)
    params: list[inspect.Parameter] = []
    for p in sig.parameters.values():
        params += _PARAMS if p.name == "real_options" else [p.replace(annotation=hints[p.name])]

    @functools.wraps(command)
    def with_options(**kw: Any) -> None:
        target = RealTarget(**{p.name: kw.pop(p.name) for p in _PARAMS})
        command(real_options=target, **kw)

    with_options.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    with_options.__annotations__ = {p.name: p.annotation for p in params}
    return with_options
