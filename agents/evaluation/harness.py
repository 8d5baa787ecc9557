"""The evaluation harness: every policy x pattern x seed, resumable, in parallel.

It knows nothing of how an episode runs: `episode(policy, pattern, seed, run_dir)`
writes one run directory with `kisim.core.rundir.write_run`. All policies get the same
seeds (common random numbers), runs are ordered seed-major so that an interrupted
evaluation leaves complete seed blocks, and a run with a `summary.json` on disk is
never run again. A failing run is recorded (and left incomplete, so a rerun retries
it) while the others finish. Statistics and the report come from `report.render`.

Worker processes die with the harness (`_worker_init`: a parent-death signal, and
SIGINT left to the parent), and the harness kills them when it stops early; Ctrl-C,
SIGTERM (`run.on_sigterm`) and the memory watchdog mark ``eval.json`` ``interrupted``
or ``stopped`` and say where the finished runs are.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agents.evaluation import report
from kisim.core.errors import Interrupted, KisimError, ResourceError
from kisim.core.outputs import HIDDEN_TEMP, check_out_dir, remove_stale
from kisim.core.rundir import ERROR, atomic_write, is_complete, run_path, safe_name, write_json

EpisodeFn = Callable[[str, str, int, Path], None]
"""(policy spec, pattern, seed, run_dir) -> None; writes run_dir via `write_run`."""


@dataclass(frozen=True)
class RunFailure:
    policy: str
    pattern: str
    seed: int
    error: str  # one line: exception type and message
    run_dir: Path

    def __str__(self) -> str:
        return f"{self.policy} / {self.pattern} / seed {self.seed}: {self.error}"


@dataclass
class EvalResult:
    out: Path
    policies: list[str]
    patterns: list[str]
    seeds: list[int]
    reference: str
    ran: int = 0  # episodes run now and complete
    skipped: int = 0  # already complete on disk
    failed: list[RunFailure] = field(default_factory=list)
    elapsed_s: float = 0.0  # wall time of the whole call; eval.json has the runs' share
    files: dict[str, Path] = field(default_factory=dict)  # summary, significance, report, table

    @property
    def ok(self) -> bool:
        return not self.failed


Task = tuple[str, str, int, Path]


def _run_one(episode: EpisodeFn, task: Task) -> str | None:
    """Run one episode in a worker; None on success, else the error (traceback in error.txt)."""
    policy, pattern, seed, run_dir = task
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ERROR).unlink(missing_ok=True)
        episode(policy, pattern, seed, run_dir)
        if not is_complete(run_dir):
            raise RuntimeError("episode returned without writing summary.json (use write_run)")
        return None
    except BaseException as e:  # noqa: BLE001 - a run's failure must not stop the others
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        try:
            atomic_write(run_dir / ERROR, traceback.format_exc())
        except OSError:
            pass
        return msg


def _validate(policies: Sequence[str], patterns: Sequence[str], seeds: Sequence[int]) -> None:
    for what, xs in (("policies", policies), ("patterns", patterns), ("seeds", seeds)):
        if not xs:
            raise KisimError(f"no {what} given")
        if len(set(xs)) != len(xs):
            raise KisimError(f"{what} repeat: {', '.join(map(str, xs))}")
    dirs: dict[str, str] = {}
    for p in policies:
        if dirs.setdefault(safe_name(p), p) != p:
            raise KisimError(f"policies '{dirs[safe_name(p)]}' and '{p}' share a directory name")
    if any(int(s) < 0 for s in seeds):
        raise KisimError("seeds must be >= 0")


def _check_fingerprint(out: Path, fingerprint: str | None) -> None:
    """Refuse to mix runs of different scenarios in one OUT (resume must be like with like)."""
    man = report.load_manifest(out)
    old = (man or {}).get("fingerprint")
    if fingerprint and old and old != fingerprint:
        raise KisimError(
            f"{out}: holds runs of a different scenario (fingerprint {old[:12]} != "
            f"{fingerprint[:12]}); use another --out"
        )


def evaluate(
    policies: list[str],
    patterns: list[str],
    seeds: list[int],
    out: Path,
    episode: EpisodeFn,
    jobs: int = 1,
    reference: str | None = "hpa",
    progress: bool = True,
    fingerprint: str | None = None,
    meta: dict[str, Any] | None = None,
    figures: bool = True,
) -> EvalResult:
    """Run what is missing of policies x patterns x seeds under OUT, then render the report.

    `reference` None means the first policy. `fingerprint` (e.g. a hash of the resolved
    scenario) is stored in OUT/eval.json and must match on resume. `jobs` 0 means
    one process per CPU; jobs = 1 runs in this process (no pickling, easy debugging).
    """
    out = Path(out)
    policies, patterns, seeds = list(policies), list(patterns), [int(s) for s in seeds]
    _validate(policies, patterns, seeds)
    ref = reference if reference is not None else policies[0]
    if ref not in policies:
        raise KisimError(
            f"reference policy '{ref}' is not among the policies ({', '.join(policies)})"
        )
    if jobs < 0:
        raise KisimError(f"--jobs {jobs}: must be >= 1, or 0 for one per CPU")
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_fingerprint(out, fingerprint)
    jobs = jobs or (os.cpu_count() or 1)
    if jobs > 1:
        try:
            pickle.dumps(episode)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"episode must be picklable for jobs > 1 ({e})") from None

    t0 = time.perf_counter()
    res = EvalResult(out, policies, patterns, seeds, ref)
    tasks: list[Task] = []
    for seed in seeds:  # seed-major: an interrupted run leaves complete paired blocks
        for pat in patterns:
            for pol in policies:
                d = run_path(out, pol, pat, seed)
                if is_complete(d):
                    res.skipped += 1
                else:
                    tasks.append((pol, pat, seed, d))
    manifest: dict[str, Any] = {
        "format": "kisim-eval/1", "policies": policies, "patterns": patterns, "seeds": seeds,
        "reference": ref, "dirs": {p: safe_name(p) for p in policies},
        "fingerprint": fingerprint, "meta": meta or {}, "jobs": jobs,
    }  # fmt: skip
    write_json(out / report.MANIFEST, {**manifest, "status": "running"})

    bar = tqdm(total=len(tasks), desc="eval", unit="run", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)  # fmt: skip

    def done(task: Task, err: str | None) -> None:
        if err is None:
            res.ran += 1
        else:
            f = RunFailure(task[0], task[1], task[2], err, task[3])
            res.failed.append(f)
            tqdm.write(f"run failed: {f}", file=sys.stderr)
        bar.update(1)
        if res.failed:
            bar.set_postfix(failed=len(res.failed))

    def stopped(status: str, why: str) -> str:
        write_json(out / report.MANIFEST, {**manifest, "status": status, "reason": why,
                                           "ran": res.ran, "skipped": res.skipped})  # fmt: skip
        return (f"finished runs are on disk in {out} ({res.ran + res.skipped} of "
                f"{len(tasks) + res.skipped}); rerun with the same --out to resume")  # fmt: skip

    try:
        if jobs == 1 or len(tasks) <= 1:
            for t in tasks:
                done(t, _run_one(episode, t))
        else:
            _run_pool(episode, tasks, min(jobs, len(tasks)), done)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {stopped('interrupted', 'Ctrl-C or SIGTERM')}") from None
    except ResourceError as e:
        raise ResourceError(f"{e}; {stopped('stopped', str(e))}") from None
    finally:
        bar.close()

    res.elapsed_s = time.perf_counter() - t0
    failed = [{"policy": f.policy, "pattern": f.pattern, "seed": f.seed, "error": f.error}
              for f in res.failed]  # fmt: skip
    write_json(out / report.MANIFEST, {
        **manifest, "status": "complete" if not failed else "incomplete", "failed": failed,
        "ran": res.ran, "skipped": res.skipped, "elapsed_s": round(res.elapsed_s, 3),
    })  # fmt: skip
    if res.ran + res.skipped > 0:
        remove_stale(out / "figures", HIDDEN_TEMP)  # left by a render that was killed
        res.files = report.render(out, figures=figures)
    res.elapsed_s = time.perf_counter() - t0  # runs + statistics + figures + report
    return res


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


def _run_pool(
    episode: EpisodeFn, tasks: list[Task], jobs: int, done: Callable[[Task, str | None], None]
) -> None:
    """Run tasks over `jobs` processes; if a worker dies, retry the lost runs one by one.

    A crash (segfault, OOM kill) breaks the whole pool and every run in flight; rerunning
    those in single-run pools isolates the culprit so the innocent ones still complete.
    """
    lost: list[Task] = []
    with _pool(jobs) as pool:
        futs: dict[Future, Task] = {pool.submit(_run_one, episode, t): t for t in tasks}
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
                err = solo.submit(_run_one, episode, t).result()
        except BrokenProcessPool:
            err = "worker process died (crash or out of memory)"
        done(t, err)
