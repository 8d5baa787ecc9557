"""Import what a Triton team already has — Locust's CSVs and Prometheus ``query_range``
exports of Triton's ``nv_inference_*`` counters — with a short hand-written ``import.yaml``,
into a trace bundle (docs/bundle-format.md, "Importing Locust + Prometheus exports";
an example to copy: docs/examples/locust-prometheus/import.yaml).

`import_bundle(src, out)` writes the bundle; `load_bundle` does it by itself for a folder
that holds an ``import.yaml`` and no ``manifest.yaml`` (into ``src/.kisim-bundle/``), so
``kisim calibrate``/``kisim validate`` take such a folder as it is.

What comes from where:
- ``manifest.yaml``: ``import.yaml``'s keys (the manifest's, with the times and the users
  schedule optional: by default the span and the ``User Count`` changes of Locust's history);
- ``requests.csv``: Locust writes no per-request log, so it is **reconstructed** from the
  history CSV (``--csv-full-history``, one row per second): per second, the requests and
  failures counted (increments of ``Total Request Count`` / ``Total Failure Count``) with
  completions spread evenly over the second; their latencies follow that row's current
  percentiles (50 %…100 %, Locust's last-10-s window; below the median from the run's minimum)
  and are scaled so that their mean is that second's exact mean (increment of ``Total Average
  Response Time`` x count). Per-second counts and means are exact; percentiles are Locust's
  10-s ones (a window's p95 from them is smoothed). ``recording.yaml`` says so.
- ``prometheus/``: the JSON files named in ``import.yaml`` (or every ``*.json`` of the folder,
  attributed by ``metric.__name__``), copied with an ``index.json``; counters must be raw
  (a ``rate()`` export is refused: its values are not whole counts).
- ``service_times.csv``: optional, long or summary form (one row per batch size).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from calibration.manifest import load_yaml_mapping
from calibration.prometheus import GAUGES
from kisim.core.errors import TraceError

IMPORT_FILE = "import.yaml"
CACHE = ".kisim-bundle"
PCTS = ((0.50, "50%"), (0.66, "66%"), (0.75, "75%"), (0.80, "80%"), (0.90, "90%"),
        (0.95, "95%"), (0.98, "98%"), (0.99, "99%"), (0.999, "99.9%"), (0.9999, "99.99%"),
        (1.0, "100%"))  # fmt: skip
IMPORT_KEYS = {"locust", "prometheus", "service_times"}


def is_import(path: Path) -> bool:
    return (
        path.is_dir() and (path / IMPORT_FILE).is_file() and not (path / "manifest.yaml").exists()
    )


def _f(x: str) -> float:
    try:
        return float(x)
    except ValueError:
        return math.nan


def _history(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise TraceError(f"{path}: missing (Locust's --csv PREFIX --csv-full-history file)")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    except (csv.Error, UnicodeDecodeError) as e:
        raise TraceError(f"{path}: not a readable CSV ({e})") from None
    need = ("Timestamp", "User Count", "Total Request Count", "Total Failure Count",
            "Total Average Response Time", "Total Min Response Time")  # fmt: skip
    if not rows or any(k not in rows[0] for k in need):
        raise TraceError(
            f"{path}: line 1: not Locust's stats history (needs 'Aggregated' rows and "
            f"{', '.join(need)})"
        )
    return rows


def _latencies(row: dict[str, str], n: int, mean: float, floor: float) -> np.ndarray:
    """n latencies with the row's current percentiles as their shape and `mean` as their mean."""
    qs, vs = [0.0], [floor]
    for q, col in PCTS:
        v = _f(row.get(col, "nan"))
        if math.isfinite(v) and v > 0:
            qs.append(q)
            vs.append(max(v, vs[-1]))
    u = (np.arange(n) + 0.5) / n
    x = np.interp(u, qs, vs) if len(qs) > 1 else np.full(n, mean)
    m = float(x.mean())
    return x * (mean / m) if m > 0 and math.isfinite(mean) else x


