"""Workflow DAGs as Argo Workflows runs them: steps with dependencies, conditional paths,
parallel branches, retries with exponential back-off, checkpoints.

Argo semantics kept (argo-workflows docs, "DAG", "Conditionals", "Retries"):

* a task starts when all its ``dependencies`` have completed; tasks whose dependencies are
  met run in parallel (fan-out), a task depending on several waits for all (fan-in);
* a task whose ``when`` is false is *Skipped*, and a skipped dependency counts as completed
  (the 3D pipeline: quality assessment -> the low, medium or high path -> output);
* ``retryStrategy`` with ``backoff``: retry k (1, 2, ...) of a failed task waits
  ``duration x factor^(k-1)``, never more than ``cap``; after ``limit`` retries the task
  and its workflow fail;
* checkpoints are the application's (the step writes its state every ``checkpoint_s``): a
  restarted step resumes from its last checkpoint, so a preemption loses only the work
  since then.
"""

from __future__ import annotations

import math
from collections.abc import Set

import numpy as np

from kisim.core.platform import QUALITIES, RetrySpec, StepSpec, WorkflowSpec


def retry_delay(k: int, retry: RetrySpec) -> float:
    """Back-off before retry `k` (1-based): duration x factor^(k-1), capped."""
    if k < 1:
        raise ValueError("retries count from 1")
    return min(retry.backoff_s * retry.factor ** (k - 1), retry.max_backoff_s)


def may_retry(failures: int, retry: RetrySpec) -> bool:
    """Whether a task that has failed `failures` times is retried once more."""
    return failures <= retry.limit


def ready(spec: WorkflowSpec, finished: Set[str], started: Set[str],
          quality: str | None) -> tuple[list[StepSpec], list[StepSpec]]:  # fmt: skip
    """(steps to start now, steps to mark Skipped now): those not yet started whose
    dependencies have all finished (succeeded or skipped). A conditional step waits until
    the quality is known."""
    run: list[StepSpec] = []
    skip: list[StepSpec] = []
    for s in spec.steps:
        if s.name in started or not all(d in finished for d in s.depends):
            continue
        if s.when is not None:
            if quality is None:
                continue
            if quality not in s.when:
                skip.append(s)
                continue
        run.append(s)
    return run, skip


def done(spec: WorkflowSpec, finished: Set[str]) -> bool:
    """Every step has finished (succeeded or skipped)."""
    return all(s.name in finished for s in spec.steps)


def sample_quality(rng: np.random.Generator, spec: WorkflowSpec) -> str:
    """The input's quality class, drawn from the template's probabilities."""
    p = np.array([spec.quality.get(q, 0.0) for q in QUALITIES], dtype=float)
    return QUALITIES[int(rng.choice(len(QUALITIES), p=p / p.sum()))]


def sample_duration(rng: np.random.Generator, step: StepSpec) -> float:
    """A lognormal duration with the step's mean and coefficient of variation."""
    if step.duration_cv <= 0:
        return step.duration_s
    sigma = math.sqrt(math.log1p(step.duration_cv**2))
    return float(step.duration_s * rng.lognormal(-0.5 * sigma * sigma, sigma))


def resume_point(progress: float, checkpoint_s: float | None) -> float:
    """Work kept by a restarted step that had done `progress` seconds: the last checkpoint."""
    if checkpoint_s is None:
        return 0.0
    return math.floor(progress / checkpoint_s) * checkpoint_s
