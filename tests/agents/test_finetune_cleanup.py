"""A `kisim train --real` that fails before its first real episode leaves no half-started folder."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")

from agents.training.finetune import CHECKPOINTS, discard_unstarted  # noqa: E402


def _half_started(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text("{}")
    (out / "episodes.csv").write_text("episode\n")
    (out / ".work").mkdir()


def test_a_folder_it_made_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    _half_started(out)
    discard_unstarted(out, existed=False)
    assert not out.exists()


def test_a_folder_that_existed_keeps_only_what_was_there(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _half_started(out)
    discard_unstarted(out, existed=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_run_with_a_checkpoint_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "ft"
    _half_started(out)
    ck = out / CHECKPOINTS / "episode-1"
    ck.mkdir(parents=True)
    (ck / "model.zip").write_text("x")
    (ck / "state.json").write_text("{}")
    discard_unstarted(out, existed=False)
    assert (out / "config.json").is_file()
