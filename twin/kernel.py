"""The compiled request loop (numba): arrivals, routing, Triton batching, completions.

One call runs every request event up to a time; all state lives in numpy arrays
owned by `twin.dataplane.DataPlane`, so Python touches requests only in bulk.
Semantics are those of `twin.batcher.BatchRule.decide` (tested in pure Python and
against queueing theory through this kernel). The call returns early with
`NEED_SPACE` when a buffer (heap, queue, output, random stream, batch slots) is
close to full; Python grows or refills it and calls again. Events are processed
whole before that check, so a resumed call continues exactly where it stopped.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kisim.core.sketch import LOG_GAMMA, MIN_S, N_BUCKETS

# event kinds
ARRIVE, DONE, TIMER, OPEN = 0, 1, 2, 3
# return codes
FINISHED, NEED_SPACE = 0, 1
# replica int columns (POOL: the pool's slot; GROUP: its routing group; SSVC/SOVH: its
# service-time and overhead noise streams)
POOL, STATE, INST, FREE, MAXB, CAP, MAXQ, GPU, NPREF, QHEAD, QLEN = range(11)
NSUCC, NEXEC, NITEMS, NREJ, INFL, TIMER_ARMED, HOST, GROUP, SSVC, SOVH = range(11, 21)
NRI = 21
# replica float columns
# OVHP: overhead per position in a completed batch, s (the j-th response of a batch waits
# for the j before it at the front end and the client); IDLE, ITAU: an execution that starts
# on an idle replica takes x (1 + IDLE (1 - exp(-gap ITAU))), gap = now - LAST (the time its
# last execution ended; -inf before the first): `DeviceCalibration.idle_slowdown`
DELAY, PEN, CORES, REF, CPUREQ, OVH, TIMER_AT, QSUM, CSUM, RSUM, CPUS, OVHB, HPEN, OVHP = range(14)
IDLE, ITAU, LAST = range(14, 17)
NRF = 17
# replica states
UNUSED, READY, DRAINING, GONE = 0, 1, 2, 3
# global int slots
HN, SEQ, BFREE, NOUT, OPEN_GEN, RR_MODE, NDRAINED = range(7)
W_OFFERED, W_SERVED, W_ERRORS, W_BATCHES, W_ITEMS, QMAX, NG = range(7, 14)
# W_SLOW: completed requests over the SLO in the window; SKETCH: 1 = latencies go into the
# window's sketch buckets (`kisim.core.sketch`), 0 = into the per-request arrays olat/owait
W_SLOW, SKETCH = range(14, 16)
# OPEN_SEQ: the sequence number of the pending open-loop arrival (its time is OPEN_T)
OPEN_SEQ = 16
NGI = 17
# global float slots (SLO_S: the SLO in s; W_LATSUM, W_WAITSUM: the window's exact sums;
# OPEN_T: time of the next open-loop arrival, inf when none)
OPEN_RATE, NOW, SLO_S, W_LATSUM, W_WAITSUM, OPEN_T = range(6)
NGF = 6
# random streams: three shared ones, then per pool slot p: service noise S_POOLS + 2p,
# overhead noise S_POOLS + 2p + 1 (`stream_index`)
S_ROUTE, S_THINK, S_OPEN = range(3)
S_POOLS = 3


def n_streams(n_pools: int) -> int:
    return S_POOLS + 2 * n_pools


def stream_index(pool_slot: int, overhead: bool) -> int:
    """The stream of a pool's service-time (or overhead) noise."""
    return S_POOLS + 2 * pool_slot + (1 if overhead else 0)
ERROR_LATENCY_S = 0.001


@njit(cache=True, inline="always")
def heap_push(ht, hs, hk, hx, gi, t, kind, x):  # type: ignore[no-untyped-def]
    """Sift up with a hole: parents move down, the new entry is written once.

    The heap is 4-ary (children of i: 4i + 1 .. 4i + 4): half the levels of a binary heap,
    so fewer hard-to-predict comparisons per event (~100 pending events in `kisim bench
    twin`). Entries are ordered by (time, sequence number), which is unique, so any heap
    pops the same event next: the shape changes no number."""
    n = gi[HN]
    seq = gi[SEQ]
    gi[SEQ] = seq + 1
    gi[HN] = n + 1
    while n > 0:
        p = (n - 1) >> 2
        if t < ht[p] or (t == ht[p] and seq < hs[p]):
            ht[n], hs[n], hk[n], hx[n] = ht[p], hs[p], hk[p], hx[p]
            n = p
        else:
            break
    ht[n], hs[n], hk[n], hx[n] = t, seq, kind, x


