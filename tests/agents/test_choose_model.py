"""scripts/choose-model.py: the held-out choice prefers a model that beats the rule by the
claim over one with a better reward that does not, and says why."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAD = "policy,reference,pattern,metric,mean,diff,paired_p_holm\n"


def _script():
    spec = importlib.util.spec_from_file_location(
        "choose_model", ROOT / "scripts" / "choose-model.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _write(out: Path, rows: list[tuple[str, str, float, float, float]]) -> None:
    out.mkdir()
    lines = [f"{p},kpa,schedule,{m},{mean},{d},{pv}" for p, m, mean, d, pv in rows]
    (out / "significance.csv").write_text(HEAD + "\n".join(lines) + "\n")


def test_a_win_by_the_rule_is_chosen_over_a_better_reward(tmp_path: Path) -> None:
    out = tmp_path / "e"
    _write(out, [
        # dearer and better: ahead on reward, no win by the rule
        ("ppo:a", "cost_per_million", 0.236, 0.002, 0.001),
        ("ppo:a", "slo_attainment", 0.966, 0.005, 0.001),
        ("ppo:a", "episode_reward", -12.4, 0.6, 0.001),
        # cheaper at no worse SLO: a win, lower reward
        ("ppo:b", "cost_per_million", 0.230, -0.004, 0.001),
        ("ppo:b", "slo_attainment", 0.960, -0.001, 0.4),
        ("ppo:b", "episode_reward", -12.9, 0.1, 0.3),
    ])  # fmt: skip
    assert _script().main(out) == 0
    text = (out / "choice.md").read_text()
    assert "**Chosen: `ppo:b`** (beats the reference by the rule" in text
    assert "| `ppo:a` |" in text and "| no |" in text


def test_without_a_win_the_best_reward_is_chosen(tmp_path: Path) -> None:
    out = tmp_path / "e"
    _write(out, [
        ("ppo:a", "cost_per_million", 0.236, 0.002, 0.001),
        ("ppo:a", "slo_attainment", 0.966, 0.005, 0.001),
        ("ppo:a", "episode_reward", -12.4, 0.6, 0.001),
        ("ppo:b", "cost_per_million", 0.230, -0.004, 0.001),
        ("ppo:b", "slo_attainment", 0.950, -0.011, 0.001),
        ("ppo:b", "episode_reward", -12.9, 0.1, 0.3),
    ])  # fmt: skip
    assert _script().main(out) == 0
    assert "**Chosen: `ppo:a`** (none beats" in (out / "choice.md").read_text()


def test_a_folder_without_significance_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    assert _script().main(tmp_path) == 2
    assert capsys.readouterr().err.count("\n") == 1
