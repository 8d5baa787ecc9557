"""`kisim demo`: the main job on the demo's scenario, end to end and resumable.

The scenario is the benchmark suite's `gpu-fleet` (`DEMO_SCENARIO`,
``configs/scenarios/suite/gpu-fleet.yaml``): a fleet of T4 GPU pods with 60-180 s cold starts
under an 8x sine swing of open-loop load, priced in money (the `cost` reward) - a problem
where the best constant fleet loses more than 10 % of the reward to the oracle
(results/suite-headroom/), so a policy has to scale up and down to win. Training and
evaluation use the scenario's own load pattern unless patterns are given.

1. **Train** PPO briefly on the twin (`configs/train/demo.yaml`: the default config with
   a 5-minute time box) into ``OUT/train``. A finished run there with the same scenario
   and config is reused; an unfinished one (Ctrl-C, crash) is resumed from its last
   checkpoint; one with another scenario or config is replaced.
2. **Evaluate** ``ppo:OUT/train/best_model.zip`` against the baselines on the four seed
   patterns with `kisim eval`'s harness (`agents.evaluation.run.run_eval`; resumable: runs
   on disk are skipped). PPO runs of an older model, or any run of another scenario
   (e.g. a changed calibration), are removed first so that nothing stale is mixed in.
3. **Report**: the harness writes ``report.md``, ``summary.csv``, ``significance.csv``
   and ``figures/``; the demo copies the training figure next to them and adds a
   section with the training run and the headline: per pattern, PPO against the
   reference (hpa) on SLO violations, replica-seconds and episode reward, with the
   Holm-adjusted p-values, and whether PPO beats it.

"Beats" is the criterion of the PPO issue (docs/training.md): fewer SLO violations at no
more replica-seconds, or a better episode reward with no worse SLO - each difference
significant at p < 0.05 (Holm-adjusted paired t-test; the Wilcoxon signed-rank test
where the t-test is undefined because the difference is the same on every seed), "no
more / no worse" meaning not significantly more / worse. Nothing here assumes the
numbers of a particular calibration.
"""

from __future__ import annotations

import csv
import hashlib
import math
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kisim.core.paths import config_path
from kisim.core.rundir import atomic_write, read_json, safe_name, write_json

DEMO_CONFIG = config_path("train", "demo.yaml")
DEMO_SCENARIO = config_path("scenarios", "suite", "gpu-fleet.yaml")
BASELINES = ("static", "hpa", "threshold", "kpa")  # + "oracle" with --oracle (slow: forks)
STATE = "demo.json"
FORMAT = "kisim-demo/1"
ALPHA = 0.05
FIGURE = "training_progress"


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class PatternVerdict:
    """PPO against the reference on one pattern (means over seeds, Holm-adjusted p)."""

    pattern: str
    slo: tuple[float, float]  # PPO, reference
    replica_s: tuple[float, float]
    reward: tuple[float, float] | None
    p_slo: tuple[float | None, str]  # p and the test it came from ("t", "W" or "")
    p_replica_s: tuple[float | None, str]
    p_reward: tuple[float | None, str]
    oracle_share: float | None  # share of the oracle's reward margin over the reference
    beats: bool
    how: str = ""  # which criterion holds: "SLO and cost", "reward" or ""


@dataclass
class DemoResult:
    out: Path
    report: Path
    ppo: str  # the policy spec evaluated
    reference: str
    runs: int
    train: dict[str, Any]  # stopped.json of the run, plus "reused" and "session_s"
    train_s: float
    eval_s: float
    wall_s: float
    verdicts: list[PatternVerdict] = field(default_factory=list)


# --------------------------------------------------------------------------- 1. train


