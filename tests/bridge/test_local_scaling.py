"""A scripted scale-up and scale-down on the local stack (real Triton replicas start and
stop), checked against the replicas' own counters and lifecycle.

Script (8 s windows, CPU pool only, 12 users): 1 replica; ask for 3 (clamped to
max_replicas 2); the new replica starts for real (~5 s here), becomes an endpoint and
takes traffic; scale back to 1: the newest replica leaves the endpoints at once, drains
(1 s), and stops gracefully, so no request fails. Tolerance of the served-vs-Triton check:
as in test_local_static.py (in-flight requests at the two boundaries, boundary gaps).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from local_stack import USERS, needs_stack, port_open, small_scenario

pytestmark = [pytest.mark.server, needs_stack]
DT = 8.0


def test_scale_up_then_down_is_real_and_accounted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Through `KisimEnv` with the replicas preset: hold, CPU +2 (clamped to 2), hold,
    CPU -1 and GPU -1 (clamped at 0), hold."""
    from bridge.backend import make_local_backend
    from bridge.triton_metrics import scrape
    from kisim.env.environment import KisimEnv

    sc = small_scenario(**{"pools.gpu.replicas": 0, "duration_s": 40})
    env = KisimEnv(sc, make_local_backend(tmp_path), action="replicas", step_s=DT)
    b = env.backend
    hold = np.array([2, 2, 1])
    try:
        env.reset(seed=1)
        t_before = time.time()
        ((first, _, first_metrics),) = b.actuator.replicas("cpu")
        before = scrape(first_metrics)
        steps = [env.step(hold), env.step(np.array([2, 4, 1])), env.step(hold)]
        live = b.actuator.replicas("cpu")
        ((new, new_http, _),) = [r for r in live if r[0] != first]
        steps += [env.step(np.array([1, 1, 1])), env.step(hold)]
        t_after = time.time()
        after = scrape(first_metrics)
        t0 = b.t0_unix
        log = b.load.log
        events = b.actuator.events()
        final = dict(b.actuator.final_counters)
        prom_addr = b.prometheus.url.removeprefix("http://")
    finally:
        env.close()
    windows = [info["window"] for *_, info in steps]
    w0, w1, w2, w3, w4 = windows
    assert steps[-1][3] and not any(s[3] for s in steps[:-1])  # truncated at 40 s only

    # --- bounds: the request for 3 is clamped, and so is -1
    assert steps[1][4]["clamped"] == {"cpu.replicas": "3 -> 2 (max_replicas)"}
    assert steps[3][4]["clamped"] == {"gpu.replicas": "-1 -> 0 (min_replicas)"}

    # --- the replica picture window by window
    assert [w.cpu_desired for w in windows] == [1, 2, 2, 1, 1]
    assert w0.cpu_ready == 1 and w2.cpu_ready == 2 and w3.cpu_ready == 1 and w4.cpu_ready == 1
    assert all(w.gpu_ready == 0 and w.gpu_replica_s == 0 for w in windows)
    assert w0.cpu_replica_s == pytest.approx(DT, abs=0.05)
    assert DT < w1.cpu_replica_s < 2 * DT and w2.cpu_replica_s == pytest.approx(2 * DT, abs=0.1)
    assert DT < w3.cpu_replica_s < 2 * DT  # the old one drains and stops within the window
    assert w4.cpu_replica_s == pytest.approx(DT, abs=0.05)

    kinds = [(e.replica, e.kind) for e in events if e.replica == new]
    assert kinds == [(new, "created"), (new, "ready"), (new, "stopping"), (new, "terminated")]
    ready = next(e for e in events if e.replica == new and e.kind == "ready")
    assert float(ready.detail.removeprefix("startup=").removesuffix("s")) < 2 * DT
    assert next(e for e in events if e.replica == new and e.kind == "terminated").detail == "rc=0"

    # --- the new replica served real traffic, and scale-down lost no request
    eps = np.asarray(log.endpoint)
    assert int((eps == new_http).sum()) > 0
    assert sum(w.errors for w in windows) == 0

    # --- served vs Triton's counters of both replicas (the new one read before it stopped)
    served = sum(w.served for w in windows)
    d_success = (
        after["nv_inference_request_success"]
        - before["nv_inference_request_success"]
        + final[new]["nv_inference_request_success"]
    )
    rate = served / (len(windows) * DT)
    gaps = (t_before - t0) + (t_after - (t0 + len(windows) * DT))
    assert abs(served - d_success) <= USERS + rate * gaps + 2, (served, d_success)
    # read after the 1 s drain: only a request slower than that could still be in flight
    sent_to_new = int((eps == new_http).sum())
    assert 0 <= sent_to_new - final[new]["nv_inference_request_success"] <= USERS

    # --- nothing left behind
    time.sleep(0.5)
    assert not port_open(new_http) and not port_open(prom_addr)
