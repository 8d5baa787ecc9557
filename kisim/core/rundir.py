"""Run directories (docs/run-format.md): atomic writing, reading, and the evaluation tree.

Every file is written to a temporary name in the same directory and renamed, and
``summary.json`` goes last, so a directory with a ``summary.json`` is complete
even if the process was killed mid-write; an evaluation resumes by skipping those.
JSON is strict: non-finite floats are written as ``null`` and read back as NaN.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from kisim.core.config import SEED_POOLS
from kisim.core.window import POOL_COUNT_FIELDS, Window

CONFIG, TIMELINE, SUMMARY, HIST = "config.json", "timeline.csv", "summary.json", "latency_hist.json"
ERROR = "error.txt"  # written by the harness when an episode failed; removed on success
META_KEYS: frozenset[str] = frozenset({"policy", "pattern", "seed", "scenario", "backend"})

_INT_COLS = frozenset(f.name for f in fields(Window) if f.type in ("int", int))
_INT_SUFFIXES = tuple(f"_{k}" for k in POOL_COUNT_FIELDS)  # <pool>_desired, _ready, _pending
_STR_COLS = frozenset(f.name for f in fields(Window) if f.type in ("str", str))


# --------------------------------------------------------------------------- writing


def _jsonable(x: Any) -> Any:
    """Strict-JSON copy: NaN/inf -> None, numpy scalars and arrays -> Python."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer, bool)):
        return x if isinstance(x, bool) else int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (/proc), else set back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` via a temp file in the same directory and os.replace.

    The file gets the mode an ordinary ``open`` would give (0666 less the umask), not
    mkstemp's 0600, so results written atomically look like every other file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strict_json(data: Any, **kw: Any) -> str:
    """JSON any parser accepts: NaN and infinities as null (`json.dumps` writes bare NaN)."""
    return json.dumps(_jsonable(data), allow_nan=False, **kw)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, strict_json(data, indent=2) + "\n")


def _cell(v: Any) -> str:
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def write_run(
    run_dir: Path | str,
    config: Mapping[str, Any],
    windows: Sequence[Window | Mapping[str, Any]],
    summary: Mapping[str, Any],
    latency_hist: Mapping[str, Any],
) -> Path:
    """Write one episode's directory; `summary.json` last, so it marks completeness."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / SUMMARY).unlink(missing_ok=True)  # a rewrite is incomplete until it finishes
    write_json(d / CONFIG, config)
    rows = [w.as_dict() if isinstance(w, Window) else dict(w) for w in windows]
    cols = list(rows[0]) if rows else Window.columns(SEED_POOLS)
    lines = [",".join(cols)]
    for r in rows:
        lines.append(",".join(_csv_escape(_cell(r[c])) for c in cols))
    atomic_write(d / TIMELINE, "\n".join(lines) + "\n")
    write_json(d / HIST, latency_hist)
    write_json(d / SUMMARY, summary)
    (d / ERROR).unlink(missing_ok=True)
    return d


def _csv_escape(s: str) -> str:
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n') else s


# --------------------------------------------------------------------------- reading


def is_complete(run_dir: Path | str) -> bool:
    """A run is complete when its summary.json exists (it is written last, atomically)."""
    return (Path(run_dir) / SUMMARY).is_file()


def _nanify(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _nanify(v) for k, v in x.items()}
    return math.nan if x is None else x


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_summary(run_dir: Path | str) -> dict[str, Any]:
    """summary.json with nulls turned back into NaN."""
    return _nanify(read_json(Path(run_dir) / SUMMARY))


def read_config(run_dir: Path | str) -> dict[str, Any]:
    return read_json(Path(run_dir) / CONFIG)


def read_hist(run_dir: Path | str) -> dict[str, np.ndarray]:
    """{'edges_ms': float array (k+1), 'counts': int array (k)}."""
    h = read_json(Path(run_dir) / HIST)
    return {"edges_ms": np.asarray(h["edges_ms"], float), "counts": np.asarray(h["counts"], int)}


def read_timeline(run_dir: Path | str, as_arrays: bool = True) -> Any:
    """timeline.csv as {column: numpy array} (default) or as a list of row dicts."""
    with (Path(run_dir) / TIMELINE).open(newline="", encoding="utf-8") as f:
        rows = [_typed_row(r) for r in csv.DictReader(f)]
    if not as_arrays:
        return rows
    cols = rows[0].keys() if rows else Window.columns(SEED_POOLS)
    return {
        c: np.asarray([r[c] for r in rows], dtype=object if c in _STR_COLS else float) for c in cols
    }


def _typed_row(r: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in r.items():
        if k in _STR_COLS:
            out[k] = v
        elif k in _INT_COLS or k.endswith(_INT_SUFFIXES):
            out[k] = int(float(v))
        else:
            out[k] = float(v) if v not in ("", None) else math.nan
    return out


# --------------------------------------------------------------------------- evaluation tables


def _csv_cell(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))  # 'nan' / 'inf': float() and pandas read them back
    return str(v)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Deterministic CSV (repr floats, NaN as 'nan'), written atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_csv_cell(r[c]) for c in columns])
    atomic_write(path, buf.getvalue())


_TEXT_COLS = frozenset({"policy", "reference", "pattern", "metric", "note"})


def read_csv(path: Path) -> list[dict[str, Any]]:
    """A CSV written by `write_csv`, numbers back as floats (n columns as int)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        o: dict[str, Any] = {}
        for k, v in r.items():
            if k in _TEXT_COLS:
                o[k] = v
            elif k in ("n", "n_ref", "n_pairs"):
                o[k] = int(v)
            else:
                o[k] = float(v) if v != "" else math.nan  # older files: empty = NaN
        out.append(o)
    return out


# --------------------------------------------------------------------------- evaluation tree


def safe_name(spec: str) -> str:
    """A directory name for a policy/pattern spec; specs with odd characters get a hash.

    ``ppo:/models/a.zip`` -> ``ppo_models_a.zip-3f2a9c1e``: readable, and distinct from
    any other spec that would sanitise to the same text.
    """
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("._-") or "x"
    if clean == spec:
        return spec
    digest = hashlib.sha1(spec.encode()).hexdigest()[:8]
    return f"{clean[:60]}-{digest}"


def run_path(out: Path | str, policy: str, pattern: str, seed: int) -> Path:
    """OUT/runs/<policy>/<pattern>/seed-<N>/ with safe directory names."""
    return Path(out) / "runs" / safe_name(policy) / safe_name(pattern) / f"seed-{int(seed)}"


@dataclass(frozen=True)
class RunRecord:
    """One complete run as the aggregation sees it."""

    policy: str  # display name (the spec as given)
    pattern: str
    seed: int
    path: Path
    summary: dict[str, Any]


def collect_runs(
    out: Path | str,
    policies: Iterable[str] | None = None,
    patterns: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
) -> list[RunRecord]:
    """Complete runs under OUT/runs; with the lists given, exactly those cells, else all.

    Names come from the lists (the harness's own mapping); for unknown directories
    from summary.json's ``policy``/``pattern``/``seed``, falling back to the path.
    """
    root = Path(out) / "runs"
    pols = list(policies) if policies is not None else None
    pats = list(patterns) if patterns is not None else None
    sds = [int(s) for s in seeds] if seeds is not None else None
    if pols is not None and pats is not None and sds is not None:
        recs = []
        for pol in pols:
            for pat in pats:
                for s in sds:
                    p = run_path(out, pol, pat, s)
                    if is_complete(p):
                        recs.append(RunRecord(pol, pat, int(s), p, read_summary(p)))
        return recs
    recs = []
    for p in sorted(root.glob("*/*/seed-*")):
        if not is_complete(p):
            continue
        summ = read_summary(p)
        pol = str(summ.get("policy") or p.parent.parent.name)
        pat = str(summ.get("pattern") or p.parent.name)
        seed = summ.get("seed")
        seed = (
            int(seed)
            if isinstance(seed, (int, float)) and math.isfinite(seed)
            else int(p.name.removeprefix("seed-"))
        )
        if (pols is not None and pol not in pols) or (pats is not None and pat not in pats):
            continue
        if sds is not None and seed not in sds:
            continue
        recs.append(RunRecord(pol, pat, seed, p, summ))
    return recs
