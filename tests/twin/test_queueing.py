"""The twin's request loop against queueing theory.

Single-station configurations (see the `queue_scenario` fixture) are run through
`TwinBackend` exactly as any scenario is, and compared with closed-form results:

* M/M/c mean queue wait vs Erlang C, rho in {0.5, 0.8}, c in {1, 4};
* M/D/1 mean queue wait vs Pollaczek-Khinchine;
* closed-loop users (exponential service, uniform think time) vs the interactive
  response-time law R = N/X - Z and vs exact mean-value analysis;
* Little's law L = lambda W on every run: the time-average number in the station,
  sampled from the data plane's arrays, vs the sojourn times the load generator
  records.

Tolerances come from the estimator's variance, not from observed outputs. Waits
are strongly autocorrelated, so the standard error of a mean is estimated by batch
means (`BATCHES` contiguous batches, each tens of thousands of requests long,
i.e. far longer than the relaxation time, so batch means are ~independent), and a
check passes when |estimate - theory| < t * SE with t the Student quantile for
`BATCHES - 1` degrees of freedom at a two-sided level of FAMILY_ALPHA / N_CHECKS
(Bonferroni over every statistical assertion in this module, so the whole module
raises a false alarm with probability < 1 %). A power check comes first: the SE
must be below MAX_REL_SE of the target, so that the test would catch a bias of a
few per cent and cannot pass vacuously on a noisy estimate.

Run lengths were chosen from the asymptotic variance of the mean wait (M/M/1 at
rho 0.8 needs ~1.6 M requests for a 1.2 % SE); seeds are fixed, one per case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from kisim.core.config import Scenario
from kisim.core.window import Window
from twin import kernel as K
from twin.backend import TwinBackend

FAMILY_ALPHA = 0.01
N_CHECKS = 30  # 6 open runs x 3 checks + 4 closed runs x 3 checks (law, MVA, L)
BATCHES = 30
T_CRIT = float(stats.t.ppf(1.0 - FAMILY_ALPHA / (2 * N_CHECKS), BATCHES - 1))  # ~3.9
MAX_REL_SE = 0.02
SAMPLES_PER_BATCH = 600  # time samples of the number in system per batch (Little);
# small L (M/M/4 at 0.5: Lq = 0.17; N=10 users: L = 0.11) needs more for the power check

S = 1e-3  # mean service time, s (1 ms: many requests per simulated second)


# --------------------------------------------------------------------------- theory


def erlang_c_wait(lam: float, mu: float, c: int) -> float:
    """M/M/c mean wait in queue: Wq = C(c, a) / (c mu - lam), a = lam / mu."""
    a = lam / mu
    rho = a / c
    assert rho < 1
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam)


def pk_wait(lam: float, mean_s: float, scv: float) -> float:
    """M/G/1 mean wait in queue (Pollaczek-Khinchine): lam E[S^2] / (2 (1 - rho))."""
    rho = lam * mean_s
    return lam * mean_s**2 * (1 + scv) / (2 * (1 - rho))


def mva(users: int, service_s: float, think_s: float) -> tuple[float, float]:
    """Exact MVA for N users, one FCFS exponential server, an infinite-server think
    station (product form; the think station's distribution does not matter).
    Returns (response time R, throughput X)."""
    q = 0.0
    r = x = 0.0
    for n in range(1, users + 1):
        r = service_s * (1 + q)
        x = n / (r + think_s)
        q = x * r
    return r, x


# --------------------------------------------------------------------------- running


@dataclass
class Run:
    windows: list[Window]  # BATCHES measurement windows, after the warm-up
    lat: np.ndarray  # latencies (= sojourn times) of requests completed in them, s
    wait: np.ndarray  # their queue waits, s
    max_lat: float  # over the whole run including a tail window
    L: np.ndarray  # per window: time-average number in the station (sampled)
    Lq: np.ndarray  # per window: time-average number queued (sampled)

    @property
    def T(self) -> float:
        return self.windows[-1].t_end - self.windows[0].t_start

    @property
    def served(self) -> int:
        return sum(w.served for w in self.windows)


def simulate(scenario: Scenario, seed: int, warm_s: float, measure_s: float,
             samples_per_batch: int = SAMPLES_PER_BATCH) -> Run:  # fmt: skip
    b = TwinBackend()
    b.reset(scenario, seed)
    dt = measure_s / (BATCHES * samples_per_batch)
    samples: list[tuple[float, int, int]] = []
    dp = b.dp

    def sampler():  # type: ignore[no-untyped-def]
        t = warm_s + dt / 2  # mid-points: never on a window edge
        while True:
            yield b.env.timeout(t - b.env.now)
            n = dp.n_slots
            q = int(dp.ri[:n, K.QLEN].sum())
            samples.append((b.env.now, q + int(dp.ri[:n, K.INFL].sum()), q))
            t += dt

    b.env.process(sampler())
    warm = b.advance(warm_s)
    windows = [b.advance(measure_s / BATCHES) for _ in range(BATCHES)]
    b.advance(1.0)  # tail: requests in flight at the end complete, for max_lat
    lat_all, wait_all = b.latencies(), b.waits()
    n0, n1 = warm.served, warm.served + sum(w.served for w in windows)
    ts = np.array([s[0] for s in samples])
    ls = np.array([s[1] for s in samples], float)
    lq = np.array([s[2] for s in samples], float)
    L, Lq = [], []
    for w in windows:
        m = (ts > w.t_start) & (ts < w.t_end)
        L.append(ls[m].mean())
        Lq.append(lq[m].mean())
    return Run(windows, lat_all[n0:n1], wait_all[n0:n1], float(lat_all.max()),
               np.array(L), np.array(Lq))  # fmt: skip


def batch_means(x: np.ndarray) -> tuple[float, float]:
    """(mean, standard error of the mean) from BATCHES contiguous batch means."""
    bm = np.array([b.mean() for b in np.array_split(np.asarray(x), BATCHES)])
    return float(x.mean()), float(bm.std(ddof=1) / math.sqrt(BATCHES))


class Checks:
    """Collects every check of one run, so one failure does not hide the others."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def stat(self, name: str, est: float, se: float, theory: float) -> None:
        """|est - theory| < T_CRIT * SE, after the power check SE < MAX_REL_SE * theory."""
        tol = T_CRIT * se
        print(f"{name}: theory {theory:.6g}, estimate {est:.6g}, SE {se:.3g}, tol {tol:.3g}")
        if not se < MAX_REL_SE * abs(theory):
            self.failures.append(f"{name}: SE {se:.3g} too large to test {theory:.4g}")
        elif not abs(est - theory) < tol:
            self.failures.append(
                f"{name}: |{est:.6g} - {theory:.6g}| >= {tol:.3g} ({T_CRIT:.2f} SE)"
            )

    def little(self, name: str, run: Run, queue_too: bool = True) -> None:
        """Little's law L = lambda W on the run, per window k: sampled time-average
        number in the station minus (sum of the sojourn times completed in k) / |k|.
        The mean difference is 0 up to edge terms that telescope over the run, and
        the windows' spread gives its SE (windows are as long as the batches)."""
        cases = [("L", run.L, run.lat)] + ([("Lq", run.Lq, run.wait)] if queue_too else [])
        for label, lsamp, per_req in cases:
            flows, i = [], 0
            for w in run.windows:
                flows.append(per_req[i : i + w.served].sum() / w.duration)
                i += w.served
            d = lsamp - np.array(flows)
            lam_w = len(per_req) / run.T * per_req.mean()  # lambda W over the whole run
            se = float(d.std(ddof=1) / math.sqrt(BATCHES))
            self.stat(f"{name} Little {label} vs lambda W", float(lsamp.mean()), se, lam_w)

    def done(self) -> None:
        assert not self.failures, "\n".join(self.failures)


# --------------------------------------------------------------------------- open loop

# (label, servers, rho, service kind, measured requests, seed); n from the asymptotic
# variance of the mean wait: rel. SE ~1-1.2 % each
OPEN_CASES = [
    pytest.param("M/M/1", 1, 0.5, "exponential", 500_000, 101, id="MM1-0.5"),
    pytest.param("M/M/1", 1, 0.8, "exponential", 1_600_000, 102, id="MM1-0.8",
                 marks=pytest.mark.slow),
    pytest.param("M/M/4", 4, 0.5, "exponential", 1_200_000, 103, id="MM4-0.5",
                 marks=pytest.mark.slow),
    pytest.param("M/M/4", 4, 0.8, "exponential", 1_600_000, 104, id="MM4-0.8",
                 marks=pytest.mark.slow),
    pytest.param("M/D/1", 1, 0.5, "deterministic", 300_000, 105, id="MD1-0.5"),
    pytest.param("M/D/1", 1, 0.8, "deterministic", 800_000, 106, id="MD1-0.8"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "c", "rho", "kind", "n", "seed"), OPEN_CASES)
def test_open_loop(queue_scenario, label, c, rho, kind, n, seed) -> None:  # type: ignore[no-untyped-def]
    """Mean queue wait vs Erlang C (M/M/c) or Pollaczek-Khinchine (M/D/1), and
    Little's law for the station and for the queue, on one run."""
    lam = rho * c / S
    sc = queue_scenario(mean_service_s=S, servers=c, service=kind, lam=lam)
    spb = 2000 if (c, rho) == (4, 0.5) else SAMPLES_PER_BATCH
    run = simulate(sc, seed, warm_s=5.0, measure_s=n / lam, samples_per_batch=spb)
    # the run is what it claims to be: arrival rate and mean service time. Both are
    # means of ~n i.i.d. draws (relative SE 1/sqrt(n) < 0.2 %), so 1 % is > 5 SE.
    assert run.served / run.T == pytest.approx(lam, rel=0.01)
    assert (run.lat - run.wait).mean() == pytest.approx(S, rel=0.01)
    if kind == "exponential":
        theory = erlang_c_wait(lam, 1 / S, c)
    else:
        assert c == 1
        theory = pk_wait(lam, S, scv=0.0)
    checks = Checks()
    est, se = batch_means(run.wait)
    checks.stat(f"{label} rho={rho} mean wait Wq [s]", est, se, theory)
    checks.little(f"{label} rho={rho}", run)
    checks.done()


# --------------------------------------------------------------------------- closed loop

THINK = (0.09, 0.11)  # Locust between(0.09, 0.11): Z = 0.1 s, sd 5.8 ms
Z = sum(THINK) / 2
SD_Z = (THINK[1] - THINK[0]) / math.sqrt(12)
# N* = (S + Z) / S = 101 users saturate the server: 100 is at the knee, 150 beyond
CLOSED_CASES = [(10, 201), (50, 202), (100, 203), (150, 204)]
CLOSED_REQUESTS = 400_000


@pytest.mark.parametrize(("users", "seed"), CLOSED_CASES, ids=[f"N{n}" for n, _ in CLOSED_CASES])
def test_closed_loop(queue_scenario, users, seed) -> None:  # type: ignore[no-untyped-def]
    """N Locust users, one exponential server (S = 1 ms), think time U(0.09, 0.11) s.

    1. Interactive response-time law R = N/X - Z. Over the measured span T every
       user is either waiting for an answer or thinking, so N T = sum(R_i) + sum(Z_i)
       over the n requests completed in it, up to one partial response and one
       partial think per user at each edge:
       |N/X - Z - R| <= |mean(Z_i) - Z| + N (max R + max Z) / n.
       The first term is a mean of n i.i.d. uniform draws (SE = sd(Z) / sqrt(n),
       taken at T_CRIT); the second is a bound.
    2. R vs exact MVA (product form: the think station's distribution is irrelevant).
    3. Little's law at the server: time-average number there = X R.
    """
    sc = queue_scenario(mean_service_s=S, users=users, think=THINK)
    r_mva, x_mva = mva(users, S, Z)
    spb = 1500 if users == 10 else SAMPLES_PER_BATCH
    run = simulate(sc, seed, warm_s=5.0, measure_s=CLOSED_REQUESTS / x_mva,
                   samples_per_batch=spb)  # fmt: skip
    n = run.served
    x = n / run.T
    r = float(run.lat.mean())
    law = users / x - Z
    tol = T_CRIT * SD_Z / math.sqrt(n) + users * (run.max_lat + THINK[1]) / n
    print(f"N={users} R = N/X - Z: law {law:.6g}, R {r:.6g}, tol {tol:.3g}")
    assert tol < 0.05 * r, "tolerance too wide for the law to mean anything"
    assert abs(r - law) < tol
    # asymptotic bounds of a closed system: X <= min(1/S, N/(S+Z)) (2 %: X is estimated)
    assert x <= min(1 / S, users / (S + Z)) * 1.02
    checks = Checks()
    est, se = batch_means(run.lat)
    checks.stat(f"N={users} R vs MVA [s]", est, se, r_mva)
    # Lq near 0 at N=10 has no power: only L is checked for closed runs
    checks.little(f"N={users}", run, queue_too=False)
    checks.done()
