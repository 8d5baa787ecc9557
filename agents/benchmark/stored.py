"""Scenarios a benchmark run leaves out keep their leaderboard sections, from OUT's tables.

The runs under ``OUT/<scenario>/eval/`` are not kept in git (hundreds of run directories per
scenario); what is kept is what the statistics are computed from: ``seeds.csv`` (every policy's
value of each metric on each evaluation seed, with its role) and ``tuned.json`` (each rule's
tuned spec). So ``kisim benchmark --scenarios one.yaml --out OUT`` reruns that scenario and
rebuilds every other section of OUT's leaderboard from those tables - the same numbers, tests
and claims as when they were run - rather than writing a leaderboard of one scenario.

A section is rebuilt only if it still describes what would run now (else a one-line error
names the scenario and what changed): its scenario file (``OUT/<scenario>/eval/eval.json``)
resolves to the fingerprint its runs had, every ``ppo:`` model file is the one that played
(``models``, `agents.evaluation.model_digests`; a manifest written before the digests were
recorded cannot say), and its evaluation and oracle seeds are this run's. The platform
family's sections need per-tenant values seeds.csv lacks: rerun them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from agents.benchmark.leaderboard import METRICS, Board, Entry, board_of
from agents.benchmark.opponents import family_hpa
from agents.evaluation.model_digests import model_digests
from kisim.core.config import Scenario, scenario_fingerprint
from kisim.core.errors import KisimError
from kisim.core.prepare import prepare
from kisim.core.rundir import read_json


def stored_boards(out: Path, running: Collection[str], seeds: list[int],
                  oracle_seeds: list[int] | None, duration: float | None,
                  question: Callable[[Path, Scenario], str],
                  ) -> tuple[list[Board], dict[str, Any]]:  # fmt: skip
    """The boards of OUT's stored scenarios not in `running` (stems), and their tuned.json
    entries; none when OUT has no seeds.csv. `duration`: this run's ``--duration`` (a kept
    section must have run with it); `question(path, scenario)` gives a section's question, as
    for the scenarios run."""
    table, tuned_path = out / "seeds.csv", out / "tuned.json"
    if not table.is_file():
        return [], {}
    by: dict[str, dict[str, Entry]] = {}
    with table.open(newline="", encoding="utf-8") as f:
        for line, r in enumerate(csv.DictReader(f), start=2):
            try:
                if r["scenario"] in running:
                    continue
                section = by.setdefault(r["scenario"], {})
                e = section.setdefault(r["policy"], Entry(r["policy"], r["role"]))
                for m in METRICS:
                    e.seeds.setdefault(m, {})[int(r["seed"])] = float(r[m] or math.nan)
            except (KeyError, TypeError, ValueError) as err:
                raise KisimError(f"{table} line {line}: not a seeds.csv row ({err})") from None
    if not by:
        return [], {}
    try:
        tuned_all = read_json(tuned_path) if tuned_path.is_file() else {}
    except (OSError, ValueError) as err:
        raise KisimError(f"{tuned_path}: not readable ({err})") from None
    boards, tuned = [], {}
    for stem, entries in by.items():
        where = f"{out}: scenario {stem} (kept from seeds.csv)"
        if stem not in tuned_all:
            raise KisimError(f"{where}: tuned.json has no entry for it; rerun it")
        path, sc = _check(out, stem, entries, seeds, oracle_seeds, duration, where)
        spec = {k: v["spec"] for k, v in tuned_all[stem].items()}
        boards.append(board_of(stem, question(path, sc), list(entries.values()), "summary",
                               spec, family_hpa(sc)))  # fmt: skip
        tuned[stem] = tuned_all[stem]
    return boards, tuned


def _check(out: Path, stem: str, entries: dict[str, Entry], seeds: list[int],
           oracle_seeds: list[int] | None, duration: float | None,
           where: str) -> tuple[Path, Scenario]:  # fmt: skip
    """The scenario file and Scenario of a kept section, after its checks (module doc)."""
    manifest = out / stem / "eval" / "eval.json"
    try:
        ev = read_json(manifest)
        path = Path(ev["meta"]["scenario"])
    except (OSError, ValueError, KeyError, TypeError):
        raise KisimError(f"{where}: {manifest} does not name its scenario file; rerun it") from None
    if not path.is_file():
        raise KisimError(f"{where}: its scenario file {path} is missing")
    sc = prepare(path, None, None, duration)
    if sc.platform is not None:
        raise KisimError(f"{where}: a platform scenario's section needs its runs; rerun it")
    if scenario_fingerprint(sc) != ev.get("fingerprint"):
        raise KisimError(f"{where}: {path} (with this run's --duration) is not the scenario "
                         "its runs had (fingerprint); rerun it")  # fmt: skip
    played = ev.get("models", {})  # absent from manifests older than the digests
    for spec, digest in model_digests(list(entries)).items():
        if spec in played and played[spec] != digest:
            raise KisimError(f"{where}: {spec}: the model file is not the one whose runs "
                             "are stored (sha256); rerun it")  # fmt: skip
    for e in entries.values():
        want = oracle_seeds if e.role == "oracle" else seeds
        got = sorted(e.seeds["episode_reward"])
        if want is None or got != want:
            raise KisimError(f"{where}: {e.policy} was run on seeds {_span(got)}, this run "
                             f"uses {_span(want)}; rerun it")  # fmt: skip
    return path, sc


def _span(seeds: list[int] | None) -> str:
    if not seeds:
        return "none (no oracle)"
    return f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) else \
        ",".join(map(str, seeds))


__all__ = ["stored_boards"]
