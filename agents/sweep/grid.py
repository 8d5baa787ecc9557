"""The grid of a sweep: ``--param KEY=V1,V2,...`` over dotted scenario keys, and its points.

A key is a dotted path in the resolved scenario (``pools.gpu.max_replicas``,
``traffic.pattern.params.level``), as ``kisim simulate`` overrides use; each value is read as
YAML (``4`` an int, ``0.5`` a float, ``true`` a bool, ``ramp`` a string). The points are the
cartesian product in the order the parameters and values were given (the first parameter
varies slowest), which is also the order of ``summary.csv``. A point's label - every
``key=value`` joined by ``;`` - names its runs on disk, so a grid extended later reuses the
points already run. Every point's scenario is built and validated before any run starts: a
wrong key or value ends in one line naming the ``--param`` and the field.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kisim.core.config import Scenario, override
from kisim.core.errors import KisimError

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
SEP = ";"  # between the key=value parts of a label (a value holds no ';')


@dataclass(frozen=True)
class Param:
    """One swept key and its values as typed (`texts`) and as read (`values`)."""

    key: str
    texts: tuple[str, ...]
    values: tuple[Any, ...]


Point = tuple[tuple[str, str], ...]
"""One grid point: (key, value text) per parameter, in parameter order."""


def _value(text: str, spec: str) -> Any:
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        raise KisimError(f"--param {spec}: value '{text}' is not a YAML scalar") from None
    if isinstance(v, (dict, list)) or v is None:
        raise KisimError(f"--param {spec}: value '{text}' must be a number, bool or word")
    return v


def parse_param(spec: str) -> Param:
    """``KEY=V1,V2,...`` -> Param; bad syntax -> one line naming the spec."""
    key, sep, rest = spec.partition("=")
    key = key.strip()
    if not sep or not key:
        raise KisimError(f"--param {spec}: expected KEY=V1,V2,... (e.g. "
                         "pools.gpu.max_replicas=1,2,4)")  # fmt: skip
    if not KEY.match(key):
        raise KisimError(f"--param {spec}: '{key}' is not a dotted scenario key")
    texts = [t.strip() for t in rest.split(",")]
    if not texts or any(not t for t in texts):
        raise KisimError(f"--param {spec}: empty value (give comma-separated values)")
    if any(SEP in t for t in texts):
        raise KisimError(f"--param {spec}: a value may not contain '{SEP}'")
    if len(set(texts)) != len(texts):
        raise KisimError(f"--param {spec}: a value repeats")
    return Param(key, tuple(texts), tuple(_value(t, spec) for t in texts))


def parse_params(specs: Sequence[str]) -> list[Param]:
    params = [parse_param(s) for s in specs]
    if not params:
        raise KisimError("--param: give at least one, e.g. --param pools.gpu.max_replicas=1,2")
    keys = [p.key for p in params]
    for k in keys:
        if keys.count(k) > 1:
            raise KisimError(f"--param {k}: given twice (put all its values in one --param)")
        for other in keys:
            if other != k and other.startswith(k + "."):
                raise KisimError(f"--param {k} and --param {other}: one contains the other")
    return params


def points(params: Sequence[Param]) -> list[Point]:
    """Every combination, the first parameter varying slowest."""
    combos = itertools.product(*[p.texts for p in params])
    return [tuple(zip([p.key for p in params], c, strict=True)) for c in combos]


def label(point: Point) -> str:
    return SEP.join(f"{k}={v}" for k, v in point)


def overrides(params: Sequence[Param], point: Point) -> dict[str, Any]:
    """The dotted-key overrides of a point, values as read."""
    by_key = {p.key: dict(zip(p.texts, p.values, strict=True)) for p in params}
    return {k: by_key[k][t] for k, t in point}


def apply(base: Scenario, params: Sequence[Param], point: Point) -> Scenario:
    """The scenario of one grid point, validated; errors name the point's --param values."""
    return override(base, f"--param {label(point)}", **overrides(params, point))


def check_keys(base: Scenario, params: Sequence[Param]) -> None:
    """Every key must lead through the resolved scenario's sections to a field of it (or to a
    free-form mapping's entry, such as a pattern's parameters): a typo is caught even where
    the schema would accept a new key."""
    data = base.model_dump(mode="json")
    for p in params:
        cur: Any = data
        parts = p.key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(cur, dict):
                raise KisimError(f"--param {p.key}: '{'.'.join(parts[:i])}' is a value, "
                                 "not a section")  # fmt: skip
            if part not in cur and i < len(parts) - 1:
                known = ", ".join(sorted(cur)) or "none"
                raise KisimError(f"--param {p.key}: no '{part}' in "
                                 f"{'.'.join(parts[:i]) or 'the scenario'} (known: {known})")
            cur = cur.get(part)
