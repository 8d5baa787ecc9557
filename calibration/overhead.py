"""Time outside Triton's queue and compute (HTTP, (de)serialisation, the client): its mean,
its split, its noise, and its growth with the replica's busy share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from calibration.bundle import Bundle
from calibration.estimate import Estimate, block_indices, interval
from calibration.host_load import overlaps, saturated_spans
from calibration.in_load import batch_variance

AGG_INTERVALS = 5  # export intervals per point of the overhead-vs-busy regression


@dataclass
class Overhead:
    total: Estimate  # client latency - queue - compute, ms (the twin's overhead_ms)
    server: Estimate | None  # request - queue - compute (inside Triton), ms
    client: Estimate | None  # client latency - server request duration, ms
    noise_cv: Estimate | None
    idle: Estimate | None  # the overhead at an idle replica, ms (a of a (1 + c busy))
    busy_factor: Estimate | None  # c, when significant (else the overhead is constant)
    per_interval: np.ndarray  # (busy share, overhead ms, weight) rows, for figures
    notes: list[str] = field(default_factory=list)
    # the overhead's growth per position of a response in its batch (a + c j, j = 0..b-1),
    # and a, when significant; then it stands for the busy share's growth
    per_position: Estimate | None = None
    first: Estimate | None = None


@dataclass
class _Intervals:
    dt: np.ndarray
    n_client: np.ndarray
    lat_sum: np.ndarray
    items: np.ndarray
    execs: np.ndarray
    queue_us: np.ndarray
    compute_us: np.ndarray
    request_us: np.ndarray
    success: np.ndarray
    delay_us: np.ndarray  # the pool's max_queue_delay (a lone request waits it out)
    capacity: np.ndarray  # the pool's instances (replicas x instances per replica)
    groups: list[np.ndarray]  # per interval: client latencies (ms)
    saturated: np.ndarray  # the recording host had no spare core in it (`host.csv`)
    bmax: np.ndarray  # the pool's largest batch (1 without batching)

    @property
    def busy(self) -> np.ndarray:
        """Busy share of the pool's instances (batch busy time = compute x execs / items)."""
        with np.errstate(all="ignore"):
            b = self.compute_us * 1e-6 * self.execs / self.items / self.dt / self.capacity
        return np.nan_to_num(b).clip(0.0, 1.0)


def pool_intervals(bun: Bundle, pool: str) -> _Intervals:
    """Counter increments summed over the pool's replicas on the export's sample grid, with
    the successful client requests whose completion falls in each interval."""
    ct = bun.counters[pool]
    ends = np.unique(np.concatenate(ct.t))
    a, z = bun.manifest.start_unix_s, bun.manifest.end_unix_s
    names = (
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_request_duration_us",
        "nv_inference_request_success",
    )
    sums = {m: np.zeros(len(ends)) for m in names}
    dts = np.zeros(len(ends))
    for r, t in enumerate(ct.t):
        pos = np.searchsorted(ends, t)
        np.maximum.at(dts, pos, ct.dt[r])
        for m in names:
            if m in ct.inc:
                np.add.at(sums[m], pos, ct.inc[m][r])
    inside = (ends - dts >= a - 1e-6) & (ends <= z + 1e-6)
    req = bun.requests
    sel = req.ok & (req.pool == pool)
    done = req.done[sel]
    lat = req.latency_ms[sel]
    starts = ends - dts
    which = np.searchsorted(ends, done, side="left")  # interval (ends[k-1], ends[k]]
    valid = which < len(ends)
    valid[valid] &= done[valid] > starts[which[valid]]
    groups = [np.empty(0)] * len(ends)
    order = np.argsort(which[valid], kind="stable")
    w_sorted, l_sorted = which[valid][order], lat[valid][order]
    cuts = np.searchsorted(w_sorted, np.arange(len(ends) + 1))
    groups = [l_sorted[cuts[k] : cuts[k + 1]] for k in range(len(ends))]
    keep = np.flatnonzero(inside)
    bcfg = bun.manifest.pools[pool].batching
    delay = bcfg.max_queue_delay_us if bcfg.enabled and bcfg.max_batch_size > 1 else 0
    success = (
        sums["nv_inference_request_success"]
        if "nv_inference_request_success" in ct.inc
        else sums["nv_inference_count"]
    )
    return _Intervals(
        dts[keep],
        np.array([len(groups[k]) for k in keep], dtype=float),
        np.array([groups[k].sum() for k in keep]),
        sums["nv_inference_count"][keep],
        sums["nv_inference_exec_count"][keep],
        sums["nv_inference_queue_duration_us"][keep],
        sums["nv_inference_compute_infer_duration_us"][keep],
        sums["nv_inference_request_duration_us"][keep],
        success[keep],
        np.full(len(keep), float(delay)),
        np.full(len(keep), float(bun.manifest.pools[pool].instances * len(ct.replicas))),
        [groups[k] for k in keep],
        overlaps(starts[keep], ends[keep], saturated_spans(bun)),
        np.full(len(keep), float(bcfg.max_batch_size if bcfg.enabled else 1)),
    )