@njit(cache=True, inline="always")
def heap_pop(ht, hs, hk, hx, gi):  # type: ignore[no-untyped-def]
    """Pop the earliest (time, seq); the last entry sifts down from the root with a hole,
    each level moving up the earliest of up to four children."""
    t, k, x = ht[0], hk[0], hx[0]
    n = gi[HN] - 1
    gi[HN] = n
    lt, ls, lk, lx = ht[n], hs[n], hk[n], hx[n]
    i = 0
    while True:
        c = 4 * i + 1
        if c >= n:
            break
        m, mt, ms = c, ht[c], hs[c]
        last = c + 3 if c + 3 < n else n - 1
        for j in range(c + 1, last + 1):
            tj = ht[j]
            if tj < mt or (tj == mt and hs[j] < ms):
                m, mt, ms = j, tj, hs[j]
        if mt < lt or (mt == lt and ms < ls):
            ht[i], hs[i], hk[i], hx[i] = mt, ms, hk[m], hx[m]
            i = m
        else:
            break
    ht[i], hs[i], hk[i], hx[i] = lt, ls, lk, lx
    return t, k, x


@njit(cache=True, inline="always")
def _draw(rnd, ridx, s):  # type: ignore[no-untyped-def]
    i = ridx[s]
    ridx[s] = i + 1
    return rnd[s, i]


@njit(cache=True, inline="always")
def _bucket(x):  # type: ignore[no-untyped-def]
    """`kisim.core.sketch.bucket_of`, compiled."""
    if x < MIN_S:
        return 0
    k = 1 + int(np.ceil(np.log(x / MIN_S) / LOG_GAMMA))
    return k if k < N_BUCKETS else N_BUCKETS - 1


@njit(cache=True, inline="always")
def _decide(ri, rf, pref, r, now, oldest):  # type: ignore[no-untyped-def]
    """`BatchRule.decide` on array state: batch size to send now, 0 = wait."""
    n = ri[r, QLEN]
    if n >= ri[r, CAP]:
        return ri[r, CAP]
    for k in range(ri[r, NPREF]):
        if pref[r, k] <= n:
            return pref[r, k]
    if rf[r, DELAY] == 0.0 or oldest + rf[r, DELAY] <= now:
        return n if n < ri[r, MAXB] else ri[r, MAXB]
    return 0


@njit(cache=True, inline="always")
def _dispatch(r, now, ri, rf, pref, curve, cexp, qt, qu, gbusy, gf, bi, bf, bt, bu,
              ht, hs, hk, hx, gi, rnd, ridx):  # type: ignore[no-untyped-def]  # fmt: skip
    qcap = qt.shape[1]
    while ri[r, FREE] > 0 and ri[r, QLEN] > 0:
        head = ri[r, QHEAD]
        b = _decide(ri, rf, pref, r, now, qt[r, head])
        if b == 0:
            if ri[r, TIMER_ARMED] == 0:
                ri[r, TIMER_ARMED] = 1
                rf[r, TIMER_AT] = qt[r, head] + rf[r, DELAY]
                heap_push(ht, hs, hk, hx, gi, rf[r, TIMER_AT], TIMER, r)
            return
        slot = gi[BFREE]
        gi[BFREE] = bi[slot, 2]
        h = head
        for j in range(b):
            bt[slot, j] = qt[r, h]
            bu[slot, j] = qu[r, h]
            h += 1
            if h == qcap:
                h = 0
        ri[r, QHEAD] = h
        ri[r, QLEN] -= b
        g = ri[r, GPU]
        noise = _draw(rnd, ridx, ri[r, SSVC])
        if g >= 0:
            st = curve[r, b] * (1.0 + rf[r, PEN] * gbusy[g]) * noise
            if gbusy[g] == 0:
                gf[g, 0] = now
            gbusy[g] += 1
            cores = 0.0
        else:
            eff = rf[r, CORES] / (ri[r, INST] - ri[r, FREE] + 1)
            st = curve[r, b] * (rf[r, REF] / eff) ** cexp[r, b] * noise  # exponent per size
            cores = eff
            h = ri[r, HOST]  # >= 0 only with a host-sharing penalty: count on the node
            if h >= 0:  # other replicas' executions on the same host's cores slow this one
                st *= 1.0 + rf[r, HPEN] * (gbusy[h] - (ri[r, INST] - ri[r, FREE]))
                gbusy[h] += 1
        if rf[r, IDLE] > 0.0 and ri[r, FREE] == ri[r, INST]:  # starts on an idle replica
            st *= 1.0 + rf[r, IDLE] * (1.0 - np.exp(-(now - rf[r, LAST]) * rf[r, ITAU]))
        rf[r, CPUS] += cores * st + rf[r, CPUREQ] * b
        ri[r, FREE] -= 1
        ri[r, INFL] += b
        bi[slot, 0] = r
        bi[slot, 1] = b
        bf[slot] = now
        heap_push(ht, hs, hk, hx, gi, now + st, DONE, slot)