def train_or_reuse(out: Path, config: Path, overrides: dict[str, Any], retrain: bool,
                   log: Callable[[str], None],
                   scenario: Path = DEMO_SCENARIO) -> dict[str, Any]:  # fmt: skip
    """Train into OUT/train, or reuse / resume the run already there (module doc)."""
    from agents.training.checkpoints import checkpoints
    from agents.training.train import train
    from agents.training.train_config import load_train_config
    from agents.training.train_dir import read_run_config
    from kisim.core.config import load_scenario, scenario_fingerprint
    from kisim.core.errors import KisimError

    t0 = time.perf_counter()
    tdir = out / "train"
    sc = load_scenario(scenario)
    cfg = load_train_config(config, **overrides)
    resume, why = False, ""
    if (tdir / "config.json").is_file() and not retrain:
        try:
            _, old, d = read_run_config(tdir)
            same_sc = d.get("fingerprint") == scenario_fingerprint(sc)
            skip: Any = {"budget": True}
            same_cfg = old.model_dump(exclude=skip) == cfg.model_dump(exclude=skip)
            same_budget = old.budget == cfg.budget
        except (KisimError, ValueError, KeyError) as e:
            same_sc = same_cfg = same_budget = False
            why = f"unreadable ({e})"
        stopped = tdir / "stopped.json"
        done = stopped.is_file() and read_json(stopped).get("kind") != "interrupted"
        if same_sc and same_cfg and same_budget and done and (tdir / "best_model.zip").is_file():
            res = {**read_json(stopped), "reused": True, "session_s": 0.0}
            log(f"reusing the finished training run in {tdir} (same scenario and config; "
                "--retrain trains afresh)")  # fmt: skip
            return res
        if same_sc and same_cfg and checkpoints(tdir):
            resume = True
            log(f"continuing the training run in {tdir} from its last checkpoint")
        elif not why:
            why = ("trained on another scenario (calibration changed?)" if not same_sc else
                   "another training config" if not same_cfg else "no checkpoint to resume")
    if tdir.exists() and not resume:
        log(f"replacing the training run in {tdir}: "
            f"{why or ('--retrain' if retrain else 'no finished run')}")
        shutil.rmtree(tdir)
    res = train(sc, cfg, tdir, resume=resume, scenario_file=str(scenario),
                log=log, progress=True)  # fmt: skip
    if res.stop_kind == "interrupted":
        raise KeyboardInterrupt
    return {**read_json(tdir / "stopped.json"), "reused": False,
            "session_s": round(time.perf_counter() - t0, 3)}  # fmt: skip


# --------------------------------------------------------------------------- 2. evaluate


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scenario_fingerprint(scenario: Path = DEMO_SCENARIO) -> str:
    """The fingerprint `run_eval` stores for the scenario (so stale runs are found)."""
    from kisim.core.config import scenario_fingerprint
    from kisim.core.prepare import prepare

    return scenario_fingerprint(prepare(scenario, None, None, None))


def drop_stale_runs(out: Path, ppo: str, model_sha: str, log: Callable[[str], None],
                    scenario: Path = DEMO_SCENARIO) -> None:  # fmt: skip
    """Remove evaluation runs that would mix in another scenario or another PPO model."""
    from agents.evaluation.report import MANIFEST, load_manifest

    man = load_manifest(out) or {}
    state = read_json(out / STATE) if (out / STATE).is_file() else {}
    runs = out / "runs"
    fp = _scenario_fingerprint(scenario)
    if runs.is_dir() and (state.get("format") != FORMAT or man.get("fingerprint") != fp):
        log(f"removing the evaluation runs in {runs}: another scenario or an older demo")
        shutil.rmtree(runs)
        (out / MANIFEST).unlink(missing_ok=True)
    stale = runs / safe_name(ppo)
    if stale.is_dir() and state.get("model_sha256") != model_sha:
        log(f"removing the PPO runs of an older model in {stale}")
        shutil.rmtree(stale)
    write_json(out / STATE, {"format": FORMAT, "fingerprint": fp, "ppo": ppo,
                             "model_sha256": model_sha})  # fmt: skip


