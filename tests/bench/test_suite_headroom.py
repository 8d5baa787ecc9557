"""bench.suite_headroom: results made beside a run are merged, not rerun; the table's test."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from agents.evaluation.headroom import TRAIN_SEEDS
from bench.suite_headroom import main, paired_p
from kisim.core.config import load_scenario, resolved_json
from kisim.core.paths import config_path

CPU = config_path("scenarios", "suite", "cpu-fleet.yaml")


def _result(oracle: list[float], constant: list[float], **kw: object) -> dict:
    score = {"seeds": list(range(len(oracle))), "metrics": {"cost_per_million": 0.2,
                                                           "slo_attainment": 0.97}}  # fmt: skip
    mo, mc = sum(oracle) / len(oracle), sum(constant) / len(constant)
    return {"scenario": "cpu-fleet", "best_constant": "fixed:cpu=11 @balanced",
            "oracle": "oracle:3:plan", "eval_seeds": list(range(len(oracle))),
            "constant": {**score, "policy": "fixed:cpu=11", "rewards": constant},
            "oracle_score": {**score, "policy": "oracle:3:plan", "rewards": oracle},
            "constant_reward": mc, "oracle_reward": mo, "gap": (mo - mc) / abs(mo),
            "oracle_better_on_seeds": sum(o > c for o, c in zip(oracle, constant, strict=True)),
            **kw}  # fmt: skip


def test_paired_p_is_small_only_for_a_consistent_lead() -> None:
    assert paired_p(_result([-4.0, -4.1, -3.9], [-4.8, -4.85, -4.7])) < 0.01
    assert paired_p(_result([-4.0, -5.0, -3.0], [-4.1, -4.5, -3.6])) > 0.05
    assert math.isnan(paired_p(_result([-4.0], [-4.8])))


def test_merged_results_count_as_done(tmp_path: Path) -> None:
    sc = load_scenario(CPU)
    settings = {"runs": 3, "train_seeds": list(TRAIN_SEEDS), "horizon": None,
                "horizon_rule": "p95 start-up + 2 steps", "oracle_mode": "plan",
                "max_levels": None, "keep": 2}  # fmt: skip
    fp = hashlib.sha256(resolved_json(sc).encode()).hexdigest()
    beside = tmp_path / "beside"
    beside.mkdir()
    r = _result([-4.0, -4.1, -3.9], [-4.8, -4.85, -4.7], fingerprint=fp, settings=settings)
    prov = {"command": "made beside", "commit": "abc1234", "date": "today"}
    (beside / "headroom.json").write_text(json.dumps({"provenance": prov, "results": [r]}))
    out = tmp_path / "out"
    code = main([str(CPU), "--out", str(out), "--runs", "3", "--keep", "2", "--merge",
                 str(beside)])  # fmt: skip
    assert code == 0  # nothing ran (a run would take minutes) and the gap passes
    store = json.loads((out / "headroom.json").read_text())
    assert store["results"][0]["oracle_score"]["rewards"] == [-4.0, -4.1, -3.9]
    assert store["provenance"]["runs"][str(beside)]["commit"] == "abc1234"
    md = (out / "headroom.md").read_text()
    assert "merged from" in md and "abc1234" in md and "| 3 of 3 seeds |" in md
    assert main([str(CPU), "--out", str(out), "--merge", str(tmp_path / "nope")]) == 2
