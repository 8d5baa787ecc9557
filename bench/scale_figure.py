"""The figure of `kisim bench scale`: speed and peak memory against requests, per-request
cost against cluster size, each against the sweep's reference point of the same run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def plot_scale(rows: list[dict[str, Any]], out: Path, machine: dict[str, Any]) -> list[Path]:
    """``scale.png`` (300 dpi) and ``scale.pdf`` under `out`, each written then renamed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    req = sorted((r for r in rows if r["sweep"] == "requests"), key=lambda r: r["requests"])
    clu = sorted((r for r in rows if r["sweep"] == "cluster"), key=lambda r: r["replicas"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.0, 3.4), constrained_layout=True)
    if req:
        x = [r["served"] for r in req]
        a.plot(x, [r["rps"] / 1e3 for r in req], "o-", color="#0072B2",
               label="req/s incl. start-up")  # fmt: skip
        a.plot(x, [r["episode_rps"] / 1e3 for r in req], "s--", color="#0072B2", alpha=0.6,
               label="req/s, episode only")  # fmt: skip
        a.plot(x, [r["cpu_rps"] / 1e3 for r in req], "D-", color="#009E73",
               label="req per CPU s (load-robust)")  # fmt: skip
        a.axhline(400, color="#0072B2", lw=0.8, ls=":", label="400 k req/s (target)")
        a.set_xscale("log")
        a.set_xlabel(f"simulated requests ({req[0]['replicas']:,} replicas, "
                     f"{req[0]['rate_rps']:,.0f} req/s)")  # fmt: skip
        a.set_ylabel("thousand simulated requests / s")
        a.set_ylim(bottom=0)
        m = a.twinx()
        m.plot(x, [r["peak_rss_mb"] for r in req], "^-", color="#D55E00", label="peak RSS")
        m.set_ylabel("peak RSS (MB)", color="#D55E00")
        m.set_ylim(bottom=0, top=max(1100.0, 1.1 * max(r["peak_rss_mb"] for r in req)))
        m.axhline(1024, color="#D55E00", lw=0.8, ls=":", label="1 GB (limit)")
        h1, l1 = a.get_legend_handles_labels()
        h2, l2 = m.get_legend_handles_labels()
        a.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=6, framealpha=0.9)
        a.set_title("(a) speed and memory vs requests", fontsize=9)
    if clu:
        x = [r["replicas"] for r in clu]
        b.plot(x, [r["cost_vs_ref"] for r in clu], "o-", color="#009E73",
               label="episode CPU per request / 10 replicas")  # fmt: skip
        b.axhline(1.5, color="grey", lw=0.8, ls=":", label="1.5x (target)")
        for r in clu:
            b.annotate(f"{r['episode_cpu_us_per_request']:.2f} us",
                       (r["replicas"], r["cost_vs_ref"]),
                       textcoords="offset points", xytext=(4, 4), fontsize=7)  # fmt: skip
        b.set_xscale("log")
        b.set_xlabel("replicas (nodes = replicas / 10), 10 req/s per replica")
        b.set_ylabel("per-request cost vs 10 replicas")
        b.set_ylim(0, max(2.0, 1.1 * max(r["cost_vs_ref"] for r in clu)))
        b.legend(loc="upper left", fontsize=7)
        b.set_title("(b) per-request cost vs cluster size", fontsize=9)
    load = machine.get("loadavg_before", [float("nan")])[0]
    fig.suptitle(f"kisim bench scale - {machine.get('host', '')}, {machine.get('cpu_count')} "
                 f"cpus, load avg {load:.1f} at start", fontsize=8)  # fmt: skip
    paths = []
    for ext in ("png", "pdf"):
        path, tmp = out / f"scale.{ext}", out / f".scale.{os.getpid()}.{ext}"
        meta = {"CreationDate": None} if ext == "pdf" else {}
        fig.savefig(tmp, format=ext, dpi=300, metadata=meta)
        os.replace(tmp, path)
        paths.append(path)
    plt.close(fig)
    return paths
