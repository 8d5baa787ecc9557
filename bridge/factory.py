"""Which real backend a command asked for: ``local`` (this machine) or ``kubernetes``.

One place builds a `ClusterBackend` from a command's flags, so `kisim eval --real`,
`kisim train --real` and `kisim record` drive the same stack the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from bridge.backend import ClusterBackend
from bridge.kube_settings import KubeSettings
from kisim.core.errors import KisimError

BackendKind = Literal["local", "kubernetes"]
BACKENDS: tuple[BackendKind, ...] = ("local", "kubernetes")


def check_kind(kind: str, kube: KubeSettings | None, prometheus_url: str | None) -> None:
    """Flags that do not fit the backend end the command before anything starts."""
    if kind not in BACKENDS:
        raise KisimError(f"--backend {kind}: expected local or kubernetes")
    if kind == "local" and (kube is not None or prometheus_url):
        raise KisimError("--kubeconfig/--context/--namespace/--prometheus-url/--dry-run "
                         "need --backend kubernetes")  # fmt: skip


def make_backend(kind: str, workdir: Path | None = None, kube: KubeSettings | None = None,
                 prometheus_url: str | None = None) -> ClusterBackend:  # fmt: skip
    """A real backend; `workdir` keeps logs and request records (None: temporary)."""
    if kind == "local":
        from bridge.backend import make_local_backend

        return make_local_backend(workdir)
    if kind != "kubernetes":
        raise KisimError(f"backend '{kind}': expected local or kubernetes")
    from bridge.kube import KubeActuator
    from bridge.local import MODEL_NAME

    if prometheus_url is None:
        raise KisimError("--backend kubernetes needs --prometheus-url (the cluster's Prometheus)")
    actuator = KubeActuator(kube or KubeSettings())
    try:
        return ClusterBackend(actuator, prometheus_url=prometheus_url,
                              workdir=workdir / "run" if workdir else None,
                              model_name=MODEL_NAME)  # fmt: skip
    except BaseException:
        actuator.close()
        raise