def reconstruct_requests(
    history: Path, pool: str
) -> tuple[list[tuple[float, float, int]], dict[str, Any]]:
    """[(start, latency_ms, ok)] rebuilt from Locust's per-second history (module doc), and
    facts for recording.yaml (span, user-count changes)."""
    rows = _history(history)
    t = np.array([_f(r["Timestamp"]) for r in rows])
    cnt = np.array([_f(r["Total Request Count"]) for r in rows])
    fail = np.array([_f(r["Total Failure Count"]) for r in rows])
    avg = np.array([_f(r["Total Average Response Time"]) for r in rows])
    mins = [_f(r["Total Min Response Time"]) for r in rows]
    floor = min((m for m in mins if math.isfinite(m) and m > 0), default=0.0)
    out: list[tuple[float, float, int]] = []
    for i in range(1, len(rows)):
        n = int(round(cnt[i] - cnt[i - 1]))
        if n <= 0:
            continue
        tot = cnt[i] * (avg[i] if math.isfinite(avg[i]) else 0.0)
        prev = cnt[i - 1] * (avg[i - 1] if math.isfinite(avg[i - 1]) else 0.0)
        mean = (tot - prev) / n
        lat = _latencies(rows[i], n, mean if mean > 0 else math.nan, floor)
        nf = int(round(fail[i] - fail[i - 1]))
        bad = set(np.linspace(0, n - 1, nf).round().astype(int).tolist()) if nf > 0 else set()
        done = t[i - 1] + (np.arange(n) + 0.5) / n * (t[i] - t[i - 1])
        for j in range(n):
            out.append((float(done[j] - lat[j] / 1e3), float(lat[j]), 0 if j in bad else 1))
    users = [(float(t[0]), int(_f(rows[0]["User Count"])))]
    for r, ti in zip(rows[1:], t[1:], strict=True):
        u = int(_f(r["User Count"]))
        if u != users[-1][1]:
            users.append((float(ti), u))
    # the first row is written before the first users spawn (0 users): the schedule starts
    # with the first users, at the history's start
    if len(users) > 1 and users[0][1] == 0 and users[1][0] - users[0][0] <= 1.0 + 1e-9:
        users = [(users[0][0], users[1][1]), *users[2:]]
    return sorted(out), {"t_first": float(t[0]), "t_last": float(t[-1]), "users": users}


def _prom_files(src: Path, spec: dict[str, Any]) -> dict[str, Path]:
    """{metric: file}: as named in import.yaml (`prometheus.files`), else every JSON of
    `prometheus.dir` (default the import folder) by its series' `__name__`."""
    p = spec.get("prometheus") or {}
    files = p.get("files")
    if isinstance(files, dict):
        return {str(m): src / str(f) for m, f in files.items()}
    d = src / str(p.get("dir", "."))
    out: dict[str, Path] = {}
    for f in sorted(d.glob("*.json")):
        try:
            doc = json.loads(f.read_text())
            res = doc["data"]["result"]
            name = res[0]["metric"]["__name__"] if res else None
        except (ValueError, KeyError, IndexError, TypeError):
            continue
        if name:
            out[str(name)] = f
    return out


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise TraceError(f"{path}: not valid JSON ({e})") from None


def _step_of(path: Path) -> float | None:
    doc = _json(path)
    for s in doc.get("data", {}).get("result", []):
        ts = [float(v[0]) for v in s.get("values", [])]
        if len(ts) > 1:
            return float(np.median(np.diff(ts)))
    return None


def _check_raw(metric: str, path: Path) -> None:
    if metric in GAUGES or metric.startswith("container_"):
        return
    doc = _json(path)
    for s in doc.get("data", {}).get("result", []):
        vals = [float(v[1]) for v in s.get("values", []) if v[1] not in ("NaN", "+Inf", "-Inf")]
        counts = ("nv_inference_count", "nv_inference_exec_count", "nv_inference_request_success")
        if metric in counts and any(v != int(v) for v in vals):
            raise TraceError(
                f"{path}: {metric} has non-integer values: exported through rate()/increase()? "
                "calibration needs the raw cumulative counter"
            )


