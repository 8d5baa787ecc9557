"""The ``faults`` section of a scenario: a schedule of fault events, a randomisation for
training, and the upstream timings the twin applies them with (`twin.faults`).

Each event kind names what breaks; the timings Kubernetes and Prometheus then follow are
fields of `FaultsConfig` with their upstream defaults and sources. An empty section (the
default) is left out of the resolved config, so fault-free scenarios dump, fingerprint and
run exactly as before.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from kisim.core.devices import NonNeg, Pos, StrictModel

if TYPE_CHECKING:
    from kisim.core.config import Scenario

_RANDOM_SALT = 0x666C74  # "flt": keeps the fault draws apart from the twin's own streams


class _Event(StrictModel):
    at_s: NonNeg = Field(description="When the fault starts, simulated seconds.")
    duration_s: Pos | None = Field(None, description="How long it lasts; null = to the end.")

    def end(self, horizon: float) -> float:
        """When the fault ends (`horizon` when it lasts to the end of the run)."""
        return horizon if self.duration_s is None else min(self.at_s + self.duration_s, horizon)


class CrashLoop(_Event):
    """Containers of a pool crash; while the fault lasts every restart crashes again
    `crash_after_s` after it starts (a bad config, a poisoned model), so the kubelet's
    CrashLoopBackOff sets the pace. A short `duration_s` is a single crash and restart."""

    kind: Literal["crash_loop"]
    pool: str = Field(description="Pool whose pods crash.")
    pods: int = Field(1, ge=1, description="How many of its ready pods crash (oldest first).")
    crash_after_s: Pos = Field(5.0, description="A restarted container runs this long, then dies.")


class NodeLoss(_Event):
    """A node stops (kernel panic, power, partition): its kubelet stops renewing the node
    lease; the node controller marks it NotReady after `node_monitor_grace_period_s`, and
    its pods are evicted after the default toleration (`toleration_s`)."""

    kind: Literal["node_loss"]
    node: str = Field(description="Node name: its group's name, or '<group>-<i>' when count > 1.")


class GPULoss(_Event):
    """The device plugin marks a GPU unhealthy (an Xid error, fallen off the bus):
    allocatable nvidia.com/gpu drops and the pods on it crash until it is healthy again."""

    kind: Literal["gpu_loss"]
    node: str = Field(description="Node of the GPU.")
    gpu: int = Field(0, ge=0, description="Index of the GPU on the node.")


class ImagePull(_Event):
    """Image pulls of a pool's new pods fail (ErrImagePull -> ImagePullBackOff, retried with
    the kubelet's back-off) or are slow (`mode: slow`, `pull_delay_s` more per pull)."""

    kind: Literal["image_pull"]
    pool: str = Field(description="Pool whose new pods pull the image.")
    mode: Literal["fail", "slow"] = Field("fail", description="fail: ErrImagePull; slow: slow.")
    pull_delay_s: NonNeg = Field(60.0, description="Extra seconds per pull (mode: slow).")


class NoisyNeighbour(_Event):
    """Another tenant's work on a node takes CPU and memory bandwidth: service times of the
    replicas there are stretched by `slowdown` (batches started while it lasts)."""

    kind: Literal["noisy_neighbour"]
    node: str = Field(description="Node with the noisy neighbour.")
    slowdown: Annotated[float, Field(ge=1.0, allow_inf_nan=False)] = Field(
        1.5, description="Factor on service times (1 = none)."
    )


class ScrapeFailure(_Event):
    """Prometheus' scrapes of the pods' targets fail (network policy, a hung exporter): no
    samples, and the series are marked stale at the first failed scrape."""

    kind: Literal["scrape_failure"]
    pool: str | None = Field(None, description="Only this pool's pods; null = every target.")


class PrometheusDown(_Event):
    """Prometheus itself is down: nothing is scraped and no staleness marker is written, so
    gauges keep their last value for the 5-min lookback and rate() empties once fewer
    than two samples remain in its range."""

    kind: Literal["prometheus_down"]


class MetricsServerGap(_Event):
    """metrics-server returns no pod metrics (kubelet scrapes fail): the HPA's CPU metric
    is missing and it holds its replica count."""

    kind: Literal["metrics_server_gap"]
    pool: str | None = Field(None, description="Only this pool's pods; null = every pod.")


