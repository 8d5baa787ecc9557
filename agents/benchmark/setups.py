"""Tuning a rule together with the setup it runs on (`agents.policies.setup`).

On a scenario with several pools the traffic split and the pools that run at all are an
operator's choice, as much as the rule's targets: with the scenario's own start (diurnal sends
60 % of its requests to at most four CPU pods; hetero's GPU pools start empty, and an HPA does
not scale a pool from zero) every rule is capped below what it could do. So a rule is tuned
over setups too, by coordinate search on the training seeds (each step is the successive
halving of `agents.benchmark.tuning`):

1. ``setup``: the rule's upstream defaults on every setup -> the best setup;
2. ``params``: the rule's grid on that setup -> the best parameters;
3. ``final``: those parameters on every setup -> the choice.

The constant configuration is searched over pod mixes of every pool and every placement (the
headroom check's coarse grid, `agents.evaluation.headroom.coarse_grid`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.evaluation.headroom import coarse_grid
from agents.policies.setup import Setup, split_setup
from kisim.core.config import Scenario

Tune = Callable[[str, Sequence[str], Path], dict[str, Any]]
"""(opponent, grid, out) -> the result of `agents.benchmark.tuning.tune`."""


def setups(sc: Scenario) -> list[str]:
    """Every placement (when two pools or more can run pods) x every set of floors of one pod
    in pools that start empty (none first); [] when only the scenario's own setup exists."""
    live = [p for p in sc.pool_names if sc.pools[p].max_replicas > 0]
    placements: list[str | None] = list(sc.routing.placements) if len(live) >= 2 else [None]
    empty = [p for p in live if sc.pools[p].replicas == 0]
    floors = [tuple((p, 1) for p in c) for k in range(len(empty) + 1)
              for c in itertools.combinations(empty, k)]  # fmt: skip
    out = [Setup(pl, f).text for pl in placements for f in floors]
    out = [s for s in out if s]
    return out if len(out) >= 2 else []


def tune_with_setup(opponent: str, untuned: str, grid: Sequence[str], options: Sequence[str],
                    out: Path, tune: Tune) -> dict[str, Any]:  # fmt: skip
    """The three steps of the module doc under OUT/{setup,params,final}; the ``final`` result
    with every step's choice added."""
    first = tune(opponent, [f"{untuned}@{s}" for s in options], out / "setup")
    best_setup = _setup_of(first["chosen"])
    params = tune(opponent, [f"{g}@{best_setup}" for g in grid], out / "params")
    base, _ = split_setup(params["chosen"])
    final = tune(opponent, [f"{base}@{s}" for s in options], out / "final")
    return {**final, "steps": {"setup": first["chosen"], "params": params["chosen"],
                               "final": final["chosen"]},
            "method": "coordinate search over setups and parameters (agents/benchmark/setups.py), "
                      "each step " + final["method"]}  # fmt: skip


def constant_specs(sc: Scenario) -> list[str]:
    """``static`` and every constant of the coarse grid as a ``fixed:`` spec (with its
    placement where two pools or more hold pods)."""
    out = ["static"]
    for c in coarse_grid(sc):
        busy = sum(n > 0 for _, n in c.counts)
        out.append(f"{c.spec}@{c.placement}" if busy >= 2 else c.spec)
    return list(dict.fromkeys(out))


def _setup_of(spec: str) -> str:
    _, setup = split_setup(spec)
    assert setup is not None
    return setup.text
