"""The executor a command's ``--jobs`` and ``--ray`` ask for (agents.evaluation.executor)."""

from __future__ import annotations

from agents.evaluation.executor import Executor, LocalExecutor


def make_executor(jobs: int = 1, ray: str | None = None) -> Executor:
    """``--ray`` (an address, or ``local`` to start Ray here) wins over ``--jobs``, which then
    sizes a local Ray instance (0: every CPU); Ray is imported only when asked for."""
    if ray is None:
        return LocalExecutor(jobs)
    from agents.evaluation.ray_executor import RayExecutor

    return RayExecutor(ray, jobs)