# --------------------------------------------------------------------------- 3. headline


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _float(x: str | None) -> float | None:
    try:
        v = float(x) if x not in (None, "") else None
    except ValueError:
        return None
    return v if v is not None and math.isfinite(v) else None


def _p(row: dict[str, str] | None) -> tuple[float | None, str]:
    """The lead test's Holm-adjusted p; the Wilcoxon test's where the t-test is undefined."""
    if row is None:
        return None, ""
    t = _float(row.get("paired_p_holm"))
    if t is not None:
        return t, "t"
    w = _float(row.get("wilcoxon_p_holm"))
    return (w, "W") if w is not None else (None, "")


def _sig(p: tuple[float | None, str]) -> bool:
    return p[0] is not None and p[0] < ALPHA


def verdicts(out: Path, ppo: str, reference: str, patterns: Sequence[str]) -> list[PatternVerdict]:
    """PPO against the reference per pattern, from summary.csv and significance.csv."""
    mean = {(r["policy"], r["pattern"], r["metric"]): float(r["mean"])
            for r in _rows(out / "summary.csv")}  # fmt: skip
    sig = {(r["policy"], r["pattern"], r["metric"]): r for r in _rows(out / "significance.csv")
           if r["reference"] == reference}  # fmt: skip
    res = []
    for pat in patterns:
        def m(pol: str, metric: str, pat: str = pat) -> float | None:
            return mean.get((pol, pat, metric))

        slo, slo_r = m(ppo, "slo_violation_rate"), m(reference, "slo_violation_rate")
        rs, rs_r = m(ppo, "replica_s"), m(reference, "replica_s")
        if None in (slo, slo_r, rs, rs_r):
            continue
        rw, rw_r, rw_o = m(ppo, "episode_reward"), m(reference, "episode_reward"), \
            m("oracle", "episode_reward")  # fmt: skip
        p_slo, p_rs, p_rw = (_p(sig.get((ppo, pat, k)))
                             for k in ("slo_violation_rate", "replica_s", "episode_reward"))
        assert slo is not None and slo_r is not None and rs is not None and rs_r is not None
        fewer_slo = slo < slo_r and _sig(p_slo)
        no_more_cost = rs <= rs_r or not _sig(p_rs)
        no_worse_slo = slo <= slo_r or not _sig(p_slo)
        better_reward = rw is not None and rw_r is not None and rw > rw_r and _sig(p_rw)
        share = None
        if rw is not None and rw_r is not None and rw_o is not None and rw_o - rw_r > 1e-9:
            share = (rw - rw_r) / (rw_o - rw_r)
        by_slo, by_reward = fewer_slo and no_more_cost, better_reward and no_worse_slo
        how = "fewer violations, no more cost" if by_slo else "better reward" if by_reward else ""
        res.append(PatternVerdict(
            pat, (slo, slo_r), (rs, rs_r), (rw, rw_r) if rw is not None and rw_r is not None
            else None, p_slo, p_rs, p_rw, share, by_slo or by_reward, how))  # fmt: skip
    return res


def _fp(p: tuple[float | None, str]) -> str:
    if p[0] is None:
        return "p -"
    w = " W" if p[1] == "W" else ""
    return f"p {p[0]:.2g}{w}" if p[0] >= 1e-3 else f"p {p[0]:.0e}{w}"


def headline_lines(res: DemoResult) -> list[str]:
    """The closing lines: per pattern PPO vs the reference, then the count of wins."""
    ref = res.reference
    lines = [f"headline: PPO vs {ref}, mean over {res.runs} seeds per pattern "
             f"(p: Holm-adjusted paired t; W: Wilcoxon where t is undefined)"]  # fmt: skip
    for v in res.verdicts:
        verdict = f"PPO beats {ref} ({v.how})" if v.beats else f"PPO does not beat {ref}"
        lines.append(f"  {v.pattern:9s} SLO violations {v.slo[0]:7.3%} vs {v.slo[1]:7.3%} "
                     f"({_fp(v.p_slo)}); replica-s {v.replica_s[0]:6,.0f} vs "
                     f"{v.replica_s[1]:6,.0f} ({_fp(v.p_replica_s)}) -> {verdict}")  # fmt: skip
    n = sum(v.beats for v in res.verdicts)
    lines.append(f"PPO beats {ref} on {n} of {len(res.verdicts)} patterns (fewer SLO violations "
                 "at no more replica-seconds, or a better reward with no worse SLO; p < 0.05)")
    return lines