FaultEvent = Annotated[
    CrashLoop | NodeLoss | GPULoss | ImagePull | NoisyNeighbour | ScrapeFailure | PrometheusDown
    | MetricsServerGap,
    Field(discriminator="kind"),
]
FAULT_KINDS: tuple[str, ...] = ("crash_loop", "node_loss", "gpu_loss", "image_pull",
                                "noisy_neighbour", "scrape_failure", "prometheus_down",
                                "metrics_server_gap")  # fmt: skip
RANDOM_KINDS: tuple[str, ...] = ("crash_loop", "node_loss", "gpu_loss", "scrape_failure",
                                 "metrics_server_gap")  # fmt: skip


class FaultRandomization(StrictModel):
    """Random fault events per episode (for training): a Poisson number of events at
    uniform times, each of a kind drawn from `kinds` on a target drawn uniformly; a pure
    function of the episode's seed (`random_events`)."""

    per_hour: NonNeg = Field(0.0, description="Expected fault events per simulated hour.")
    kinds: list[Literal["crash_loop", "node_loss", "gpu_loss", "image_pull", "noisy_neighbour",
                        "scrape_failure", "prometheus_down", "metrics_server_gap"]] = Field(
        default_factory=lambda: list(RANDOM_KINDS), min_length=1,
        description="Kinds to draw from (uniformly).",
    )  # fmt: skip
    duration_s: tuple[Pos, Pos] = Field((60.0, 600.0), description="Duration range (uniform).")

    @model_validator(mode="after")
    def _range(self) -> FaultRandomization:
        if self.duration_s[0] > self.duration_s[1]:
            raise ValueError("duration_s: min is larger than max")
        return self


class FaultsConfig(StrictModel):
    """What breaks during a run (`events`, `random`), whether memory limits are enforced
    (`oom_kill`), and the upstream timings of the reactions."""

    events: list[FaultEvent] = Field(default_factory=list, description="Scheduled fault events.")
    random: FaultRandomization = Field(default_factory=FaultRandomization)
    oom_kill: bool = Field(
        False,
        description="The kernel OOM-kills a container whose working set (model + in-flight and "
        "queued batch items, calibration memory_*_gib) exceeds its memory limit; it restarts "
        "with the kubelet's back-off.",
    )
    oom_check_s: Pos = Field(1.0, description="How often the working set is checked, s.")
    # kubelet: pkg/kubelet/kubelet.go `backOffPeriod = 10 * time.Second`,
    # `MaxContainerBackOff = 300 * time.Second`; the back-off entry is forgotten when it was
    # last updated longer ago than 2 x max (client-go util/flowcontrol/backoff.go `hasExpired`),
    # i.e. after 10 min of running (docs: Pod Lifecycle, "Container restarts").
    backoff_initial_s: Pos = Field(10.0, description="First Crash/ImagePull back-off delay.")
    backoff_max_s: Pos = Field(300.0, description="Back-off cap (kubelet MaxContainerBackOff).")
    backoff_reset_s: Pos = Field(600.0, description="Running this long resets the back-off.")
    # kube-controller-manager --node-monitor-grace-period: 50 s since Kubernetes v1.32
    # (kubernetes/kubernetes PR #126287; 40 s before).
    node_monitor_grace_period_s: Pos = Field(50.0, description="Lease silence before NotReady.")
    # kube-apiserver DefaultTolerationSeconds admission plugin:
    # --default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds = 300.
    toleration_s: NonNeg = Field(300.0, description="NoExecute toleration before eviction.")

    @property
    def active(self) -> bool:
        """Whether anything can break: events, random events or OOM kills."""
        return bool(self.events) or self.random.per_hour > 0 or self.oom_kill

    def backoff(self, attempt: int) -> float:
        """Delay before restart `attempt` (1 = after the first failure): immediately, then
        10 s doubling to the cap (`flowcontrol.Backoff.Next` on every restart after the
        first; the first finds no entry and starts at once)."""
        if attempt <= 1:
            return 0.0
        return min(self.backoff_initial_s * 2.0 ** (attempt - 2), self.backoff_max_s)


def node_names(scenario: Scenario) -> list[str]:
    """Node names as `twin.scheduler.Scheduler` names them."""
    return list(_node_gpus(scenario))


def _node_gpus(scenario: Scenario) -> dict[str, int]:
    """Node name -> its GPUs, in `node_names` order."""
    out: dict[str, int] = {}
    for nc in scenario.cluster.nodes:
        names = [nc.name] if nc.count == 1 else [f"{nc.name}-{i}" for i in range(nc.count)]
        out |= {n: nc.gpus for n in names}
    return out


