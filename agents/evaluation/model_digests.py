"""The bytes behind each ``ppo:PATH`` of an evaluation, so that stored runs of a model are
never taken for runs of the model that replaced it.

A run directory is named after the policy spec, and a spec names a file, not its contents:
retraining into the same folder and evaluating again would otherwise count the old model's
runs as complete and report them as the new one's. `evaluate` records the sha256 of every
model file in OUT/eval.json (``models``) and refuses, before any run, a model whose bytes
changed while runs of it are on disk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from agents.policies.ppo import model_path
from agents.policies.setup import split_setup
from kisim.core.errors import KisimError


def model_digests(policies: Sequence[str]) -> dict[str, str]:
    """sha256 of the model file of every ``ppo:PATH[@SETUP]`` spec (a missing file: none)."""
    out: dict[str, str] = {}
    for spec in policies:
        name, _, arg = split_setup(spec)[0].partition(":")
        if name != "ppo" or not arg:
            continue
        try:
            path = model_path(arg)
        except KisimError:
            continue  # the policy check names it
        out[spec] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def check_models(out: Path, earlier: Mapping[str, str], now: Mapping[str, str],
                 has_runs: Callable[[str], bool]) -> None:  # fmt: skip
    """KisimError for a model whose file changed since its runs in OUT were stored."""
    for spec, digest in now.items():
        old = earlier.get(spec)
        if old and old != digest and has_runs(spec):
            raise KisimError(f"{out}: {spec}: the model file changed since its runs here were "
                             f"stored (sha256 {old[:12]} -> {digest[:12]}); delete its runs "
                             "or use another --out")  # fmt: skip


__all__ = ["check_models", "model_digests"]
