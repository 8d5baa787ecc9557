"""`KubeActuator`: the `Actuator` protocol on a real cluster, through the Kubernetes API.

A real cluster is someone's cluster, so this class is careful first:
- replicas are set only through each Deployment's ``scale`` subresource, always clamped
  to the scenario's pool bounds, with the read ``resourceVersion`` as a precondition
  (a 409 means someone else wrote in between: re-read, decide again);
- the replica counts found at the first ``start()`` are restored, and every HPA kisim
  created is deleted, on ``close()`` (also as a context manager, on error or Ctrl-C);
- it refuses to run while a foreign HPA scales the same Deployment;
- ``dry_run`` reads the cluster, prints each change it would make, and writes nothing;
- transient API errors are retried with backoff, then end in one ``BackendError`` line
  naming the API address (``bridge.kube_api``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bridge.actuator import PoolState
from bridge.kube_api import KubeCaller, make_api_client
from bridge.kube_objects import MANAGED_BY, PodCounts, count_pods, hpa_body
from bridge.kube_settings import KubeSettings
from kisim.core.config import HPAConfig, PoolConfig, Scenario
from kisim.core.errors import BackendError

log = logging.getLogger(__name__)

_K8S_HPA_FLAGS = {  # HPAConfig field -> kube-controller-manager default (not per object)
    "tolerance": 0.1,
    "sync_period_s": 15.0,
    "cpu_initialization_period_s": 300.0,
    "initial_readiness_delay_s": 30.0,
}


@dataclass(frozen=True, slots=True)
class Change:
    """One write kisim made (applied) or, in dry-run mode, would have made."""

    verb: str  # scale | create | update | delete
    target: str  # e.g. "deployments/triton-gpu/scale"
    detail: str  # e.g. "replicas 2 -> 1"
    applied: bool


class KubeActuator:
    """Scales the scenario's pools' Deployments and manages kisim's HPAs (see module doc)."""

    def __init__(
        self,
        settings: KubeSettings | None = None,
        *,
        api_client: client.ApiClient | None = None,
        echo: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.s = settings or KubeSettings()
        api = api_client or make_api_client(self.s)
        self._api = KubeCaller(api, self.s, sleep)
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)
        self._autoscaling = client.AutoscalingV2Api(api)
        self._echo = echo or (lambda msg: print(msg, file=sys.stderr))
        self._sleep = sleep
        self.changes: list[Change] = []
        self._scenario: Scenario | None = None
        self._original: dict[str, int] = {}  # pool -> replicas found before kisim's first write
        self._selector: dict[str, str] = {}  # pool -> the Deployment's pod label selector
        self._planned: dict[str, int] = {}  # dry-run: pool -> replicas kisim would have set
        self._hpas: dict[str, str] = {}  # pool -> HPA kisim created (or would have, dry-run)

    @property
    def host(self) -> str:
        """The API server address, as named in error messages."""
        return self._api.host

    # ------------------------------------------------------------------ Actuator protocol

    def start(self, scenario: Scenario) -> None:
        """Remember original replicas, clear kisim's HPAs, set the scenario's initial replicas."""
        self._scenario = scenario
        for pool in scenario.pools:
            scale = self._read_scale(pool)
            if pool not in self._original:  # first start only: later episodes keep it
                self._original[pool] = (scale.spec.replicas or 0) if scale.spec else 0
            selector = scale.status.selector if scale.status else None
            if not selector:
                raise BackendError(
                    f"Kubernetes API {self.host}: deployment {self._deployment(pool)} "
                    "reports no pod selector"
                )
            self._selector[pool] = selector
        self._clear_hpas(scenario)
        for pool, cfg in scenario.pools.items():
            self._scale_to(pool, cfg.replicas)
        if scenario.controller.name == "hpa":
            self._warn_controller_flags(scenario.controller.hpa)
        if self.s.ready_timeout_s > 0 and not self.s.dry_run:
            self.wait_ready(timeout_s=self.s.ready_timeout_s)

    def set_replicas(self, pool: str, n: int) -> int:
        """Ask for `n` replicas, clamped to the pool's bounds; returns what was set."""
        cfg = self._pool_cfg(pool)
        want = min(max(n, cfg.min_replicas), cfg.max_replicas)
        if want != n:
            log.info(
                "%s: %d replicas clamped to %d (bounds %d..%d)",
                pool,
                n,
                want,
                cfg.min_replicas,
                cfg.max_replicas,
            )
        if pool in self._hpas:
            raise BackendError(
                f"pool {pool}: replicas are managed by HorizontalPodAutoscaler "
                f"{self._hpas[pool]}; remove it (set_hpa({pool!r}, None)) before scaling"
            )
        self._scale_to(pool, want)
        return want

    def state(self, pool: str) -> PoolState:
        """Desired replicas (scale spec) and ready / pending pods (the pod list)."""
        desired = self._desired(pool)
        c = self.pods(pool)
        return PoolState(desired=desired, ready=c.ready, pending=c.pending)

    def pool_url(self, pool: str) -> str | None:
        """The pool's Triton HTTP URL as the host sees it; None if the scenario lacks it."""
        if self._scenario is None or pool not in self._scenario.pools:
            return None
        return self.s.pool_urls.get(pool)  # type: ignore[call-overload]

    def set_hpa(self, pool: str, target_cpu_utilization: float | None) -> None:
        """Create or update kisim's autoscaling/v2 HPA for `pool`; None deletes it."""
        cfg = self._pool_cfg(pool)
        name = self._hpa_name(pool)
        if target_cpu_utilization is None:
            self._delete_hpa(pool, name)
            return
        if not 0 < target_cpu_utilization <= 1:
            raise BackendError(f"pool {pool}: HPA target {target_cpu_utilization} is not in (0, 1]")
        assert self._scenario is not None
        body = hpa_body(
            name,
            self.s.namespace,
            self._deployment(pool),
            pool,
            cfg,
            self._scenario.controller.hpa,
            target_cpu_utilization,
        )
        self._put_hpa(pool, name, body)

    def close(self) -> None:
        """Delete kisim's HPAs and restore the original replica counts; safe to repeat."""
        errors: list[str] = []
        for pool, name in list(self._hpas.items()):
            try:
                self._delete_hpa(pool, name)
            except BackendError as e:
                errors.append(str(e))
        for pool, n in list(self._original.items()):
            try:
                self._scale_to(pool, n)
                del self._original[pool]
            except BackendError as e:
                errors.append(str(e))
        self._planned.clear()
        self._scenario = None
        if errors:
            raise BackendError("; ".join(errors))

    def __enter__(self) -> KubeActuator:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ extra read-outs

    def pods(self, pool: str) -> PodCounts:
        """Ready / starting / unschedulable pods of the pool's Deployment."""
        self._pool_cfg(pool)
        pods = self._api.call(
            f"GET pods -l {self._selector[pool]} in namespace {self.s.namespace}",
            self._core.list_namespaced_pod,
            self.s.namespace,
            label_selector=self._selector[pool],
        )
        return count_pods(list(pods.items or []))

    def wait_ready(
        self, timeout_s: float | None = None, pools: Iterable[str] | None = None
    ) -> dict[str, PoolState]:
        """Poll until every pool has ready == desired and nothing pending."""
        assert self._scenario is not None, "start() first"
        names = list(pools) if pools is not None else list(self._scenario.pools)
        limit = self.s.ready_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        while True:
            states = {p: self.state(p) for p in names}
            if all(st.ready == st.desired and st.pending == 0 for st in states.values()):
                return states
            left = deadline - time.monotonic()
            if left <= 0:
                got = ", ".join(
                    f"{p} {st.ready}/{st.desired} ready, {st.pending} pending"
                    for p, st in states.items()
                )
                raise BackendError(
                    f"Kubernetes API {self.host}: pods not ready after {limit:g} s: {got} "
                    f"(kubectl -n {self.s.namespace} get pods)"
                )
            self._sleep(min(self.s.poll_interval_s, left))

    # ------------------------------------------------------------------ internals

    def _pool_cfg(self, pool: str) -> PoolConfig:
        if self._scenario is None:
            raise BackendError("the Kubernetes actuator is not started (call start(scenario))")
        cfg = self._scenario.pools.get(pool)  # type: ignore[call-overload]
        if cfg is None:
            raise BackendError(f"pool '{pool}' is not in scenario '{self._scenario.name}'")
        return cfg  # type: ignore[no-any-return]

    def _deployment(self, pool: str) -> str:
        name = self.s.deployments.get(pool)  # type: ignore[call-overload]
        if not name:
            raise BackendError(f"no deployment configured for pool '{pool}' (deployments.{pool})")
        return name  # type: ignore[no-any-return]

    def _hpa_name(self, pool: str) -> str:
        return f"{self.s.hpa_prefix}{self._deployment(pool)}"

    def _read_scale(self, pool: str) -> Any:
        name = self._deployment(pool)
        return self._api.call(
            f"GET deployments/{name}/scale in namespace {self.s.namespace}",
            self._apps.read_namespaced_deployment_scale,
            name,
            self.s.namespace,
        )

    def _desired(self, pool: str) -> int:
        if self.s.dry_run and pool in self._planned:
            return self._planned[pool]
        scale = self._read_scale(pool)
        return int(scale.spec.replicas or 0) if scale.spec else 0

    def _record(self, change: Change) -> None:
        self.changes.append(change)
        if change.applied:
            log.info("kubernetes: %s %s: %s", change.verb, change.target, change.detail)
        else:
            self._echo(
                f"[dry-run] would {change.verb} {change.target} in namespace "
                f"{self.s.namespace}: {change.detail}"
            )

    def _scale_to(self, pool: str, n: int) -> None:
        """Set the scale subresource to `n`, re-reading and retrying on 409 Conflict."""
        name = self._deployment(pool)
        what = f"PATCH deployments/{name}/scale in namespace {self.s.namespace}"
        for _ in range(self.s.conflict_retries + 1):
            scale = self._read_scale(pool)
            current = int(scale.spec.replicas or 0) if scale.spec else 0
            if self.s.dry_run:
                current = self._planned.get(pool, current)
                if current != n:
                    self._planned[pool] = n
                    self._record(
                        Change(
                            "scale",
                            f"deployments/{name}/scale",
                            f"replicas {current} -> {n}",
                            applied=False,
                        )
                    )
                return
            if current == n:
                return
            body = {
                "metadata": {"resourceVersion": scale.metadata.resource_version},
                "spec": {"replicas": n},
            }
            try:
                self._api.call(
                    what,
                    self._apps.patch_namespaced_deployment_scale,
                    name,
                    self.s.namespace,
                    body,
                    expect=(409,),
                )
            except ApiException:
                log.info("%s: 409 Conflict, re-reading", what)
                continue
            self._record(
                Change(
                    "scale", f"deployments/{name}/scale", f"replicas {current} -> {n}", applied=True
                )
            )
            return
        raise BackendError(
            f"Kubernetes API {self.host}: {what}: still 409 Conflict after "
            f"{self.s.conflict_retries + 1} attempts (another controller "
            "keeps changing it?)"
        )

    def _read_hpa(self, name: str) -> Any | None:
        try:
            return self._api.call(
                f"GET horizontalpodautoscalers/{name} in namespace {self.s.namespace}",
                self._autoscaling.read_namespaced_horizontal_pod_autoscaler,
                name,
                self.s.namespace,
                expect=(404,),
            )
        except ApiException:
            return None

    def _put_hpa(self, pool: str, name: str, body: dict[str, Any]) -> None:
        """Create, or replace at the read resourceVersion; re-read on 409."""
        target = f"horizontalpodautoscalers/{name}"
        detail = (
            f"{body['spec']['scaleTargetRef']['name']} cpu "
            f"{body['spec']['metrics'][0]['resource']['target']['averageUtilization']}% "
            f"replicas {body['spec']['minReplicas']}..{body['spec']['maxReplicas']}"
        )
        for _ in range(self.s.conflict_retries + 1):
            existing = self._read_hpa(name)
            if self.s.dry_run:
                verb = "create" if existing is None and pool not in self._hpas else "update"
                self._hpas[pool] = name
                self._record(Change(verb, target, detail, applied=False))
                return
            try:
                if existing is None:
                    self._api.call(
                        f"POST {target} in namespace {self.s.namespace}",
                        self._autoscaling.create_namespaced_horizontal_pod_autoscaler,
                        self.s.namespace,
                        client.V2HorizontalPodAutoscaler.from_dict(body),
                        expect=(409,),
                    )
                    verb = "create"
                else:
                    labels = (existing.metadata.labels or {}) if existing.metadata else {}
                    if labels.get("app.kubernetes.io/managed-by") != "kisim":
                        raise BackendError(
                            self._foreign_msg(name, body["spec"]["scaleTargetRef"]["name"])
                        )
                    body = {
                        **body,
                        "metadata": {
                            **body["metadata"],
                            "resourceVersion": existing.metadata.resource_version,
                        },
                    }
                    self._api.call(
                        f"PUT {target} in namespace {self.s.namespace}",
                        self._autoscaling.replace_namespaced_horizontal_pod_autoscaler,
                        name,
                        self.s.namespace,
                        client.V2HorizontalPodAutoscaler.from_dict(body),
                        expect=(409,),
                    )
                    verb = "update"
            except ApiException:
                log.info("%s: 409 Conflict, re-reading", target)
                continue
            self._hpas[pool] = name
            self._record(Change(verb, target, detail, applied=True))
            return
        raise BackendError(
            f"Kubernetes API {self.host}: write {target}: still 409 Conflict "
            f"after {self.s.conflict_retries + 1} attempts"
        )

    def _delete_hpa(self, pool: str, name: str) -> None:
        target = f"horizontalpodautoscalers/{name}"
        if self.s.dry_run:
            if pool in self._hpas or self._read_hpa(name) is not None:
                self._record(Change("delete", target, "kisim's HPA", applied=False))
            self._hpas.pop(pool, None)
            return
        try:
            self._api.call(
                f"DELETE {target} in namespace {self.s.namespace}",
                self._autoscaling.delete_namespaced_horizontal_pod_autoscaler,
                name,
                self.s.namespace,
                expect=(404,),
            )
            self._record(Change("delete", target, "kisim's HPA", applied=True))
        except ApiException:
            pass  # already gone: the goal state
        self._hpas.pop(pool, None)

    def _foreign_msg(self, hpa: str, deployment: str) -> str:
        ns = self.s.namespace
        return (
            f"HorizontalPodAutoscaler {hpa} in namespace {ns} already scales deployment "
            f"{deployment}; two controllers must not set the same replicas - delete it "
            f"(kubectl -n {ns} delete hpa {hpa}) and run again"
        )

    def _clear_hpas(self, scenario: Scenario) -> None:
        """Refuse foreign HPAs on our Deployments; delete kisim's leftovers (crash, episode)."""
        ours = {self._deployment(p): p for p in scenario.pools}
        hpas = self._api.call(
            f"GET horizontalpodautoscalers in namespace {self.s.namespace}",
            self._autoscaling.list_namespaced_horizontal_pod_autoscaler,
            self.s.namespace,
        )
        for h in hpas.items or []:
            ref = h.spec.scale_target_ref if h.spec else None
            if ref is None or ref.kind != "Deployment" or ref.name not in ours:
                continue
            labels = (h.metadata.labels or {}) if h.metadata else {}
            if any(labels.get(k) != v for k, v in MANAGED_BY.items()):
                raise BackendError(self._foreign_msg(h.metadata.name, ref.name))
            pool = ours[ref.name]
            if pool not in self._hpas:
                log.warning("deleting HPA %s left over by an earlier kisim run", h.metadata.name)
            self._delete_hpa(pool, h.metadata.name)

    def _warn_controller_flags(self, hpa: HPAConfig) -> None:
        for field, default in _K8S_HPA_FLAGS.items():
            if getattr(hpa, field) != default:
                log.warning(
                    "controller.hpa.%s=%s has no effect on a real cluster: it is a "
                    "kube-controller-manager flag (default %s)",
                    field,
                    getattr(hpa, field),
                    default,
                )