def check_faults(scenario: Scenario) -> None:
    """Raise ValueError naming `faults.events.<i>.<field>` when a pool, node or GPU is unknown."""
    nodes = _node_gpus(scenario)
    for i, ev in enumerate(scenario.faults.events):
        pool = getattr(ev, "pool", None)
        if pool is not None and pool not in scenario.pools:
            raise ValueError(f"faults.events.{i}.pool: '{pool}' is not a pool "
                             f"(pools: {', '.join(scenario.pools)})")  # fmt: skip
        node = getattr(ev, "node", None)
        if node is not None and node not in nodes:
            raise ValueError(f"faults.events.{i}.node: '{node}' is not a node "
                             f"(nodes: {', '.join(nodes)})")  # fmt: skip
        if isinstance(ev, GPULoss) and ev.gpu >= nodes[ev.node]:
            raise ValueError(f"faults.events.{i}.gpu: node '{ev.node}' has {nodes[ev.node]} GPU(s)")


def random_events(scenario: Scenario, seed: int) -> list[FaultEvent]:
    """The episode's random fault events: a pure function of the scenario and the seed."""
    rnd = scenario.faults.random
    if rnd.per_hour <= 0:
        return []
    rng = np.random.default_rng([_RANDOM_SALT, int(seed)])
    horizon = scenario.duration_s
    n = int(rng.poisson(rnd.per_hour * horizon / 3600.0))
    nodes = node_names(scenario)
    gpus = [(name, g) for name, count in _node_gpus(scenario).items() for g in range(count)]
    pools = list(scenario.pool_names)
    out: list[FaultEvent] = []
    for _ in range(n):
        at = float(rng.uniform(0.0, horizon))
        dur = float(rng.uniform(*rnd.duration_s))
        kind = rnd.kinds[int(rng.integers(len(rnd.kinds)))]
        pick_pool = pools[int(rng.integers(len(pools)))]
        pick_node = nodes[int(rng.integers(len(nodes)))]
        base = {"at_s": round(at, 3), "duration_s": round(dur, 3)}
        if kind == "crash_loop":
            out.append(CrashLoop(kind=kind, pool=pick_pool, **base))
        elif kind == "node_loss":
            out.append(NodeLoss(kind=kind, node=pick_node, **base))
        elif kind == "gpu_loss":
            if gpus:
                node, g = gpus[int(rng.integers(len(gpus)))]
                out.append(GPULoss(kind=kind, node=node, gpu=g, **base))
        elif kind == "image_pull":
            out.append(ImagePull(kind=kind, pool=pick_pool, **base))
        elif kind == "noisy_neighbour":
            out.append(NoisyNeighbour(kind=kind, node=pick_node, **base))
        elif kind == "scrape_failure":
            out.append(ScrapeFailure(kind=kind, **base))
        elif kind == "prometheus_down":
            out.append(PrometheusDown(kind=kind, **base))
        else:
            out.append(MetricsServerGap(kind=kind, **base))
    return sorted(out, key=lambda e: e.at_s)


def episode_events(scenario: Scenario, seed: int) -> list[FaultEvent]:
    """Scheduled plus random events of one episode, by start time (stable)."""
    return sorted([*scenario.faults.events, *random_events(scenario, seed)], key=lambda e: e.at_s)


def fault_spans(events: list[FaultEvent], horizon: float) -> list[tuple[float, float, str]]:
    """(start, end, kind) of every event within [0, horizon]."""
    return [(ev.at_s, ev.end(horizon), ev.kind) for ev in events if ev.at_s < horizon]


def in_fault(t0: float, t1: float, spans: list[tuple[float, float, str]]) -> bool:
    """Whether the window [t0, t1) overlaps a fault span."""
    return any(s < t1 and e > t0 for s, e, _ in spans)


def split_attainment(windows: list, spans: list[tuple[float, float, str]],
                     slo_ms: float) -> dict[str, float]:  # fmt: skip
    """SLO attainment (share of answered requests within the SLO, errors counting as misses)
    in the windows that overlap a fault and in the others; NaN where there are none."""
    acc = {True: [0, 0], False: [0, 0]}  # answered, within
    for w in windows:
        answered = w.served + w.errors
        a = acc[in_fault(w.t_start, w.t_end, spans)]
        a[0] += answered
        a[1] += answered - w.slo_violations  # violations = slow completions + errors
    share = {k: (v[1] / v[0] if v[0] else math.nan) for k, v in acc.items()}
    return {
        "slo_attainment_fault": share[True],
        "slo_attainment_nofault": share[False],
        "fault_s": float(sum(e - s for s, e, _ in spans)),
    }
