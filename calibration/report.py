"""Files next to a calibration: YAML with a fit header, Markdown, figures.

`write_calibration(result, out)` writes ``NAME.yaml`` (loads with
`kisim.core.config.load_calibration`), ``NAME.report.md`` and ``NAME.figures/*.png`` (and ``.pdf``)
(service curve vs measurements and counters, residuals, overhead vs load, start-ups).
A validation's files: `calibration.validation_report`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from calibration.calibrate import CalibrationResult
from calibration.device_fit import DeviceFit
from calibration.fit import Estimate, spread_bounds
from calibration.idle_gap_figure import idle_gap_figure


def plt_agg():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, png: Path, dpi: int = 110) -> Path:
    """`png` and the same figure as PDF beside it (for papers), each written atomically;
    the PDF without a creation date, so a rerun writes the same bytes."""
    plt = plt_agg()
    for ext in ("png", "pdf"):
        path = png.with_suffix(f".{ext}")
        tmp = path.with_name(f".{path.name}.tmp")
        meta = {"CreationDate": None} if ext == "pdf" else {}
        fig.savefig(tmp, format=ext, dpi=dpi, metadata=meta)
        tmp.replace(path)
    plt.close(fig)
    return png


def clean(x: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python (strict JSON)."""
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _e(est: Estimate | None, unit: str = "") -> str:
    return est.fmt(unit) if est is not None else "—"


# --------------------------------------------------------------------------- calibration


def _prior_value(dev: object, dotted: str) -> str:
    """The value the calibration holds at a dotted field name (as written in `from_prior`)."""
    x: object = dev
    for part in dotted.split("."):
        x = getattr(x, part, None)
        if x is None:
            return "?"
    if hasattr(x, "model_dump"):
        return ", ".join(f"{k} {v}" for k, v in x.model_dump().items()).join("()")  # type: ignore[union-attr]
    return f"{x:g}" if isinstance(x, float) else str(x)