@njit(cache=True, inline="always")
def _fail(u, t, alive, ht, hs, hk, hx, gi, rnd, ridx):  # type: ignore[no-untyped-def]
    gi[W_ERRORS] += 1
    if u >= 0 and alive[u]:
        heap_push(ht, hs, hk, hx, gi, t + ERROR_LATENCY_S + _draw(rnd, ridx, S_THINK), ARRIVE, u)


@njit(cache=True, inline="always")
def _route(gi, nready, rr, gw, ready, rnd, ridx):  # type: ignore[no-untyped-def]
    """The replica slot a request goes to (-1: no ready endpoint anywhere).

    Groups with ready endpoints share one uniform draw `u` by their weights (`gw`, or the
    endpoint count where gw < 0), renormalised over those groups: group g takes
    [lo, lo + w_g / total) and the last one takes the rest, [lo, 1). `u` is then rescaled to
    [0, 1) within the chosen group and picks an endpoint uniformly (or round-robin). One
    draw per request, whatever the number of groups; with one group per pool and two pools
    this is exactly the two-pool split of `gpu_share`."""
    ng = nready.shape[0]
    ne = 0
    last = -1
    for g in range(ng):
        if nready[g] > 0:
            ne += 1
            last = g
    if ne == 0:
        return -1
    u = _draw(rnd, ridx, S_ROUTE)
    pool = last
    if ne > 1:
        total = 0.0
        for g in range(ng):
            if nready[g] > 0:
                total += gw[g] if gw[g] >= 0.0 else nready[g]
        by_count = total <= 0.0  # every weight 0: fall back to the endpoint count
        if by_count:
            total = 0.0
            for g in range(ng):
                total += nready[g]
        lo = 0.0
        width = 1.0
        seen = 0
        for g in range(ng):
            if nready[g] == 0:
                continue
            seen += 1
            if seen == ne:
                pool = g
                width = 1.0 - lo
                break
            wg = nready[g] if (by_count or gw[g] < 0.0) else gw[g]
            s = wg / total
            hi = lo + s
            if u < hi:
                pool = g
                width = s
                break
            lo = hi
        u = (u - lo) / width if width > 0.0 else 0.0
    n = nready[pool]
    if gi[RR_MODE] == 1:
        rr[pool] = (rr[pool] + 1) % n
        return ready[pool, rr[pool]]
    k = int(u * n)
    return ready[pool, k if k < n else n - 1]


