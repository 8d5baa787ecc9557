"""The estimators, one module per group of calibration parameters, each with a 95 % CI.

Every estimator returns `Estimate`s (value, 95 % interval, how many observations, how it
was obtained) and notes what it could not identify; `calibration.calibrate` assembles
them into a `Calibration`:

- `calibration.service_curve`: the isolated curve, its noise, core scaling;
- `calibration.in_load`: Triton's counters in chunks and the in-load factor k;
- `calibration.overhead`: time outside queue and compute, its noise, its busy growth;
- `calibration.startup`: pod start-up phases; `calibration.resources`: CPU and memory.

Service time model (what the twin executes, `twin.kernel._dispatch`):
    t(b) = curve(b) x k x f(concurrency) x noise,  noise ~ lognormal(mean 1, cv)
(+ batch_merge_ms x (b - 1) inside the curve: requests the batcher merged, not measured
in isolation, where a batch is one request) with
f = E[(ref_cores x m / cores)^e] x (1 + host_sharing_penalty x h) on CPUs (m = busy
instances of the replica, e = `core_scaling`, h = executions of other replicas busy on
the same node) and 1 + sharing_penalty x (m - 1) on GPUs; k is the in-load factor by
which the counters' compute time differs from the isolated measurement. An execution that
starts on an idle replica is also x (1 + idle_slowdown x (1 - exp(-gap / idle_tau_ms)))
(`calibration.idle_gap`; then k is the back-to-back level k0).
"""

from calibration.estimate import Estimate, fixed
from calibration.in_load import (
    K_MIN_EFFECT,
    MIN_EXEC_PER_CHUNK,
    NOT_SIGNIFICANT,
    Chunks,
    InLoad,
    batch_variance,
    busy_pmf,
    chunk_counters,
    fit_curve_from_counters,
    fit_in_load,
    spread_bounds,
)
from calibration.overhead import Overhead, fit_isolated_overhead_cv, fit_overhead, pool_intervals
from calibration.resources import fit_cpu_per_request, fit_memory_base
from calibration.service_curve import (
    CurveFit,
    chi2_sf,
    fit_core_scaling,
    fit_core_scaling_by_size,
    fit_isolated,
)
from calibration.startup import Startup, fit_startup, replica_phases

__all__ = [
    "K_MIN_EFFECT",
    "NOT_SIGNIFICANT",
    "MIN_EXEC_PER_CHUNK",
    "Chunks",
    "CurveFit",
    "Estimate",
    "InLoad",
    "Overhead",
    "Startup",
    "batch_variance",
    "busy_pmf",
    "chi2_sf",
    "chunk_counters",
    "fit_core_scaling",
    "fit_core_scaling_by_size",
    "fit_cpu_per_request",
    "fit_curve_from_counters",
    "fit_in_load",
    "fit_isolated",
    "fit_isolated_overhead_cv",
    "fit_memory_base",
    "fit_overhead",
    "fit_startup",
    "fixed",
    "pool_intervals",
    "replica_phases",
    "spread_bounds",
]