def _concat(parts: list[_Intervals]) -> _Intervals:
    return _Intervals(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in (
                "dt",
                "n_client",
                "lat_sum",
                "items",
                "execs",
                "queue_us",
                "compute_us",
                "request_us",
                "success",
                "delay_us",
                "capacity",
            )
        ),
        [g for p in parts for g in p.groups],
        np.concatenate([p.saturated for p in parts]),
        np.concatenate([p.bmax for p in parts]),
    )


def fit_overhead(
    parts: list[_Intervals],
    has_request: bool,
    service_cv: float,
    prior_cv: float,
    rng: np.random.Generator,
    n_boot: int,
) -> Overhead:
    """Mean time outside queue and compute, its split, its noise and its load dependence.

    Ratio estimators over all intervals (sum of client latencies / requests minus sum of
    queue + compute / items), so sparse intervals weigh by their requests; bootstrap over
    blocks of intervals. The noise cv uses only quiet intervals (mean batch <= 1.05,
    queue wait <= the batcher's delay + 2 % of compute: a lone request waits the delay
    out, a constant), where a request's latency is compute + a constant + overhead:
    Var(latency) - (compute x service cv)^2 = (overhead x cv)^2.
    Intervals in which the recording host had no spare core are left out of every fit
    (`calibration.host_load`): the twin's overhead is that of a host with cores to spare.
    """
    iv = _concat(parts)
    served = (iv.n_client > 0) & (iv.items > 0)
    use = served & ~iv.saturated
    notes: list[str] = []
    if not np.any(use):
        use = served  # a host saturated throughout: its overhead is all there is
    elif np.any(served & iv.saturated):
        hot = np.flatnonzero(served & iv.saturated)
        ovh_hot = float(
            iv.lat_sum[hot].sum() / iv.n_client[hot].sum()
            - (iv.queue_us[hot].sum() + iv.compute_us[hot].sum()) / iv.items[hot].sum() / 1e3
        )
        notes.append(
            f"{len(hot)} export interval(s) ({int(iv.n_client[hot].sum())} requests) in which "
            f"the recording host had no spare core (host.csv) left out of the overhead fit: "
            f"overhead there {ovh_hot:.2f} ms (the client and the front end wait for a core; "
            "the twin does not model host saturation)"
        )
    idx_all = np.flatnonzero(use)

    def total(idx: np.ndarray) -> float:
        return float(
            iv.lat_sum[idx].sum() / iv.n_client[idx].sum()
            - (iv.queue_us[idx].sum() + iv.compute_us[idx].sum()) / iv.items[idx].sum() / 1e3
        )

    def server(idx: np.ndarray) -> float:
        return float(
            (iv.request_us[idx].sum() - iv.queue_us[idx].sum() - iv.compute_us[idx].sum())
            / iv.success[idx].sum()
            / 1e3
        )

    def client(idx: np.ndarray) -> float:
        return float(
            iv.lat_sum[idx].sum() / iv.n_client[idx].sum()
            - iv.request_us[idx].sum() / iv.success[idx].sum() / 1e3
        )

    boots = [idx_all[block_indices(len(idx_all), rng)] for _ in range(n_boot)]
    tot = interval(
        np.array([total(i) for i in boots]),
        total(idx_all),
        int(iv.n_client[use].sum()),
        "client latency - (queue + compute), ratio of sums",
    )
    srv = cli = None
    if has_request:
        srv = interval(
            np.array([server(i) for i in boots]),
            server(idx_all),
            len(idx_all),
            "Triton request - queue - compute",
        )
        cli = interval(
            np.array([client(i) for i in boots]),
            client(idx_all),
            len(idx_all),
            "client latency - Triton request duration",
        )
    else:
        notes.append(
            "no nv_inference_request_duration_us: overhead not split into server and client"
        )
    # per 5 s of the export (ratios of sums: a 1 s interval's difference of means is swamped
    # by requests counted on either side of its edges): overhead against the busy share
    gid = np.concatenate([np.arange(len(p.dt)) // AGG_INTERVALS + 100_000 * k
                          for k, p in enumerate(parts)])[use]  # fmt: skip
    _, gid = np.unique(gid, return_inverse=True)

    def per_group(x: np.ndarray) -> np.ndarray:
        return np.bincount(gid, weights=x[use])

    n_g = per_group(iv.n_client)
    items_g = per_group(iv.items)
    ovh_i = (
        per_group(iv.lat_sum) / n_g
        - (per_group(iv.queue_us) + per_group(iv.compute_us)) / items_g / 1e3
    )
    busy = (per_group(iv.compute_us * 1e-6 * iv.execs / np.maximum(iv.items, 1))
            / per_group(iv.dt * iv.capacity)).clip(0.0, 1.0)  # fmt: skip
    # inverse variance: a group's figure is a difference of means of latencies whose spread
    # grows with the queue (and requests straddling the edges weigh with their latency)
    ss = np.array([float(np.sum((g - g.mean()) ** 2)) if len(g) else 0.0 for g in iv.groups])
    var_g = per_group(ss) / np.maximum(n_g - 1, 1)
    wt = n_g / (var_g + 1.0)
    idle = factor = None
    if len(busy) >= 10 and float(np.ptp(busy)) > 0.2:
        x = np.column_stack([np.ones_like(busy), busy])

        def line(k: np.ndarray) -> tuple[float, float]:
            sw = np.sqrt(wt[k])
            (a, s), *_ = np.linalg.lstsq(x[k] * sw[:, None], ovh_i[k] * sw, rcond=None)
            return float(a), float(s)

        a0, s0 = line(np.arange(len(busy)))
        bl = np.array([line(block_indices(len(busy), rng)) for _ in range(n_boot)])
        method = "WLS of overhead per 5 s on the busy share: a + s busy, c = s / a"
        idle = interval(bl[:, 0], a0, len(busy), method)
        slope = interval(bl[:, 1], s0, len(busy), method)
        with np.errstate(all="ignore"):
            c0 = s0 / a0 if a0 > 0 else math.nan
            factor = interval(
                np.where(bl[:, 0] > 0, bl[:, 1] / bl[:, 0], np.nan), c0, len(busy), method
            )
        if slope.lo > 0 and a0 > 0 and s0 >= 1.0:
            notes.append(
                f"overhead grows with the replica's busy share: {a0:.2f} ms idle, x (1 + "
                f"{c0:.2f} busy) (the client and the front end share the cores with the "
                "compute): overhead_ms is the idle value and overhead_busy_factor applies"
            )
        else:
            factor = None  # not significant or under 1 ms: a constant overhead
    per_pos, first = _per_position(iv, use, gid, ovh_i, wt, rng, n_boot, notes)
    if per_pos is not None:  # the batch position explains the growth (see `_per_position`)
        if factor is not None:
            notes[:] = [n for n in notes if not n.startswith("overhead grows with the replica")]
        idle = factor = None
    # noise of the overhead, from quiet intervals
    cv_e = None
    quiet = (
        use
        & (iv.items <= 1.05 * iv.execs)
        & (iv.queue_us <= iv.delay_us * iv.items + 0.02 * iv.compute_us)
    )
    qidx = np.flatnonzero(quiet)
    nq = int(iv.n_client[qidx].sum())
    if nq >= 200 and tot.value > 0:

        def cv_of(idx: np.ndarray) -> float:
            ss = sum(
                float(np.sum((g - g.mean()) ** 2))
                for g in (iv.groups[k] for k in idx)
                if len(g) > 1
            )
            dof = sum(len(iv.groups[k]) - 1 for k in idx if len(iv.groups[k]) > 1)
            comp = float(iv.compute_us[idx].sum() / iv.items[idx].sum() / 1e3)
            que = float(iv.queue_us[idx].sum() / iv.items[idx].sum() / 1e3)
            ov = float(iv.lat_sum[idx].sum() / iv.n_client[idx].sum()) - comp - que
            v = ss / max(dof, 1) - (comp * service_cv) ** 2
            return math.sqrt(max(v, 0.0)) / ov if ov > 0 else math.nan

        cv_e = interval(
            np.array([cv_of(qidx[block_indices(len(qidx), rng)]) for _ in range(n_boot)]),
            cv_of(qidx),
            nq,
            "variance of quiet-interval latencies minus service noise",
        )
    else:
        notes.append(
            f"only {nq} requests in quiet intervals (< 200): overhead noise cv kept at "
            f"{prior_cv:g} (prior)"
        )
    return Overhead(
        tot, srv, cli, cv_e, idle, factor, np.column_stack([busy, ovh_i, wt]), notes,
        per_pos, first,
    )  # fmt: skip