@njit(cache=True)
def run_until(t_end, ri, rf, pref, curve, cexp, qt, qu, gbusy, gf, bi, bf, bt, bu,
              ht, hs, hk, hx, gi, gfl, rnd, ridx, ready, nready, rr, gw, alive, olat, owait,
              sk, drained, margin_heap, margin_draw, margin_out):  # type: ignore[no-untyped-def]  # fmt: skip
    """Process events with time <= t_end. Returns FINISHED or NEED_SPACE.

    The state, in five groups (all owned by `twin.dataplane.DataPlane`, same names):

    * replicas, per slot: ``ri``/``rf`` int and float columns (`POOL`.., `DELAY`..),
      ``pref`` preferred batch sizes, ``curve`` service s and ``cexp`` core-scaling exponent
      per batch size, ``qt``/``qu`` the queue (arrival times, users) as a ring buffer;
    * devices and batches: ``gbusy`` executions per GPU then per host, ``gf`` (busy since,
      busy s) per GPU, ``bi``/``bf``/``bt``/``bu`` in-flight batches (replica, size, next
      free; start; items' arrival times; users);
    * events: ``ht``/``hs``/``hk``/``hx`` the 4-ary heap (time, seq, kind, argument);
    * globals and randomness: ``gi``/``gfl`` int and float slots (`HN`.., `OPEN_RATE`..),
      ``rnd``/``ridx`` random streams and read positions;
    * routing and outputs: ``ready``/``nready``/``rr``/``gw`` ready slots, counts,
      round-robin positions and weights per routing group, ``alive`` users, ``olat``/
      ``owait`` per-request latency and queue wait (exact mode), ``sk`` the window's
      latency and wait sketch buckets (sketch mode, `kisim.core.sketch`), ``drained``
      replicas that finished draining; the margins are the most heap entries, draws and
      outputs one event can use.

    They stay positional arrays: grouping them into NamedTuples cost ~7 % of the twin's
    speed (numba types every tuple argument on each call; measured with `kisim bench twin`).
    """
    qcap = qt.shape[1]
    hcap = ht.shape[0]
    ocap = olat.shape[0]
    blk = rnd.shape[1]
    budget = 0  # events that can run before any buffer might overflow
    while True:
        # the next event: the heap's earliest, or the pending open-loop arrival, which is
        # kept beside the heap (one push and one pop fewer per request) and ordered with it
        # by (time, sequence number) exactly as if it were in it
        ot = gfl[OPEN_T]
        from_heap = gi[HN] > 0 and (ht[0] < ot or (ht[0] == ot and hs[0] < gi[OPEN_SEQ]))
        if (ht[0] if from_heap else ot) > t_end:
            break
        if budget == 0:
            budget = min((hcap - gi[HN]) // margin_heap, qcap - 1 - gi[QMAX])
            if gi[SKETCH] == 0:  # per-request outputs: room for one event's batch
                budget = min(budget, (ocap - gi[NOUT]) // margin_out)
            for s in range(rnd.shape[0]):
                budget = min(budget, (blk - ridx[s]) // margin_draw)
            if budget <= 0 or gi[BFREE] < 0:
                return NEED_SPACE
        budget -= 1
        if from_heap:
            t, kind, x = heap_pop(ht, hs, hk, hx, gi)
        else:
            t, kind, x = ot, OPEN, gi[OPEN_GEN]
        if kind == ARRIVE or kind == OPEN:
            if kind == OPEN:
                iat = _draw(rnd, ridx, S_OPEN) / gfl[OPEN_RATE]
                gfl[OPEN_T] = t + iat  # the next arrival takes a sequence number as a push
                gi[OPEN_SEQ] = gi[SEQ]
                gi[SEQ] += 1
                x = -1
            elif not alive[x]:
                continue
            gi[W_OFFERED] += 1
            r = _route(gi, nready, rr, gw, ready, rnd, ridx)
            if r < 0:
                _fail(x, t, alive, ht, hs, hk, hx, gi, rnd, ridx)
                continue
            if ri[r, MAXQ] > 0 and ri[r, QLEN] >= ri[r, MAXQ]:
                ri[r, NREJ] += 1
                _fail(x, t, alive, ht, hs, hk, hx, gi, rnd, ridx)
                continue
            tail = ri[r, QHEAD] + ri[r, QLEN]
            if tail >= qcap:
                tail -= qcap
            qt[r, tail] = t
            qu[r, tail] = x
            ri[r, QLEN] += 1
            if ri[r, QLEN] > gi[QMAX]:
                gi[QMAX] = ri[r, QLEN]
            if ri[r, FREE] > 0:
                _dispatch(r, t, ri, rf, pref, curve, cexp, qt, qu, gbusy, gf, bi, bf, bt, bu,
                          ht, hs, hk, hx, gi, rnd, ridx)  # fmt: skip
        elif kind == DONE:
            slot = x
            r = bi[slot, 0]
            b = bi[slot, 1]
            t0 = bf[slot]
            ri[r, FREE] += 1
            ri[r, INFL] -= b
            if ri[r, FREE] == ri[r, INST]:
                rf[r, LAST] = t  # the replica is idle from now (`IDLE`)
            g = ri[r, GPU]
            if g >= 0:
                gbusy[g] -= 1
                if gbusy[g] == 0:
                    gf[g, 1] += t - gf[g, 0]
            elif ri[r, HOST] >= 0:
                gbusy[ri[r, HOST]] -= 1
            st = t - t0
            ri[r, NEXEC] += 1
            ri[r, NITEMS] += b
            ri[r, NSUCC] += b
            rf[r, CSUM] += st * b
            gi[W_BATCHES] += 1
            gi[W_ITEMS] += b
            gi[W_SERVED] += b
            ovh = rf[r, OVH]
            if rf[r, OVHB] > 0.0:  # front end and client share the cores with pending work
                busy = ri[r, INST] - ri[r, FREE] + (1 if ri[r, QLEN] > 0 else 0)
                ovh *= 1.0 + rf[r, OVHB] * min(busy, ri[r, INST]) / ri[r, INST]
            so = ri[r, SOVH]
            opos = rf[r, OVHP]
            n = gi[NOUT]
            qs = 0.0
            rs = 0.0
            ls = 0.0
            slo = gfl[SLO_S]
            sketch = gi[SKETCH] == 1
            for j in range(b):
                ta = bt[slot, j]
                u = bu[slot, j]
                lat = t - ta
                rs += lat
                if ovh > 0.0:
                    lat += ovh * _draw(rnd, ridx, so)
                if opos > 0.0:  # deterministic: no draw, so the streams stay as they were
                    lat += opos * j
                wt = t0 - ta
                if sketch:  # streaming: two bucket counts, no per-request record
                    sk[0, _bucket(lat)] += 1
                    sk[1, _bucket(wt)] += 1
                    ls += lat
                else:
                    olat[n] = lat
                    owait[n] = wt
                    n += 1
                if lat > slo:
                    gi[W_SLOW] += 1
                qs += wt
                if u >= 0 and alive[u]:
                    heap_push(ht, hs, hk, hx, gi, ta + lat + _draw(rnd, ridx, S_THINK), ARRIVE, u)
            gi[NOUT] = n
            if sketch:
                gfl[W_LATSUM] += ls
                gfl[W_WAITSUM] += qs
            rf[r, QSUM] += qs
            rf[r, RSUM] += rs
            bi[slot, 2] = gi[BFREE]
            gi[BFREE] = slot
            if ri[r, QLEN] > 0:
                _dispatch(r, t, ri, rf, pref, curve, cexp, qt, qu, gbusy, gf, bi, bf, bt, bu,
                          ht, hs, hk, hx, gi, rnd, ridx)  # fmt: skip
            elif ri[r, STATE] == DRAINING and ri[r, FREE] == ri[r, INST]:
                k = gi[NDRAINED]
                drained[k, 0] = r
                drained[k, 1] = t
                gi[NDRAINED] = k + 1
        else:  # TIMER
            r = x
            if ri[r, TIMER_ARMED] == 1 and rf[r, TIMER_AT] == t:
                ri[r, TIMER_ARMED] = 0
                if ri[r, FREE] > 0 and ri[r, QLEN] > 0:
                    _dispatch(r, t, ri, rf, pref, curve, cexp, qt, qu, gbusy, gf, bi, bf, bt, bu,
                              ht, hs, hk, hx, gi, rnd, ridx)  # fmt: skip
    gfl[NOW] = t_end
    return FINISHED


@njit(cache=True)
def start_users(ht, hs, hk, hx, gi, rnd, ridx, users, now, spread):  # type: ignore[no-untyped-def]
    """New closed-loop users send their first request spread uniformly over `spread` s."""
    for u in users:
        heap_push(ht, hs, hk, hx, gi, now + spread * _draw(rnd, ridx, S_ROUTE), ARRIVE, u)


@njit(cache=True)
def start_users_at(ht, hs, hk, hx, gi, users, starts):  # type: ignore[no-untyped-def]
    """New closed-loop users send their first request at the given times."""
    for i in range(users.shape[0]):
        heap_push(ht, hs, hk, hx, gi, starts[i], ARRIVE, users[i])