def fit_table(res: CalibrationResult) -> list[tuple[str, str, str, str]]:
    """(device, parameter, estimate [95% CI], how) rows."""
    rows: list[tuple[str, str, str, str]] = []
    for key, d in res.devices.items():
        c, dev = d.curve, d.device
        rows.append((key, "service.base_ms (b=1)", _e(c.base, " ms"), c.base.method))
        rows.append((key, "service.per_item_ms", _e(c.per_item, " ms"), c.per_item.method))
        rows.append(
            (
                key,
                "service form",
                f"{c.form} (lack-of-fit p = {c.lack_of_fit_p:.3g})",
                "table_ms when the affine form misfits (p < 0.001 and > 2 %)",
            )
        )
        rows.append(
            (
                key,
                "service.noise",
                f"{dev.service.noise.kind}, cv {_e(c.cv)}"
                if "service.noise" not in d.from_prior
                else f"{dev.service.noise.kind}, cv {dev.service.noise.cv:g} (prior)",
                f"AIC over {', '.join(c.loglik) or 'n/a'}"
                if "service.noise" not in d.from_prior
                else "not identifiable (counters only, or one measurement per batch size)",
            )
        )
        why = f": {d.in_load.why}" if d.in_load.why else ""
        rows.append(
            (
                key,
                "in-load factor k",
                f"{_e(d.in_load.k)} (applied: {d.in_load.k_applied:.3f}{why})",
                d.in_load.k.method,
            )
        )
        if d.service_form is not None:
            f = d.service_form
            ll = f.heldout_loglik
            rows.append(
                (
                    key,
                    "in-load gap: form",
                    f"{f.chosen} (held-out log-lik: multiplicative {ll['multiplicative']:.1f}, "
                    f"additive {ll['additive']:.1f})",
                    f"{f.n_chunks} chunks, {f.folds}; additive needs > +2",
                )
            )
            rows.append((key, "in-load gap: k (multiplicative)", _e(f.k), f.k.method))
            rows.append((key, "in-load gap: a (additive)", _e(f.a, " ms"), f.a.method))
        if d.idle_gap is not None:
            ig, on = d.idle_gap, " (applied)" if d.idle_gap.applied else " (not applied)"
            rows.append((key, "idle_slowdown", _e(ig.slowdown) + on, ig.slowdown.method))
            rows.append((key, "idle_tau_ms", _e(ig.tau_ms, " ms"), f"{ig.chunks} chunks"))
            rows.append((key, "back-to-back level k0", _e(ig.k_warm), ig.k_warm.method))
        if d.core_scaling is not None:
            lbl = "core_scaling (one exponent)" if d.core_scaling_by_size else "core_scaling"
            rows.append((key, lbl, _e(d.core_scaling), d.core_scaling.method))
        if d.core_scaling_by_size is not None:
            e1, slope = d.core_scaling_by_size
            rows.append((key, "core_scaling (b=1, applied)", _e(e1), e1.method))
            rows.append((key, "core_scaling_per_doubling", _e(slope), slope.method))
        if d.batch_merge is not None:
            applied = dev.batch_merge_ms > 0
            rows.append(
                (
                    key,
                    "batch_merge_ms",
                    _e(d.batch_merge, " ms") + ("" if applied else " (not applied: CI spans 0)"),
                    d.batch_merge.method.replace(
                        "twin replays on a grid", "twin replays of the batched pools"
                    ),
                )
            )
        conc = d.concurrency
        th = conc.attr if conc else ("sharing_penalty" if d.kind == "gpu" else "core_scaling")
        rows.append(
            (
                key,
                th,
                _e(conc.theta) if conc else f"{getattr(dev, th):g} (prior)",
                conc.theta.method if conc else "not identifiable: no concurrency in the bundles",
            )
        )
        o = d.overhead
        main = o.idle if o.busy_factor is not None and o.idle is not None else o.total
        label = "overhead_ms (idle replica)" if main is o.idle else "overhead_ms"
        if o.per_position is not None and o.first is not None:
            main, label = o.first, "overhead_ms (first response of a batch)"
        rows.append((key, label, _e(main, " ms"), main.method))
        if main is not o.total:
            rows.append((key, "  mean over the bundles", _e(o.total, " ms"), o.total.method))
        if o.server is not None:
            rows.append((key, "  of which in Triton", _e(o.server, " ms"), o.server.method))
            rows.append((key, "  of which client side", _e(o.client, " ms"), o.client.method))  # type: ignore[union-attr]
        rows.append(
            (
                key,
                "overhead_noise.cv",
                _e(o.noise_cv) if o.noise_cv else f"{dev.overhead_noise.cv:g} (prior)",
                o.noise_cv.method if o.noise_cv else "no quiet intervals",
            )
        )
        if o.busy_factor is not None:
            rows.append((key, "overhead_busy_factor", _e(o.busy_factor), o.busy_factor.method))
        if o.per_position is not None:
            rows.append((key, "overhead_per_batch_position_ms", _e(o.per_position, " ms"),
                         o.per_position.method))  # fmt: skip
        s = d.startup
        for name, est, unit in (
            ("startup.container_start_s", s.container_start_s, " s"),
            ("startup.model_load_s", s.model_load_s, " s"),
            ("startup.model_load_cv", s.model_load_cv, ""),
            ("cpu_per_request_ms", d.cpu_per_request, " ms"),
            ("memory_base_gib", d.memory_base, " GiB"),
        ):
            rows.append((key, name, _e(est, unit), est.method if est else "prior"))
        if d.from_prior:
            rows.append(
                (
                    key,
                    "from the prior",
                    ", ".join(f"{name}={_prior_value(dev, name)}" for name in d.from_prior),
                    f"not identifiable from these bundles: {res.prior_path or 'built-in defaults'}",
                )
            )
    return rows


def calibration_yaml(res: CalibrationResult) -> str:
    head = [
        f"# Calibration {res.calibration.name!r}, written by `kisim calibrate`.",
        "# Estimates with 95% bootstrap intervals (see the .report.md next to this file):",
    ]
    for dev, par, est, _ in fit_table(res):
        head.append(f"#   {dev:<8} {par:<28} {est}")
    body = yaml.dump(
        _round(res.calibration.model_dump(mode="json", exclude_none=True)),
        Dumper=_Dumper,
        sort_keys=False,
        width=100,
    )
    return "\n".join(head) + "\n" + body


