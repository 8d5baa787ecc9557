"""Spot capacity: interruption notices, then the node is gone.

AWS EC2 sends a *Spot Instance interruption notice* two minutes before it stops or
terminates the instance (EC2 user guide, "Spot Instance interruption notices"); the AWS Node
Termination Handler cordons and drains the node on the notice, so pods are deleted
gracefully and the node disappears when the two minutes are up. GCP Spot VMs get 30 s.
Interruptions are rare and unpredictable: the twin draws them per node as a Poisson process
at ``interruptions_per_hour`` (a scenario assumption; AWS publishes only frequency bands per
instance type, the "Spot Instance Advisor").
"""

from __future__ import annotations

import math

import numpy as np

AWS_NOTICE_S = 120.0
"""EC2 Spot interruption notice: two minutes."""


def next_interruption(rng: np.random.Generator, per_hour: float) -> float:
    """Seconds until a node's interruption notice (inf when the rate is 0)."""
    if per_hour <= 0:
        return math.inf
    return float(rng.exponential(3600.0 / per_hour))


def lost_work(started: float, notice_at: float, notice_s: float, grace_s: float,
              checkpoint_s: float | None) -> float:  # fmt: skip
    """Seconds of a batch step's progress lost to an interruption: the drain on the notice
    gives it `grace_s` (capped by the notice) to write a checkpoint; without checkpoints
    everything since it started is lost, with them only what follows the last checkpoint
    before the pod stops."""
    stop = notice_at + min(grace_s, notice_s)
    ran = max(stop - started, 0.0)
    if checkpoint_s is None:
        return ran
    return ran - math.floor(ran / checkpoint_s) * checkpoint_s
