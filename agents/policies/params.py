"""Positional policy parameters: ``name:V1:V2:...`` against a declared list of fields.

Every tunable opponent reads its spec through `Params`, so a tuned spec written into a
results folder (``ray:4:0:60:1:1``) is exactly the string that runs it again, and the
spec a search proposes is validated like one typed on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from kisim.core.config import Scenario
from kisim.core.errors import KisimError


@dataclass(frozen=True)
class Field:
    name: str
    default: float
    lo: float  # exclusive unless `lo_incl`
    hi: float  # inclusive
    integer: bool = False
    lo_incl: bool = False


def parse_params(name: str, arg: str | None, fields: tuple[Field, ...]) -> dict[str, float]:
    """Values for `fields` from ``V1:V2:...`` (fewer values keep the defaults; empty = default)."""
    vals = {f.name: f.default for f in fields}
    if arg is None:
        return vals
    parts = arg.split(":")
    if len(parts) > len(fields):
        raise KisimError(f"policy '{name}:{arg}': at most {len(fields)} values "
                         f"({':'.join(f.name for f in fields)})")  # fmt: skip
    for f, s in zip(fields, parts, strict=False):
        if s == "":
            continue
        try:
            x = float(s)
        except ValueError:
            raise KisimError(f"policy '{name}:{arg}': {f.name} '{s}' is not a number") from None
        if f.integer and x != int(x):
            raise KisimError(f"policy '{name}:{arg}': {f.name} '{s}' is not an integer")
        low_ok = x >= f.lo if f.lo_incl else x > f.lo
        if not (low_ok and x <= f.hi):
            br = "[" if f.lo_incl else "("
            raise KisimError(f"policy '{name}:{arg}': {f.name} {s} must lie in "
                             f"{br}{f.lo:g}, {f.hi:g}]")  # fmt: skip
        vals[f.name] = int(x) if f.integer else x
    return vals


def help_of(fields: tuple[Field, ...]) -> str:
    return ":".join(f"{f.name}(={f.default:g})" for f in fields)


def nominal_rps(sc: Scenario, pool: str) -> float:
    """A pod's nominal capacity (req/s): every instance executing full batches back to back,
    ``instances x b / t(b)`` with b = max_batch_size and t the calibrated batch time at the
    pod's cores (`DeviceCalibration.core_exponent`), plus the per-item merge cost. What a KEDA
    threshold or a capacity plan is expressed against; queueing makes real capacity lower."""
    cfg = sc.pools[pool]
    dev = sc.calibration.devices[cfg.device]
    b = cfg.batching.max_batch_size if cfg.batching.enabled else 1
    t_ms = dev.service.time_ms(b)
    if dev.kind == "cpu" and cfg.resources.cpu > 0:
        t_ms *= (dev.reference_cores / cfg.resources.cpu) ** dev.core_exponent(b)
    t_ms += dev.batch_merge_ms * (b - 1)
    return cfg.instances * b / (t_ms * 1e-3)


def startup_s(sc: Scenario, pool: str) -> float:
    """Mean time from creating a pod to its readiness (schedule, container start, model load,
    first readiness probe): how far ahead a capacity plan must provision."""
    st = sc.calibration.devices[sc.pools[pool].device].startup
    return (st.schedule_s + st.container_start_s + st.model_load_s
            + max(st.readiness_initial_delay_s, 0.0) + st.readiness_period_s / 2)  # fmt: skip
