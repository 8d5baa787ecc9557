"""What `kisim train` logs: ``progress.csv`` (stable-baselines3's CSV, continued across
``--resume`` with the rows past the checkpoint dropped), TensorBoard, and the one-line
summary of each held-out evaluation."""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.training.convergence import EvalRecord
from agents.training.train_config import TrainConfig


def _appending_csv(path: Path, keep_upto: int | None) -> Any:
    """SB3's CSV writer continuing an existing file (rows past `keep_upto` steps dropped)."""
    from stable_baselines3.common.logger import CSVOutputFormat

    if keep_upto is not None and path.is_file():
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        if rows:
            head, body = rows[0], rows[1:]
            i = head.index("time/total_timesteps") if "time/total_timesteps" in head else None
            keep = [r for r in body if i is None or not r[i] or float(r[i]) <= keep_upto]
            with path.open("w", newline="") as f:
                csv.writer(f, lineterminator="\n").writerows([head, *keep])

    class Appending(CSVOutputFormat):
        def __init__(self, filename: str) -> None:
            exists = os.path.isfile(filename) and os.path.getsize(filename) > 0
            self.file = open(filename, "r+" if exists else "w+")  # noqa: SIM115 - closed by SB3
            self.keys = []
            if exists:
                self.keys = next(csv.reader([self.file.readline()]))
                self.file.seek(0, os.SEEK_END)
            self.separator, self.quotechar = ",", '"'

    return Appending(str(path))


def make_logger(out: Path, cfg: TrainConfig, keep_upto: int | None,
                log: Callable[[str], None]) -> Any:  # fmt: skip
    """SB3 logger writing OUT/progress.csv (continued from `keep_upto` steps) and OUT/tb."""
    from stable_baselines3.common.logger import HumanOutputFormat, Logger

    formats: list[Any] = [_appending_csv(out / "progress.csv", keep_upto)]
    if cfg.logging.verbose:
        formats.append(HumanOutputFormat(sys.stdout))
    if cfg.logging.tensorboard:
        try:
            from stable_baselines3.common.logger import TensorBoardOutputFormat

            formats.append(TensorBoardOutputFormat(str(out / "tb")))
        except (ImportError, AssertionError):  # SB3 asserts when tensorboard is missing
            log("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
    return Logger(str(out), formats)


def eval_line(rec: EvalRecord, baseline: str) -> str:
    """One evaluation in one line: reward vs the baseline, best, patterns beaten, KL, drift."""
    pats = rec.extra["patterns"]
    beat = ",".join(p for p, v in pats.items() if v["beats_baseline"]) or "none"
    kl = f"KL {rec.kl:.1e} drift {rec.drift:.0%}" if math.isfinite(rec.kl) else "KL -"
    return (f"eval {rec.index:3d} @ {rec.timesteps:7d} steps {rec.wall_s / 60:5.1f} min: "
            f"reward {rec.mean_reward:6.3f} ({baseline} {rec.extra['baseline_mean_reward']:.3f})"
            f"{' best' if rec.extra.get('best') else ''}; "
            f"beats {baseline} on {beat}; {kl}")  # fmt: skip