def import_bundle(src: Path | str, out: Path | str, warnings: list[str] | None = None) -> Path:
    """Write a bundle at `out` from the import folder `src` (module doc); `TraceError` naming
    the file for anything missing or malformed."""
    src, out = Path(src), Path(out)
    ypath = src / IMPORT_FILE
    try:
        text = ypath.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TraceError(f"{ypath}: not a text (UTF-8) file") from None
    spec = load_yaml_mapping(ypath, text)
    loc = spec.get("locust") or {}
    hist = src / str(loc.get("stats_history", "locust_stats_history.csv"))
    pools = spec.get("pools")
    if not isinstance(pools, dict) or not pools:
        raise TraceError(f"{ypath}: pools: give the pool(s) that served (docs/bundle-format.md)")
    pool = next(iter(pools))
    reqs, facts = reconstruct_requests(hist, pool)
    if not reqs:
        raise TraceError(f"{hist}: no requests counted in the history")
    man = {k: v for k, v in spec.items() if k not in IMPORT_KEYS}
    man.setdefault("apiVersion", "kisim/v1")
    man.setdefault("kind", "TraceBundle")
    man.setdefault("name", src.resolve().name)
    man.setdefault("backend", "kubernetes")
    start = float(man.setdefault("start_unix_s", facts["t_first"]))
    man.setdefault("end_unix_s", max(facts["t_last"], max(s + lat / 1e3 for s, lat, _ in reqs)))
    man.setdefault("recorded_at", _iso(start))
    traffic = dict(man.get("traffic") or {})
    if not traffic.get("schedule"):
        traffic["schedule"] = [
            {"t_s": round(max(t - start, 0.0), 3), "users": u} for t, u in facts["users"]
        ]
        # points at the same second (the first tick) collapse to the last one
        dedup: dict[float, dict[str, Any]] = {}
        for p in traffic["schedule"]:
            dedup[p["t_s"]] = p
        traffic["schedule"] = list(dedup.values())
    man["traffic"] = traffic
    if out.exists():
        shutil.rmtree(out)
    (out / "prometheus").mkdir(parents=True)
    (out / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
    lines = ["start_unix_s,latency_ms,ok,pool,replica"]
    a, z = man["start_unix_s"], man["end_unix_s"]
    lines += [f"{max(s, a):.6f},{lat:.3f},{ok},{pool}," for s, lat, ok in reqs if s <= z]
    (out / "requests.csv").write_text("\n".join(lines) + "\n")
    for kind in ("stats", "failures", "exceptions"):
        f = src / str(loc.get(kind, f"locust_{kind}.csv"))
        if f.is_file():
            shutil.copy(f, out / f"locust_{kind}.csv")
    shutil.copy(hist, out / "locust_stats_history.csv")
    files = _prom_files(src, spec)
    if not files:
        raise TraceError(f"{src}: no Prometheus query_range export found (prometheus.files)")
    index = {}
    step_cfg = (spec.get("prometheus") or {}).get("step_s")
    for metric, f in files.items():
        if not f.is_file():
            raise TraceError(f"{ypath}: prometheus.files.{metric}: {f} is missing")
        _check_raw(metric, f)
        shutil.copy(f, out / "prometheus" / f"{metric}.json")
        step = float(step_cfg) if step_cfg else _step_of(f)
        index[f"{metric}.json"] = {"metric": metric, "query": "", "step_s": step,
                                   "source": str(f.name)}  # fmt: skip
    (out / "prometheus" / "index.json").write_text(json.dumps(index, indent=1))
    st = spec.get("service_times")
    if st:
        shutil.copy(src / str(st), out / "service_times.csv")
    rec = {
        "kind": "TraceRecording",
        "name": man["name"],
        "imported_from": str(src),
        "requests": "reconstructed from Locust's per-second history: counts and per-second "
        "means exact, latencies shaped by Locust's current (10 s) percentiles "
        "(calibration/locust_prom.py)",
    }
    (out / "recording.yaml").write_text(yaml.safe_dump(rec, sort_keys=False))
    if warnings is not None:
        warnings.append(
            f"{src}: imported (Locust + Prometheus) into {out}; requests.csv is reconstructed "
            "from Locust's per-second history (percentiles are Locust's 10-s ones)"
        )
    return out


def _iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