def report_section(res: DemoResult, config: Path) -> str:
    """Markdown: the training run, its figure, and the headline table."""
    t, ref = res.train, res.reference
    best = t.get("best", {})
    fb = t.get("first_beats_baseline")
    first = (f"first beat {t.get('baseline', ref)} on every pattern of the held-out episodes "
             f"after {fb['wall_s'] / 60:.1f} min ({fb['timesteps']:,} steps)" if fb else
             f"never beat {t.get('baseline', ref)} on every held-out pattern during training")
    reused = " (reused from an earlier demo run)" if t.get("reused") else ""
    L = ["## Demo: PPO trained on the twin, against the baselines", "",
         f"- **Training**{reused}: `{_rel(config)}`, `{_rel(res.out / 'train')}`; stopped "
         f"({t.get('kind')}) after {t.get('timesteps', 0):,} steps and "
         f"{t.get('wall_s', 0) / 60:.1f} min: {t.get('reason', '')}.",
         "- **Best model** (highest held-out evaluation reward, "
         f"{best.get('mean_reward', math.nan):.3f}) at {best.get('timesteps', 0):,} steps, "
         f"{best.get('wall_s', math.nan) / 60:.1f} min; {first}.",
         f"- **Evaluated** as `{res.ppo}` (deterministic actions) on seeds 0-{res.runs - 1}, "
         "disjoint from every training and held-out seed.", "",
         f"![{FIGURE}](figures/{FIGURE}.png) ([PDF](figures/{FIGURE}.pdf))", "",
         "Training progress: (a) episode reward, training and held-out (95 % CI) with the "
         f"{ref} level; (b) held-out reward minus {ref}'s per pattern; (c) held-out SLO "
         "violations and replica-seconds; (d) policy entropy; (e) policy change (approx KL, "
         "KL between evaluated policies, action drift); (f) value loss. Dotted: best model "
         "(orange), stop (black).", ""]  # fmt: skip
    oracle = any(v.oracle_share is not None for v in res.verdicts)
    cols = [f"SLO-violation rate: PPO vs {ref} (p)", f"replica-s: PPO vs {ref} (p)",
            f"episode reward: PPO vs {ref} (p)", *(["oracle's margin captured"] * oracle),
            f"PPO beats {ref}"]  # fmt: skip
    L += ["| pattern | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for v in res.verdicts:
        rw = (f"{v.reward[0]:.3f} vs {v.reward[1]:.3f} ({_fp(v.p_reward)})" if v.reward else "-")
        cells = [f"{v.slo[0]:.4%} vs {v.slo[1]:.4%} ({_fp(v.p_slo)})",
                 f"{v.replica_s[0]:,.0f} vs {v.replica_s[1]:,.0f} ({_fp(v.p_replica_s)})", rw,
                 *([f"{v.oracle_share:.1%}" if v.oracle_share is not None else "-"] * oracle),
                 f"yes: {v.how}" if v.beats else "no"]  # fmt: skip
        L.append(f"| {v.pattern} | " + " | ".join(cells) + " |")
    L += ["", "Means over seeds. p: Holm-adjusted paired t-test (W: Wilcoxon signed-rank where "
          "the t-test is undefined: the same difference on every seed). *Beats*: fewer SLO "
          "violations at not significantly more replica-seconds, or a better episode reward "
          "at not significantly more SLO violations, the difference significant at p < 0.05."
          + (f" The oracle's margin captured is (PPO - {ref}) / (oracle - {ref}) of the mean "
             "episode reward." if oracle else " `--oracle` adds the clairvoyant oracle and "
             "the share of its margin over the reference that PPO captures."), ""]  # fmt: skip
    return "\n".join(L)


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _insert_section(report: Path, section: str) -> None:
    """The demo's section first in the report: stored as its lead section (which
    `kisim report` keeps when it re-renders) and put where a re-render puts it."""
    from agents.evaluation.report import LEAD

    atomic_write(report.parent / LEAD, section)
    text = report.read_text()
    i = text.find("\n## ")
    text = text + "\n" + section if i < 0 else text[: i + 1] + section + "\n" + text[i + 1 :]
    atomic_write(report, text)


# --------------------------------------------------------------------------- the demo


def run_demo(out: Path, *, runs: int = 10, jobs: int = 0, baselines: Sequence[str] = BASELINES,
             patterns: Sequence[str] | None = None,
             config: Path = DEMO_CONFIG, overrides: dict[str, Any] | None = None,
             retrain: bool = False, scenario: Path = DEMO_SCENARIO,
             log: Callable[[str], None] = _stderr) -> DemoResult:  # fmt: skip
    """Train (or reuse), evaluate against the baselines, write the report (module doc).

    `patterns` (default: the scenario's own) are both trained and evaluated on, unless
    `overrides` set ``envs.patterns``."""
    from agents.evaluation.run import run_eval
    from kisim.core.config import load_scenario
    from kisim.core.errors import KisimError

    t0 = time.perf_counter()
    out = Path(out)
    if runs < 2:
        raise KisimError(f"--runs {runs}: the significance tests need at least 2 seeds")
    if not patterns:
        patterns = [load_scenario(scenario).traffic.pattern.name]
    overrides = {"envs.patterns": list(patterns), **(overrides or {})}
    log(f"[1/3] training PPO on the twin ({_rel(scenario)}, {_rel(config)}) -> {out / 'train'}")
    train = train_or_reuse(out, config, overrides, retrain, log, scenario)
    t1 = time.perf_counter()
    ppo = f"ppo:{out / 'train' / 'best_model.zip'}"
    policies = [*baselines, ppo]
    reference = "hpa" if "hpa" in baselines else policies[0]
    log(f"[2/3] evaluating {', '.join(policies)} on {', '.join(patterns)} x {runs} seeds -> {out}")
    drop_stale_runs(out, ppo, _sha256(out / "train" / "best_model.zip"), log, scenario)
    from agents.evaluation.report import LEAD

    (out / LEAD).unlink(missing_ok=True)  # the harness's report must not carry the old one
    ev: Any = run_eval(scenario, policies, list(patterns), runs, out, jobs, None,
                       reference)  # fmt: skip
    t2 = time.perf_counter()
    if ev.failed:
        raise KisimError(f"{len(ev.failed)} evaluation runs failed (see {out}/eval.json); "
                         "rerun the demo to retry them")  # fmt: skip
    log("[3/3] report")
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    for ext in ("png", "pdf"):
        src = out / "train" / f"{FIGURE}.{ext}"
        if src.is_file():
            shutil.copyfile(src, figs / src.name)
    res = DemoResult(out, out / "report.md", ppo, reference, runs, train, t1 - t0, t2 - t1, 0.0)
    res.verdicts = verdicts(out, ppo, reference, patterns)
    if res.report.is_file():
        _insert_section(res.report, report_section(res, config))
    res.wall_s = time.perf_counter() - t0
    state = read_json(out / STATE)
    write_json(out / STATE, {**state, "train_s": round(res.train_s, 1),
                             "eval_s": round(res.eval_s, 1), "wall_s": round(res.wall_s, 1),
                             "beats": {v.pattern: v.beats for v in res.verdicts}})  # fmt: skip
    return res


__all__ = ["BASELINES", "DEMO_CONFIG", "DEMO_SCENARIO", "DemoResult", "headline_lines", "run_demo",
           "verdicts"]
