"""scripts/choose-model.py: the held-out choice prefers a model that beats the rule by the
claim over one with a better reward that does not, and says why."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAD = "policy,reference,pattern,metric,mean,diff,paired_p_holm\n"


def _script():
    spec = importlib.util.spec_from_file_location(
        "choose_model", ROOT / "scripts" / "choose-model.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ahead on the reward, dearer and better: no win by the rule
DEARER_AND_BETTER = [
    ("ppo:a", "cost_per_million", 0.236, 0.002, 0.001),
    ("ppo:a", "slo_attainment", 0.966, 0.005, 0.001),
    ("ppo:a", "episode_reward", -12.4, 0.6, 0.001),
]


def _write(out: Path, rows: list[tuple[str, str, float, float, float]]) -> None:
    out.mkdir()
    lines = [f"{p},kpa,schedule,{m},{mean},{d},{pv}" for p, m, mean, d, pv in rows]
    (out / "significance.csv").write_text(HEAD + "\n".join(lines) + "\n")


@pytest.mark.parametrize(("b_slo", "b_slo_diff", "b_slo_p", "chosen"), [
    (0.960, -0.001, 0.4, "**Chosen: `ppo:b`** (beats the reference by the rule"),  # no worse
    (0.950, -0.011, 0.001, "**Chosen: `ppo:a`** (none beats"),  # significantly worse
])  # fmt: skip
def test_a_win_by_the_rule_comes_before_a_better_reward(
    tmp_path: Path, b_slo: float, b_slo_diff: float, b_slo_p: float, chosen: str
) -> None:
    """ppo:b is cheaper with a lower reward: chosen over ppo:a exactly when its SLO
    attainment is no worse than the reference's (a win by the rule)."""
    out = tmp_path / "e"
    _write(out, [
        *DEARER_AND_BETTER,
        ("ppo:b", "cost_per_million", 0.230, -0.004, 0.001),
        ("ppo:b", "slo_attainment", b_slo, b_slo_diff, b_slo_p),
        ("ppo:b", "episode_reward", -12.9, 0.1, 0.3),
    ])  # fmt: skip
    assert _script().main(out) == 0
    text = (out / "choice.md").read_text()
    assert chosen in text
    assert "| `ppo:a` |" in text and "| no |" in text


def test_a_folder_without_significance_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    assert _script().main(tmp_path) == 2
    assert capsys.readouterr().err.count("\n") == 1
