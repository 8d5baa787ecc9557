"""The isolated measurements of a device kind across bundles (``service_times.csv``).

Each bundle measured its replicas one request at a time before the load (per batch size,
on a pool's cores); `kisim calibrate` fits the service curve, core scaling and the
per-request overhead from these rows.
"""

from __future__ import annotations

import numpy as np

from calibration.bundle import Bundle


def isolated_rows(
    group: list[tuple[Bundle, str]], kind: str, warnings: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(batch sizes, ms, cores, bundle names) of the isolated measurements of this kind."""
    bs: list[np.ndarray] = []
    ms: list[np.ndarray] = []
    cores: list[np.ndarray] = []
    src: list[np.ndarray] = []
    seen: set[str] = set()
    for bun, _pool in group:
        st = bun.service_times
        if st is None or bun.name in seen:
            continue
        seen.add(bun.name)
        pools = bun.manifest.pools
        for name in np.unique(st.device):
            cfg = pools.get(name)  # a pool name
            if cfg is not None and cfg.device != kind:
                continue
            if cfg is None:  # a device kind
                if name != kind:
                    continue
                same = {p.compute_cores for p in pools.values() if p.device == kind}
                if len(same) > 1:
                    warnings.append(
                        f"{st.path}: device {name!r} is ambiguous (pools of that kind "
                        f"have {sorted(same)} cores); taken at {max(same):g} cores"
                    )
                c = max(same)
            else:
                c = cfg.compute_cores
            m = st.device == name
            bs.append(st.batch_size[m])
            ms.append(st.ms[m])
            cores.append(np.full(int(m.sum()), c))
            src.append(np.full(int(m.sum()), bun.name, dtype=object))
    if not bs:
        return np.empty(0, int), np.empty(0), np.empty(0), np.empty(0, dtype=object)
    return np.concatenate(bs), np.concatenate(ms), np.concatenate(cores), np.concatenate(src)


def isolated_overheads(bun: Bundle, kind: str) -> np.ndarray | None:
    """client - queue - compute of the bundle's isolated requests on this device kind."""
    st = bun.service_times
    if st is None or st.overhead_ms is None:
        return None
    pools = bun.manifest.pools
    mine = np.array([(pools[d].device if d in pools else d) == kind for d in st.device])
    return st.overhead_ms[mine] if mine.any() else None
