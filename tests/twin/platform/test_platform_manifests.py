"""manifests/platform/: Kubernetes objects validate against the API schemas (kubernetes-validate,
offline); the Argo WorkflowTemplate validates against a vendored, hand-written minimal schema
(tests/data/platform/, named as such) with its containers checked as Kubernetes containers;
and the manifests agree with the platform scenario the twin runs."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate.utils")
jsonschema = pytest.importorskip("jsonschema")

from kisim.core.config import Scenario, load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
MAN = ROOT / "manifests" / "platform"
SCHEMA = ROOT / "tests" / "data" / "platform" / "argo-workflowtemplate.min.schema.json"
SCENARIO = ROOT / "configs" / "scenarios" / "platform" / "mixed-platform.yaml"
VERSIONS = ("1.31.0", kv.latest_version())
CRDS = {"WorkflowTemplate"}


def objects() -> list[dict[str, Any]]:
    return [d for p in sorted(MAN.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def one(kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects() if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.fixture(scope="module")
def sc() -> Scenario:
    return load_scenario(SCENARIO)


def validate_wft(doc: dict[str, Any]) -> None:
    """The WorkflowTemplate against the minimal schema, each container as a Pod's."""
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    for t in doc["spec"]["templates"]:
        if "container" not in t:
            continue
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": t["name"]},
               "spec": {"containers": [{"name": "main", **t["container"]}],
                        **{k: t[k] for k in ("nodeSelector", "tolerations") if k in t}}}
        for v in VERSIONS:
            kv.validate(pod, v, strict=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_kubernetes_objects_validate(version: str) -> None:
    kinds = set()
    for o in objects():
        if o["kind"] in CRDS:
            continue
        kinds.add(o["kind"])
        kv.validate(o, version, strict=True)
    assert {"PriorityClass", "ResourceQuota", "Deployment", "ConfigMap", "Namespace"} <= kinds


def test_workflow_template_validates_and_the_check_can_fail() -> None:
    doc = one("WorkflowTemplate", "recon3d")
    validate_wft(doc)
    bad = copy.deepcopy(doc)
    bad["spec"]["templates"][0]["dag"]["tasks"][0]["dependecies"] = ["x"]  # misspelt key
    with pytest.raises(jsonschema.ValidationError):
        validate_wft(bad)
    bad2 = copy.deepcopy(doc)
    bad2["spec"]["templates"][1]["container"]["resources"]["requests"]["cpu"] = {"n": 1}
    with pytest.raises(kv.ValidationError):
        validate_wft(bad2)


def _cpu(q: str) -> float:
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


def test_workflow_template_is_the_twins_dag(sc: Scenario) -> None:
    """Same steps, dependencies, conditions, requests and retry back-off as the twin runs."""
    assert sc.platform is not None
    wf = sc.platform.workflows["recon3d"]
    doc = one("WorkflowTemplate", "recon3d")
    templates = {t["name"]: t for t in doc["spec"]["templates"]}
    tasks = {t["name"]: t for t in templates["pipeline"]["dag"]["tasks"]}
    assert list(tasks) == [s.name for s in wf.steps]
    assert doc["spec"]["podPriorityClassName"] == wf.priority_class
    for s in wf.steps:
        task = tasks[s.name]
        assert task.get("dependencies", []) == s.depends, s.name
        when = task.get("when")
        if s.when is None:
            assert when is None
        else:
            assert when is not None
            assert re.findall(r"== (\w+)", when) == s.when, s.name
        t = templates[task["template"]]
        req = t["container"]["resources"]["requests"]
        assert _cpu(req["cpu"]) == s.cpu and req["memory"] == f"{s.memory_gib:g}Gi", s.name
        assert int(req.get("nvidia.com/gpu", 0)) == s.gpu, s.name
        assert ("memoize" in t) == s.cacheable, s.name
        if "retryStrategy" in t:
            b = t["retryStrategy"]["backoff"]
            assert int(t["retryStrategy"]["limit"]) == s.retry.limit
            assert b["duration"] == f"{s.retry.backoff_s:g}s"
            assert float(b["factor"]) == s.retry.factor
    assert any(s.assesses_quality for s in wf.steps if s.name == "assess")


def test_priority_classes_match_the_twin(sc: Scenario) -> None:
    """Four classes; values and preemption policies as the twin's (system-critical is named
    platform-system-critical: the system- prefix is reserved)."""
    assert sc.platform is not None
    pcs = {o["metadata"]["name"]: o for o in objects() if o["kind"] == "PriorityClass"}
    for name, spec in sc.platform.priority_classes.items():
        o = pcs["platform-system-critical" if name == "system-critical" else name]
        assert o["value"] == spec.value
        assert o.get("preemptionPolicy", "PreemptLowerPriority") == spec.preemption_policy
        assert o["value"] <= 1_000_000_000  # the user-class maximum


def test_quotas_autoscaler_and_sharing_match_the_twin(sc: Scenario) -> None:
    p = sc.platform
    assert p is not None
    for t, ts in p.tenants.items():
        q = next(o for o in objects() if o["kind"] == "ResourceQuota"
                 and o["metadata"]["namespace"] == f"tenant-{t}")  # fmt: skip
        ann = q["metadata"]["annotations"]
        assert float(ann["kisim.io/guaranteed-cpu"]) == ts.quota_cpu
        assert float(ann["kisim.io/guaranteed-gpu"]) == ts.quota_gpu
    args = one("Deployment", "cluster-autoscaler")["spec"]["template"]["spec"]["containers"][0][
        "command"]
    flags = dict(a.removeprefix("--").split("=", 1) for a in args if a.startswith("--")
                 and not a.startswith("--nodes="))  # fmt: skip
    nodes = [a.removeprefix("--nodes=") for a in args if a.startswith("--nodes=")]
    a = p.autoscaler
    assert flags["expander"] == a.expander
    assert flags["scan-interval"] == f"{a.scan_interval_s:g}s"
    assert float(flags["scale-down-utilization-threshold"]) == a.scale_down_utilization_threshold
    assert flags["scale-down-unneeded-time"] == f"{a.scale_down_unneeded_time_s / 60:g}m"
    assert flags["scale-down-delay-after-add"] == f"{a.scale_down_delay_after_add_s / 60:g}m"
    assert sorted(nodes) == sorted(f"{s.min_nodes}:{s.max_nodes}:platform-{n}"
                                   for n, s in p.node_pools.items())  # fmt: skip
    cm = one("ConfigMap", "platform-gpu-sharing")["data"]
    ts_cfg = yaml.safe_load(cm["inference-time-sliced-2"])["sharing"]["timeSlicing"]
    assert ts_cfg["resources"][0]["replicas"] == p.node_pools["gpu"].sharing.replicas
    assert p.node_pools["gpu"].sharing.mode == "time-slicing"
