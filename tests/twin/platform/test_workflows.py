"""Workflow DAG semantics pinned to Argo Workflows (DAG, conditionals, retries)."""

from __future__ import annotations

import numpy as np
import pytest

from kisim.core.platform import RetrySpec, WorkflowSpec
from twin.platform.workflows import (
    done,
    may_retry,
    ready,
    resume_point,
    retry_delay,
    sample_duration,
    sample_quality,
)

PIPE = WorkflowSpec.model_validate({"steps": [
    {"name": "ingest", "duration_s": 10},
    {"name": "qa", "depends": ["ingest"], "assesses_quality": True, "duration_s": 5},
    {"name": "low", "depends": ["qa"], "when": ["low"], "duration_s": 10},
    {"name": "high", "depends": ["qa"], "when": ["medium", "high"], "duration_s": 60},
    {"name": "mesh", "depends": ["qa"], "duration_s": 20},
    {"name": "out", "depends": ["low", "high", "mesh"], "duration_s": 5},
]})


def test_backoff_doubles_and_is_capped() -> None:
    """retryStrategy.backoff: retry k waits duration x factor^(k-1), capped by `cap`; after
    `limit` retries the task fails (argo-workflows docs, "Retries"; examples/retry-backoff)."""
    r = RetrySpec(limit=3, backoff_s=10, factor=2, max_backoff_s=35)
    assert [retry_delay(k, r) for k in (1, 2, 3, 4)] == [10, 20, 35, 35]
    assert may_retry(3, r) and not may_retry(4, r)


def test_conditional_path_parallel_branches_and_fan_in() -> None:
    """A false `when` skips a task and a skipped dependency counts as completed; tasks whose
    dependencies are met run in parallel; a fan-in waits for all (docs "DAG")."""
    run, skip = ready(PIPE, set(), set(), None)
    assert [s.name for s in run] == ["ingest"] and not skip
    fin = {"ingest", "qa"}
    run, skip = ready(PIPE, fin, fin, None)  # quality unknown: conditional steps wait
    assert [s.name for s in run] == ["mesh"]
    run, skip = ready(PIPE, fin, fin, "high")
    assert {s.name for s in run} == {"high", "mesh"} and [s.name for s in skip] == ["low"]
    fin2 = fin | {"low", "high"}
    run, _ = ready(PIPE, fin2, fin2, "high")
    assert [s.name for s in run] == ["mesh"]  # out waits for mesh too
    assert not done(PIPE, fin2) and done(PIPE, fin2 | {"mesh", "out"})


def test_checkpoint_resume_and_samples() -> None:
    """A restarted step resumes from its last checkpoint; without checkpoints from zero.
    Durations are lognormal with the step's mean; qualities follow the template."""
    assert resume_point(95.0, 30.0) == 90.0 and resume_point(95.0, None) == 0.0
    rng = np.random.default_rng(1)
    step = PIPE.steps[3]
    xs = [sample_duration(rng, step) for _ in range(20000)]
    # mean 60, cv 0.3: the sample mean's standard error is 60*0.3/sqrt(20000) = 0.127
    assert np.mean(xs) == pytest.approx(60, abs=5 * 0.127)
    qs = [sample_quality(rng, PIPE) for _ in range(20000)]
    # p(high) = 0.3: standard error sqrt(.3*.7/20000) = 0.0032
    assert qs.count("high") / len(qs) == pytest.approx(0.3, abs=5 * 0.0032)


def test_cycles_and_unknown_dependencies_are_errors() -> None:
    with pytest.raises(ValueError, match="not an earlier step"):
        WorkflowSpec.model_validate({"steps": [{"name": "a", "depends": ["b"], "duration_s": 1},
                                               {"name": "b", "duration_s": 1}]})
