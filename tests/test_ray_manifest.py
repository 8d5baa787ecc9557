"""manifests/ray/raycluster.yaml: the KubeRay RayCluster of docs/ray.md. Its pod templates
validate as Kubernetes Pods (offline schemas, `kubernetes-validate`), and it agrees with the
ray extra, the Dockerfile and what kisim's Ray executor expects (one CPU per worker pod, the
head's GCS port)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate.utils")

ROOT = Path(__file__).resolve().parents[1]
RAY = ROOT / "manifests" / "ray"
VERSIONS = ("1.31.0", kv.latest_version())


def cluster() -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all((RAY / "raycluster.yaml").read_text()) if d]
    assert isinstance(doc, dict)
    return doc


def templates() -> list[tuple[str, dict[str, Any]]]:
    spec = cluster()["spec"]
    return [("head", spec["headGroupSpec"]["template"]),
            *[(g["groupName"], g["template"]) for g in spec["workerGroupSpecs"]]]  # fmt: skip


@pytest.mark.parametrize("version", VERSIONS)
def test_pod_templates_validate_as_pods(version: str) -> None:
    for name, tpl in templates():
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"kisim-ray-{name}", "namespace": "kisim",
                            **tpl.get("metadata", {})},
               "spec": tpl["spec"]}  # fmt: skip
        try:
            kv.validate(pod, version, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{name}: {e}")


def test_cluster_matches_the_ray_extra_and_the_image() -> None:
    c = cluster()
    assert (c["apiVersion"], c["kind"]) == ("ray.io/v1", "RayCluster")
    assert c["metadata"]["namespace"] == "kisim"
    pin = re.search(r'"ray\[[^\]]*\]==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pin and c["spec"]["rayVersion"] == pin.group(1)
    docker = (RAY / "Dockerfile").read_text()
    assert f"rayproject/ray:{pin.group(1)}-py311" in docker
    images = {ct["image"] for _, t in templates() for ct in t["spec"]["containers"]}
    assert len(images) == 1 and images.pop() in docker  # the build command's tag


def test_workers_take_one_run_each_and_the_head_none() -> None:
    spec = cluster()["spec"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    head_ports = {p["containerPort"] for p in
                  spec["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]}
    assert 6379 in head_ports  # kisim --ray HEAD:6379 (docs/ray.md)
    for g in spec["workerGroupSpecs"]:
        assert g["rayStartParams"]["num-cpus"] == "1"
        assert 1 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        (ct,) = g["template"]["spec"]["containers"]
        assert ct["resources"]["requests"]["cpu"] == ct["resources"]["limits"]["cpu"] == "1"
