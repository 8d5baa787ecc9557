"""Where the harness's runs execute: this process, a pool of local processes, or a Ray cluster.

An `Executor` takes the runs the harness found missing and calls ``done(task, error)`` once per
run, in completion order; the run's directory is complete on disk (``summary.json`` written
last) before ``done`` is called with ``None``. Every executor runs the same function,
`run_one`, on the same ``(policy, pattern, seed)`` - so a run's files depend on its seed alone,
never on where it ran, and summaries computed from the run directories are identical for
``--jobs 1``, ``--jobs K`` and ``--ray``.

`LocalExecutor` is what ``--jobs`` always meant (one process, or a process pool whose workers
die with the parent); `agents.evaluation.ray_executor.RayExecutor` spreads runs over a Ray
cluster; `agents.evaluation.fanout.make_executor` picks one from ``--jobs`` and ``--ray``.
Commands that nest several evaluations (``kisim benchmark``: tuning, then evaluation) pick
the executor once with `using`; `current` is what `harness.evaluate` falls back to.
"""

from __future__ import annotations

import ctypes
import os
import signal
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Protocol

from kisim.core.errors import KisimError, is_interrupt
from kisim.core.rundir import ERROR, atomic_write, is_complete

EpisodeFn = Callable[[str, str, int, Path], None]
"""(policy spec, pattern, seed, run_dir) -> None; writes run_dir via `write_run`."""

Task = tuple[str, str, int, Path]
"""(policy, pattern, seed, run_dir): one run."""

Done = Callable[[Task, str | None], None]
"""Called once per finished run: None on success, else a one-line error."""


def run_one(episode: EpisodeFn, task: Task) -> str | None:
    """Run one episode; None on success, else the error (its traceback in error.txt)."""
    policy, pattern, seed, run_dir = task
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ERROR).unlink(missing_ok=True)
        episode(policy, pattern, seed, run_dir)
        if not is_complete(run_dir):
            raise RuntimeError("episode returned without writing summary.json (use write_run)")
        return None
    except BaseException as e:  # noqa: BLE001 - a run's failure must not stop the others
        if is_interrupt(e):  # also one that landed inside a compiled function
            raise KeyboardInterrupt from None
        msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        try:
            atomic_write(run_dir / ERROR, traceback.format_exc())
        except OSError:
            pass
        return msg


class Executor(Protocol):
    """Runs tasks and reports each one through `done`; `close` releases what it holds."""

    name: str  # recorded in eval.json ("local", "local x4", "ray 10.0.0.5:6379")

    def run(self, episode: EpisodeFn, tasks: list[Task], done: Done) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """``--jobs``: 1 runs in this process (no pickling, easy debugging); K > 1 a process pool;
    0 one process per CPU."""

    def __init__(self, jobs: int = 1) -> None:
        if jobs < 0:
            raise KisimError(f"--jobs {jobs}: must be >= 1, or 0 for one per CPU")
        self.jobs = jobs or (os.cpu_count() or 1)
        self.name = "local" if self.jobs == 1 else f"local x{self.jobs}"

    def run(self, episode: EpisodeFn, tasks: list[Task], done: Done) -> None:
        if self.jobs == 1 or len(tasks) <= 1:
            for t in tasks:
                done(t, run_one(episode, t))
        else:
            _run_pool(episode, tasks, min(self.jobs, len(tasks)), done)

    def close(self) -> None:
        pass


_CURRENT: ContextVar[Executor | None] = ContextVar("kisim_executor", default=None)


def current() -> Executor | None:
    """The executor chosen by an enclosing `using`, if any."""
    return _CURRENT.get()


@contextmanager
def using(executor: Executor) -> Iterator[Executor]:
    """Every `harness.evaluate` inside runs on `executor` (unless given another); closed at
    the end (a Ray cluster this process started is shut down)."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)
        executor.close()


# --------------------------------------------------------------------------- local pool

_PR_SET_PDEATHSIG = 1


def _worker_init(parent: int) -> None:
    """Pool worker set-up: die with the parent, leave Ctrl-C to it.

    ``PR_SET_PDEATHSIG`` = SIGKILL (Linux) kills the worker when the process that forked it
    exits, even by ``kill -9``: without it, orphaned workers finished their queue and then
    blocked forever on the pool's pipe. SIGINT is ignored: the terminal sends it to the
    whole process group, and the parent alone decides (it kills the workers, `_stop`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the pool's own broken-pipe detection remains
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _pool(jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init,
                               initargs=(os.getpid(),))  # fmt: skip


def _stop(pool: ProcessPoolExecutor) -> None:
    """End a pool now: pending runs cancelled, running workers killed (their runs stay
    incomplete on disk, so a rerun redoes them)."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        p.kill()
    for p in procs:
        p.join(timeout=5)


def _run_pool(episode: EpisodeFn, tasks: list[Task], jobs: int, done: Done) -> None:
    """Run tasks over `jobs` processes; if a worker dies, retry the lost runs one by one.

    A crash (segfault, OOM kill) breaks the whole pool and every run in flight; rerunning
    those in single-run pools isolates the culprit so the innocent ones still complete.
    """
    lost: list[Task] = []
    with _pool(jobs) as pool:
        futs: dict[Future, Task] = {pool.submit(run_one, episode, t): t for t in tasks}
        pending = set(futs)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    try:
                        done(futs[f], f.result())
                    except BrokenProcessPool:
                        lost.append(futs[f])
        except BaseException:
            _stop(pool)
            raise
    for t in lost:
        try:
            with _pool(1) as solo:
                err = solo.submit(run_one, episode, t).result()
        except BrokenProcessPool:
            err = "worker process died (crash or out of memory)"
        done(t, err)