def _round(x: Any, sig: int = 6) -> Any:
    if isinstance(x, dict):
        return {k: _round(v, sig) for k, v in x.items()}
    if isinstance(x, list):
        return [_round(v, sig) for v in x]
    if isinstance(x, float) and math.isfinite(x) and x != 0:
        return round(x, sig - 1 - int(math.floor(math.log10(abs(x)))))
    return x


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the provenance) as literal blocks."""


def _str(dumper: yaml.SafeDumper, s: str) -> yaml.Node:
    style = "|" if "\n" in s else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", s, style=style)


_Dumper.add_representer(str, _str)


def write_calibration(res: CalibrationResult, out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.name.removesuffix(".yaml").removesuffix(".yml")
    figdir = out.parent / f"{stem}.figures"
    figdir.mkdir(exist_ok=True)
    out.write_text(calibration_yaml(res))
    written = [out]
    figs: dict[str, list[Path]] = {}
    for key, d in res.devices.items():
        figs[key] = _device_figures(d, figdir)
        written += figs[key]
    md = out.parent / f"{stem}.report.md"
    md.write_text(_report_md(res, out, figs))
    written.append(md)
    return written


def _device_figures(d: DeviceFit, figdir: Path) -> list[Path]:
    plt = plt_agg()
    paths = []
    c = d.curve
    k = d.in_load.k_applied
    bmax = int(max(c.sizes.max(), d.chunks.bmax.max() if len(d.chunks) else 1))
    grid = np.linspace(1, bmax, 200)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    if c.source == "isolated":
        jit = (np.random.default_rng(0).random(len(c.points_b)) - 0.5) * 0.25
        ax[0].scatter(c.points_b + jit, c.points_ms, s=6, alpha=0.3, color="grey",
                      label="isolated measurements")  # fmt: skip
        ax[0].errorbar(c.sizes, c.means, yerr=[c.means - c.mean_lo, c.mean_hi - c.means],
                       fmt="o", color="k", capsize=3, label="mean per size (95% CI)")  # fmt: skip
    if len(d.chunks):
        ax[0].scatter(d.chunks.bbar, d.chunks.per_request_ms, s=10, color="tab:orange",
                      alpha=0.6, label="Triton counters (request-weighted)")  # fmt: skip
    ax[0].plot(grid, c.time_ms(grid), color="tab:blue", label="fitted curve")
    if k != 1.0:
        ax[0].plot(
            grid, c.time_ms(grid) * k, "--", color="tab:blue", label=f"x in-load factor {k:.3f}"
        )
    ax[0].set(xlabel="batch size", ylabel="execution time, ms", title=f"{d.key}: service time")
    ax[0].legend(fontsize=7)
    if c.source == "isolated":
        rel = c.points_ms / c.time_ms(c.points_b) - 1
        ax[1].scatter(c.points_b + (np.random.default_rng(1).random(len(rel)) - 0.5) * 0.25,
                      rel * 100, s=6, alpha=0.3, color="grey", label="isolated")  # fmt: skip
        ax[1].errorbar(c.sizes, (c.means / c.time_ms(c.sizes) - 1) * 100, fmt="o", color="k",
                       label="mean per size")  # fmt: skip
    if len(d.chunks):
        _, mid, _ = spread_bounds(d.chunks, c)
        ax[1].scatter(d.chunks.bbar, (d.chunks.per_request_ms / (mid * k) - 1) * 100, s=10,
                      color="tab:orange", alpha=0.6,
                      label="counters vs curve x k (spread-corrected)")  # fmt: skip
    ax[1].axhline(0, color="k", lw=0.5)
    ax[1].set(xlabel="batch size", ylabel="residual, %", title="residuals")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    p = figdir / f"curve-{d.key}.png"
    paths.append(save_figure(fig, p))

    fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
    pi = d.overhead.per_interval
    if len(pi):
        ax[0].scatter(pi[:, 0], pi[:, 1], s=np.clip(pi[:, 2], 2, 40), alpha=0.4)
        u = np.linspace(0, 1, 50)
        dev = d.device
        ax[0].plot(u, dev.overhead_ms * (1 + dev.overhead_busy_factor * u), color="tab:red",
                   label="overhead_ms x (1 + overhead_busy_factor x busy)")  # fmt: skip
        ax[0].legend(fontsize=7)
    ax[0].set(
        xlabel="busy share of the pool's instances",
        ylabel="latency - queue - compute, ms",
        title=f"{d.key}: overhead per interval",
    )
    ph = d.startup.samples
    for name, x in ph.items():
        if len(x):
            ax[1].hist(x, bins=min(20, max(len(x), 3)), alpha=0.5, label=name.replace("_", " -> "))
    ax[1].set(xlabel="seconds", ylabel="replicas", title="start-up phases")
    if any(len(x) for x in ph.values()):
        ax[1].legend(fontsize=7)
    fig.tight_layout()
    p = figdir / f"overhead-startup-{d.key}.png"
    paths.append(save_figure(fig, p))
    paths += idle_gap_figure(d, figdir, plt, save_figure)
    conc = d.concurrency
    if conc is not None:
        attr = conc.attr
        fig, ax = plt.subplots(1, 2, figsize=(11, 3.6))
        ax[0].plot(conc.grid, conc.ssr, "o-")
        ax[0].axvspan(conc.theta.lo, conc.theta.hi, color="tab:green", alpha=0.2, label="95% CI")
        ax[0].axvline(conc.theta.value, color="tab:green")
        ax[0].set(xlabel=attr, ylabel="weighted SSR", title=f"{d.key}: profile of {attr}")
        ax[0].legend(fontsize=7)
        ax[1].plot(conc.real_ms, "k.", label="real (counters)")
        ax[1].plot(conc.twin_ms, "x", color="tab:blue", label=f"twin at {attr} ~ estimate")
        ax[1].set(
            xlabel="window (concurrent pools, in order)",
            ylabel="compute per request, ms",
            title="request-weighted compute per window",
        )
        ax[1].legend(fontsize=7)
        fig.tight_layout()
        p = figdir / f"concurrency-{d.key}.png"
        paths.append(save_figure(fig, p))
    return paths


def _report_md(res: CalibrationResult, out: Path, figs: dict[str, list[Path]]) -> str:
    cal = res.calibration
    lines = [
        f"# Calibration `{cal.name}`",
        "",
        f"Written by `kisim calibrate` to `{out.name}`; load it with "
        "`kisim.core.config.load_calibration` or as a scenario's `calibration:`. How each "
        "parameter is fitted: docs/calibration.md.",
        "",
        "## Provenance",
        "",
        "```",
        cal.provenance,
        "```",
        "",
        "## Estimates (95% bootstrap intervals)",
        "",
        "| device | parameter | estimate | how |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in fit_table(res)]
    for key, d in res.devices.items():
        lines += [
            "",
            f"## Device `{key}` ({d.kind}, reference cores {d.reference_cores:g})",
            "",
            f"Pools: {', '.join(f'{b}/{p}' for b, p in d.pools)}. Counter chunks: "
            f"{len(d.chunks)} ({d.in_load.usable} with a narrow batch-size spread).",
            "",
        ]
        if d.curve.source == "isolated":
            lines += ["| batch size | n | mean ms | 95% CI |", "| --- | --- | --- | --- |"]
            lines += [
                f"| {int(s)} | {int(n)} | {m:.4g} | {lo:.4g} .. {hi:.4g} |"
                for s, n, m, lo, hi in zip(
                    d.curve.sizes,
                    d.curve.counts,
                    d.curve.means,
                    d.curve.mean_lo,
                    d.curve.mean_hi,
                    strict=True,
                )
            ]
            lines.append("")
        if d.notes:
            lines += ["Notes:", ""] + [f"- {n}" for n in d.notes] + [""]
        if d.from_prior:
            lines += [
                f"From the prior ({res.prior_path or 'built-in defaults'}): "
                f"{', '.join(d.from_prior)}.",
                "",
            ]
        lines += [f"![{p.stem}]({p.parent.name}/{p.name})" for p in figs.get(key, [])]
    if res.warnings:
        lines += ["", "## Warnings (what was skipped)", ""] + [f"- {w}" for w in res.warnings]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- validation
