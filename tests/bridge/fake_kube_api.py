"""A FAKE Kubernetes API server for tests - not Kubernetes, and not a simulator of it.

No real API server can run where kisim's tests run, so ``bridge.kube.KubeActuator`` is
tested through the official client against this small stand-in on 127.0.0.1 (random
port). It implements only what the actuator calls, with the semantics the actuator
relies on:

- ``deployments/{name}/scale`` GET / PATCH (merge of ``spec.replicas``; a
  ``metadata.resourceVersion`` in the patch is a precondition -> 409 when stale);
- ``pods`` list with an equality ``labelSelector``; a crude ReplicaSet makes pods follow
  the replica count, each Ready ``ready_after_s`` after it is scheduled, and pods beyond
  ``capacity[deployment]`` stay Pending/Unschedulable;
- ``horizontalpodautoscalers`` (autoscaling/v2) list / create / get / replace / delete,
  409 on a stale resourceVersion or an existing name;
- any other namespace answers 403 (kisim's Role is namespaced).

Switches: ``inject(status, times, method, path)`` answers the next matching requests with
that status (0 = drop the connection without an answer); ``set_replicas`` plays another
writer (kubectl, an HPA). ``log`` records every request.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

WRITE_METHODS = ("PATCH", "POST", "PUT", "DELETE")


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Deployment:
    name: str
    replicas: int
    labels: dict[str, str]
    rv: int
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class _Pod:
    name: str
    owner: str
    labels: dict[str, str]
    created: float
    scheduled_at: float | None = None


@dataclass
class _Fault:
    status: int
    remaining: int
    method: str | None
    path: str | None


class FakeKubeAPI:
    """The fake server and its state; use as a context manager."""

    def __init__(self, namespace: str = "kisim", ready_after_s: float = 0.0) -> None:
        self.namespace = namespace
        self.ready_after_s = ready_after_s
        self.capacity: dict[str, int] = {}  # deployment -> pods the "scheduler" can place
        self.deployments: dict[str, _Deployment] = {}
        self.pods: dict[str, _Pod] = {}
        self.hpas: dict[str, dict[str, Any]] = {}
        self.log: list[tuple[str, str]] = []  # (method, path?query)
        self._faults: list[_Fault] = []
        self._rv = 1000
        self._seq = 0
        self.lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeKubeAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def write_kubeconfig(self, path: Path, context: str = "fake") -> Path:
        """A kubeconfig whose `context` points at this fake (token auth, plain HTTP)."""
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [
                {
                    "name": context,
                    "context": {"cluster": "fake", "user": "fake", "namespace": self.namespace},
                }
            ],
            "current-context": context,
        }
        path.write_text(json.dumps(cfg))  # JSON is YAML
        return path

    def add_deployment(self, name: str, replicas: int, labels: dict[str, str]) -> None:
        with self.lock:
            self.deployments[name] = _Deployment(name, replicas, dict(labels), self._next_rv())
            self._reconcile()
            for p in self.pods.values():  # pre-existing pods are long ready
                if p.owner == name and p.scheduled_at is not None:
                    p.scheduled_at = time.monotonic() - 1e6

    def set_replicas(self, name: str, n: int) -> None:
        """Another writer changes the Deployment (bumps its resourceVersion)."""
        with self.lock:
            d = self.deployments[name]
            d.replicas, d.rv = n, self._next_rv()

    def inject(
        self, status: int, times: int = 1, method: str | None = None, path: str | None = None
    ) -> None:
        """Answer the next `times` matching requests with `status` (0: drop connection)."""
        with self.lock:
            self._faults.append(_Fault(status, times, method, path))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.log if m in WRITE_METHODS]

    def counts(self, name: str) -> tuple[int, int]:
        """(ready, not ready) pods of deployment `name` now."""
        with self.lock:
            self._reconcile()
            mine = [p for p in self.pods.values() if p.owner == name]
            ready = sum(self._is_ready(p) for p in mine)
            return ready, len(mine) - ready

    # ------------------------------------------------------------------ model

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _is_ready(self, p: _Pod) -> bool:
        return (
            p.scheduled_at is not None and time.monotonic() >= p.scheduled_at + self.ready_after_s
        )

    def _reconcile(self) -> None:
        """A crude ReplicaSet + scheduler: pod count follows replicas; capacity caps binding."""
        now = time.monotonic()
        for d in self.deployments.values():
            mine = sorted(
                (p for p in self.pods.values() if p.owner == d.name), key=lambda p: p.created
            )
            while len(mine) < d.replicas:
                self._seq += 1
                pod = _Pod(
                    f"{d.name}-{self._seq:05d}", d.name, dict(d.labels), now + self._seq * 1e-9
                )
                self.pods[pod.name] = pod
                mine.append(pod)
            if len(mine) > d.replicas:  # like a ReplicaSet: not-ready first, then newest
                victims = sorted(mine, key=lambda p: (self._is_ready(p), -p.created))
                for p in victims[: len(mine) - d.replicas]:
                    del self.pods[p.name]
                mine = [p for p in mine if p.name in self.pods]
            cap = self.capacity.get(d.name, 1 << 30)
            bound = sum(p.scheduled_at is not None for p in mine)
            for p in mine:
                if p.scheduled_at is None and bound < cap:
                    p.scheduled_at, bound = now, bound + 1

    def pod_json(self, p: _Pod) -> dict[str, Any]:
        ready = self._is_ready(p)
        sched = p.scheduled_at is not None
        conds = [
            {
                "type": "PodScheduled",
                "status": "True" if sched else "False",
                **({} if sched else {"reason": "Unschedulable"}),
            },
            {"type": "Ready", "status": "True" if ready else "False"},
        ]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": p.name,
                "namespace": self.namespace,
                "labels": p.labels,
                "uid": f"uid-{p.name}",
                "creationTimestamp": _now_iso(),
            },
            "spec": {"containers": [{"name": "triton", "image": "fake"}]},
            "status": {"phase": "Running" if ready else "Pending", "conditions": conds},
        }

    def scale_json(self, d: _Deployment) -> dict[str, Any]:
        live = sum(p.owner == d.name for p in self.pods.values())
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                "name": d.name,
                "namespace": self.namespace,
                "resourceVersion": str(d.rv),
                "uid": d.uid,
            },
            "spec": {"replicas": d.replicas},
            "status": {
                "replicas": live,
                "selector": ",".join(f"{k}={v}" for k, v in sorted(d.labels.items())),
            },
        }

    def take_fault(self, method: str, path: str) -> int | None:
        with self.lock:
            for f in self._faults:
                if (
                    f.remaining > 0
                    and f.method in (None, method)
                    and (f.path is None or f.path in path)
                ):
                    f.remaining -= 1
                    return f.status
        return None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        else:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
    return True


def _handler_for(api: FakeKubeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: simple and robust

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _send(self, code: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}") if n else {}

        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            api.log.append((method, self.path))
            fault = api.take_fault(method, parts.path)
            if fault == 0:
                self.close_connection = True
                return  # no answer at all: the client sees a dropped connection
            if fault is not None:
                reason = {409: "Conflict", 429: "TooManyRequests"}.get(fault, "InternalError")
                self._send(fault, _status(fault, reason, f"injected {fault}"))
                return
            with api.lock:
                api._reconcile()
                code, obj = _route(api, method, parts.path, parse_qs(parts.query), self._body)
                self._send(code, obj)

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_PATCH(self) -> None:  # noqa: N802
            self._handle("PATCH")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_PUT(self) -> None:  # noqa: N802
            self._handle("PUT")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle("DELETE")

    return Handler


def _route(
    api: FakeKubeAPI, method: str, path: str, query: dict[str, list[str]], body: Any
) -> tuple[int, dict[str, Any]]:
    seg = path.strip("/").split("/")
    # /api/v1/namespaces/{ns}/pods  |  /apis/{group}/{ver}/namespaces/{ns}/{res}[/{name}[/scale]]
    try:
        i = seg.index("namespaces")
    except ValueError:
        return 404, _status(404, "NotFound", f"fake API does not serve {path}")
    ns, rest = seg[i + 1], seg[i + 2 :]
    if ns != api.namespace:
        return 403, _status(403, "Forbidden", f"namespace {ns} is forbidden")
    group = "/".join(seg[1:i])
    if group == "v1" and rest == ["pods"] and method == "GET":
        sel = query.get("labelSelector", [""])[0]
        items = [api.pod_json(p) for p in api.pods.values() if _selector_matches(sel, p.labels)]
        return 200, {
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": {"resourceVersion": str(api._rv)},
            "items": items,
        }
    if group == "apps/v1" and len(rest) == 3 and rest[0] == "deployments" and rest[2] == "scale":
        d = api.deployments.get(rest[1])
        if d is None:
            return 404, _status(404, "NotFound", f'deployments.apps "{rest[1]}" not found')
        if method == "GET":
            return 200, api.scale_json(d)
        if method == "PATCH":
            patch = body()
            rv = (patch.get("metadata") or {}).get("resourceVersion")
            if rv is not None and rv != str(d.rv):
                return 409, _status(409, "Conflict", "the object has been modified")
            if "replicas" in (patch.get("spec") or {}):
                d.replicas, d.rv = int(patch["spec"]["replicas"]), api._next_rv()
                api._reconcile()
            return 200, api.scale_json(d)
    if group == "autoscaling/v2" and rest and rest[0] == "horizontalpodautoscalers":
        return _route_hpa(api, method, rest[1] if len(rest) > 1 else None, body)
    return 404, _status(404, "NotFound", f"fake API does not serve {method} {path}")


def _route_hpa(
    api: FakeKubeAPI, method: str, name: str | None, body: Any
) -> tuple[int, dict[str, Any]]:
    if name is None and method == "GET":
        return 200, {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscalerList",
            "metadata": {},
            "items": list(api.hpas.values()),
        }
    if name is None and method == "POST":
        obj = body()
        name = obj["metadata"]["name"]
        if name in api.hpas:
            return 409, _status(409, "AlreadyExists", f"{name} already exists")
        obj["metadata"].update(
            namespace=api.namespace,
            uid=str(uuid.uuid4()),
            resourceVersion=str(api._next_rv()),
            creationTimestamp=_now_iso(),
        )
        api.hpas[name] = obj
        return 201, obj
    if name is None:
        return 405, _status(405, "MethodNotAllowed", method)
    cur = api.hpas.get(name)
    if cur is None:
        return 404, _status(404, "NotFound", f'horizontalpodautoscalers "{name}" not found')
    if method == "GET":
        return 200, cur
    if method == "PUT":
        obj = body()
        if obj.get("metadata", {}).get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            return 409, _status(409, "Conflict", "the object has been modified")
        obj["metadata"].update(
            uid=cur["metadata"]["uid"],
            namespace=api.namespace,
            resourceVersion=str(api._next_rv()),
            creationTimestamp=cur["metadata"]["creationTimestamp"],
        )
        api.hpas[name] = obj
        return 200, obj
    if method == "DELETE":
        del api.hpas[name]
        return 200, {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Success",
            "details": {"name": name, "kind": "horizontalpodautoscalers"},
        }
    return 405, _status(405, "MethodNotAllowed", method)
