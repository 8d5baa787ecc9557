"""The evaluation harness: every policy x pattern x seed, resumable, in parallel.

It knows nothing of how an episode runs: `episode(policy, pattern, seed, run_dir)`
writes one run directory with `kisim.core.rundir.write_run`. All policies get the same
seeds (common random numbers), runs are ordered seed-major so that an interrupted
evaluation leaves complete seed blocks, and a run with a `summary.json` on disk is
never run again. A failing run is recorded (and left incomplete, so a rerun retries
it) while the others finish. Statistics and the report come from `report.render`.

Where the runs execute is an `agents.evaluation.executor.Executor`: this process, local
worker processes (``--jobs``; they die with the harness and are killed when it stops early)
or a Ray cluster (``--ray``); the run directories - and so every table computed from them -
are the same wherever the runs went. Ctrl-C, SIGTERM (`run.on_sigterm`) and the memory
watchdog mark ``eval.json`` ``interrupted`` or ``stopped`` and say where the finished runs are.
"""

from __future__ import annotations

import pickle
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agents.evaluation import report
from agents.evaluation.executor import EpisodeFn, Executor, LocalExecutor, Task, current, run_one
from agents.evaluation.model_digests import check_models, model_digests
from kisim.core.errors import Interrupted, KisimError, ResourceError
from kisim.core.outputs import HIDDEN_TEMP, check_out_dir, remove_stale
from kisim.core.rundir import is_complete, run_path, safe_name, write_json

_run_one = run_one  # the name older callers and tests used
__all__ = ["EpisodeFn", "EvalResult", "RunFailure", "Task", "evaluate"]


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


def _earlier_calls(out: Path, fingerprint: str | None) -> list[dict[str, Any]]:
    """The calls eval.json records for OUT, once runs of a different scenario are refused
    (resume must be like with like). Kept so that a resumed or extended evaluation still
    says which call ran its episodes; a manifest from before the list had only its last."""
    man = report.load_manifest(out) or {}
    old = man.get("fingerprint")
    if fingerprint and old and old != fingerprint:
        raise KisimError(
            f"{out}: holds runs of a different scenario (fingerprint {old[:12]} != "
            f"{fingerprint[:12]}); use another --out"
        )
    if isinstance(man.get("calls"), list):
        return list(man["calls"])
    keys = ("status", "ran", "skipped", "elapsed_s", "jobs", "executor")
    return [{k: man[k] for k in keys if k in man}] if "ran" in man else []


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
    executor: Executor | None = None,
    render: bool = True,
) -> EvalResult:
    """Run what is missing of policies x patterns x seeds under OUT, then render the report.

    `reference` None means the first policy. `fingerprint` (e.g. a hash of the resolved
    scenario) is stored in OUT/eval.json and must match on resume. Runs execute on
    `executor`, else on the one an enclosing `executor.using` chose, else locally: `jobs` 0
    means one process per CPU; jobs = 1 runs in this process (no pickling, easy debugging).
    `render` False leaves the tables and report to the caller (`kisim sweep` writes its own).
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
    calls = _earlier_calls(out, fingerprint)
    earlier_models = (report.load_manifest(out) or {}).get("models") or {}
    models = model_digests(policies)

    def has_runs(pol: str) -> bool:
        return any(is_complete(run_path(out, pol, pat, s)) for pat in patterns for s in seeds)

    check_models(out, earlier_models, models, has_runs)
    ex = executor or current() or LocalExecutor(jobs)
    if not isinstance(ex, LocalExecutor) or ex.jobs > 1:
        try:
            pickle.dumps(episode)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"episode must be picklable for jobs > 1 or Ray ({e})") from None

    t0 = time.perf_counter()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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
        "fingerprint": fingerprint, "meta": meta or {},
        "jobs": getattr(ex, "jobs", jobs), "executor": ex.name, "calls": calls,
    }  # fmt: skip
    if models or earlier_models:
        manifest["models"] = {**earlier_models, **models}
    write_json(out / report.MANIFEST, {**manifest, "status": "running"})

    def call(status: str) -> dict[str, Any]:
        """This call's line in eval.json's `calls`, and the top-level fields it updates."""
        now = {"status": status, "ran": res.ran, "skipped": res.skipped,
               "elapsed_s": round(time.perf_counter() - t0, 3)}  # fmt: skip
        line = {"started_utc": started, **now, "failed": len(res.failed),
                "jobs": manifest["jobs"], "executor": ex.name}  # fmt: skip
        return {**manifest, **now, "calls": [*calls, line]}

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
        write_json(out / report.MANIFEST, {**call(status), "reason": why})
        return (f"finished runs are on disk in {out} ({res.ran + res.skipped} of "
                f"{len(tasks) + res.skipped}); rerun with the same --out to resume")  # fmt: skip

    try:
        if tasks:
            ex.run(episode, tasks, done)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted: {stopped('interrupted', 'Ctrl-C or SIGTERM')}") from None
    except ResourceError as e:
        raise ResourceError(f"{e}; {stopped('stopped', str(e))}") from None
    finally:
        bar.close()

    res.elapsed_s = time.perf_counter() - t0
    failed = [{"policy": f.policy, "pattern": f.pattern, "seed": f.seed, "error": f.error}
              for f in res.failed]  # fmt: skip
    write_json(out / report.MANIFEST,
               {**call("complete" if not failed else "incomplete"), "failed": failed})
    if render and res.ran + res.skipped > 0:
        remove_stale(out / "figures", HIDDEN_TEMP)  # left by a render that was killed
        res.files = report.render(out, figures=figures)
    res.elapsed_s = time.perf_counter() - t0  # runs + statistics + figures + report
    return res
