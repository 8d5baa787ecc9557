"""Money: what a pod costs per hour, from public cloud list prices (a scenario's ``prices:``).

A pod is priced by what it reserves, as cloud list prices are built: each GPU at the price of
its device's *GPU share* of a one-GPU instance (the instance's list price minus its vCPUs and
memory at the general-purpose rate), each CPU core at the general-purpose price per
vCPU-hour (memory included, 4 GiB per vCPU as on AWS m6i), and any memory beyond that at
``memory_gib_hour`` (0 by default). So a pod of ``resources`` {cpu: c, memory_gib: m, gpu: g}
on device d costs ``g x gpu_hour[d] + c x core_hour + m x memory_gib_hour`` per hour, whether
it runs on a GPU node or a CPU node; a Pending pod (not bound to a node) costs nothing.

The defaults are AWS on-demand list prices (Linux, us-east-1), as known to the authors on the
date in `DEFAULT_PROVENANCE` - list prices change: check them before relying on a number.
A scenario may replace any of them (spot prices, another cloud, another region) and must then
say where its figures come from in ``prices.provenance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from kisim.core.devices import NonNeg, StrictModel

if TYPE_CHECKING:  # pragma: no cover
    from kisim.core.config import Scenario

AS_OF = "2024-06"
"""When the default list prices were read (month); they are not refreshed automatically."""

DEFAULT_CORE_HOUR = 0.048
"""USD per vCPU-hour: AWS m6i.xlarge (4 vCPU, 16 GiB) at 0.192 USD/h on demand, us-east-1."""

DEFAULT_GPU_HOUR: dict[str, float] = {
    # GPU share = one-GPU instance (4 vCPU, 16 GiB) minus 4 x DEFAULT_CORE_HOUR (0.192)
    "a10g": 0.814,     # AWS g5.xlarge   (1x NVIDIA A10G 24 GB) 1.006 USD/h
    "l4": 0.6128,      # AWS g6.xlarge   (1x NVIDIA L4 24 GB)   0.8048 USD/h
    "t4": 0.334,       # AWS g4dn.xlarge (1x NVIDIA T4 16 GB)   0.526 USD/h
    "rtx3080": 0.814,  # no cloud rents it: priced as the A10G, the GA102 chip (assumption)
}  # fmt: skip
"""USD per GPU-hour by calibration device name."""

DEFAULT_OTHER_GPU_HOUR = 0.814
"""USD per GPU-hour of a GPU device not in `gpu_hour` (the A10G's share; an assumption)."""

DEFAULT_PROVENANCE = (
    f"AWS EC2 on-demand list prices, Linux, us-east-1, as read in {AS_OF} (list price as of "
    f"{AS_OF}, check before relying; https://aws.amazon.com/ec2/pricing/on-demand/): "
    "m6i.xlarge 0.192 USD/h for 4 vCPU + 16 GiB -> 0.048 USD per vCPU-hour, memory included; "
    "g5.xlarge (1x A10G) 1.006, g6.xlarge (1x L4) 0.8048, g4dn.xlarge (1x T4) 0.526 USD/h, each "
    "4 vCPU + 16 GiB, so the GPU share is the instance price minus 4 x 0.048: A10G 0.814, "
    "L4 0.6128, T4 0.334 USD per GPU-hour. RTX 3080 and any other GPU device: priced as the "
    "A10G (assumption: no cloud list price exists for it)."
)


class Prices(StrictModel):
    """Money per hour for what pods reserve (`kisim.core.prices`); defaults: AWS on demand."""

    currency: str = Field("USD", min_length=1, description="Currency of every price.")
    core_hour: NonNeg = Field(
        DEFAULT_CORE_HOUR, description="Price of one CPU core (vCPU) reserved for an hour."
    )
    memory_gib_hour: NonNeg = Field(
        0.0, description="Price of one GiB of memory reserved for an hour (0: in `core_hour`)."
    )
    gpu_hour: dict[str, NonNeg] = Field(
        default_factory=lambda: dict(DEFAULT_GPU_HOUR),
        description="Price of one GPU for an hour, by calibration device (its share of a "
        "one-GPU instance); merged over the defaults.",
    )
    other_gpu_hour: NonNeg = Field(
        DEFAULT_OTHER_GPU_HOUR, description="Price of one GPU-hour of a device not in `gpu_hour`."
    )
    provenance: str = Field(
        DEFAULT_PROVENANCE, min_length=1, description="Where the prices come from, and when."
    )

    @field_validator("gpu_hour", mode="after")
    @classmethod
    def _merged(cls, v: dict[str, float]) -> dict[str, float]:
        return {**DEFAULT_GPU_HOUR, **v}

    def gpu_price(self, device: str) -> float:
        """Price of one GPU-hour of `device`."""
        return float(self.gpu_hour.get(device, self.other_gpu_hour))

    def pod_hour(self, device: str, cpu: float, memory_gib: float, gpu: int) -> float:
        """Price of one pod-hour with these resources (GPUs of `device`)."""
        return (gpu * self.gpu_price(device) + cpu * self.core_hour
                + memory_gib * self.memory_gib_hour)


def pod_price_per_hour(sc: Scenario, pool: str) -> float:
    """Price of one pod-hour of `pool` with its template's resources."""
    cfg = sc.pools[pool]
    r = cfg.resources
    gpu = r.gpu if sc.pool_kind(pool) == "gpu" else 0
    return sc.prices.pod_hour(cfg.device, r.cpu, r.memory_gib, gpu)


def pool_rates(sc: Scenario) -> dict[str, float]:
    """Price of one pod-hour by pool, in `Scenario.pool_names` order."""
    return {p: pod_price_per_hour(sc, p) for p in sc.pool_names}


def cost_of(replica_s: Mapping[str, float], rates: Mapping[str, float]) -> dict[str, float]:
    """Money of the pod-seconds `replica_s` (by pool) at `rates` (per pod-hour)."""
    return {p: s * rates[p] / 3600.0 for p, s in replica_s.items()}