def _per_position(
    iv: _Intervals,
    use: np.ndarray,
    gid: np.ndarray,
    ovh_g: np.ndarray,
    wt: np.ndarray,
    rng: np.random.Generator,
    n_boot: int,
    notes: list[str],
) -> tuple[Estimate | None, Estimate | None]:
    """The overhead's growth with a response's position in its batch: the j-th response of
    a batch of b (j = 0..b-1) takes a + c j (the front end and one load-generator process
    handle a batch's responses one after another). Per 5 s group the request-weighted mean
    position is E_req[b - 1] / 2 = (b̄ - 1 + Var(b) / b̄) / 2 (Var from `batch_variance`'s
    central guess); `a + c x` by the same WLS as the busy share. Significant (c's interval
    above 0, the groups' positions spanning at least half a position) it replaces the
    busy-share growth: the sweeps of issue 15 tell the two apart (the unbatched pool at 96 %
    busy keeps 1.0-1.7 ms; the batched one grows 1.6 -> 3-4 ms with b 1 -> 4). Its bootstrap
    draws from a generator spawned from `rng`, so the other fits' draws are what they were."""
    bbar = iv.items / np.maximum(iv.execs, 1)
    vc, _ = batch_variance(bbar, iv.bmax)
    x_i = 0.5 * (bbar - 1.0 + vc / np.maximum(bbar, 1.0)) * iv.items
    x = np.bincount(gid, weights=x_i[use]) / np.bincount(gid, weights=iv.items[use])
    if len(x) < 10 or float(np.ptp(x)) < 0.5:
        return None, None
    design = np.column_stack([np.ones_like(x), x])

    def line(k: np.ndarray) -> tuple[float, float]:
        sw = np.sqrt(wt[k])
        (a, c), *_ = np.linalg.lstsq(design[k] * sw[:, None], ovh_g[k] * sw, rcond=None)
        return float(a), float(c)

    child = rng.spawn(1)[0]
    a0, c0 = line(np.arange(len(x)))
    draws = (block_indices(len(x), child) for _ in range(n_boot))
    # a resample without the spread of positions identifies no slope: not a draw of it
    bl = np.array([line(k) for k in draws if float(np.ptp(x[k])) >= 0.5] or [(a0, c0)])
    method = "WLS of overhead per 5 s on the mean position in the batch: a + c E_req[b - 1] / 2"
    a_e = interval(bl[:, 0], a0, len(x), method)
    c_e = interval(bl[:, 1], c0, len(x), method)
    if not (c_e.lo > 0 and a0 > 0):
        return None, None
    notes.append(
        f"overhead grows with a response's position in its batch: {a0:.2f} ms for the first, "
        f"+{c0:.2f} ms per response before it (95% CI {c_e.lo:.2f}..{c_e.hi:.2f}): overhead_ms "
        "is the first's and overhead_per_batch_position_ms applies"
    )
    return c_e, a_e


def fit_isolated_overhead_cv(
    samples: list[np.ndarray], rng: np.random.Generator, n_boot: int
) -> Estimate | None:
    """The overhead's noise cv from isolated requests (client - queue - compute, one per
    request, one list per recording): the spread within each recording over the mean. A
    lone request has no queue to blur it, unlike latencies under load. None under 30."""
    samples = [x for x in samples if len(x) >= 3]
    if sum(len(x) for x in samples) < 30:
        return None

    def cv(xs: list[np.ndarray]) -> float:
        ss = sum(float(np.sum((x - x.mean()) ** 2)) for x in xs)
        dof = sum(len(x) - 1 for x in xs)
        mean = float(np.mean(np.concatenate(xs)))
        return math.sqrt(ss / dof) / mean if mean > 0 else math.nan

    boot = [cv([x[rng.integers(0, len(x), len(x))] for x in samples]) for _ in range(n_boot)]
    n = sum(len(x) for x in samples)
    return interval(np.array(boot), cv(samples), n, "isolated requests: client - queue - compute")
