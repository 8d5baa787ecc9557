"""manifests/: every Kubernetes object validates against the API schemas, offline, and the
pieces agree with each other and with the default scenario (names, ports, bounds, batching).

Helm values and the Kind config are not Kubernetes objects: they are checked as YAML
with the keys kisim depends on. `kubernetes-validate` ships the schemas; no cluster needed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

kv = pytest.importorskip("kubernetes_validate.utils")

from kisim.core.config import Scenario, load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAN = ROOT / "manifests"
# values files, the Kind config; and the platform's objects (cluster-scoped, other namespaces,
# an Argo CRD), validated by tests/twin/platform/test_platform_manifests.py; the KubeRay
# RayCluster (a CRD), validated by tests/test_ray_manifest.py
NOT_OBJECTS = ("helm", "kind", "platform", "ray")
# The oldest Kubernetes we claim (a recent kind node image) and the newest schemas shipped.
VERSIONS = ("1.31.0", kv.latest_version())
OBJECT_FILES = sorted(
    p for p in MAN.rglob("*.yaml") if p.relative_to(MAN).parts[0] not in NOT_OBJECTS
)


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def objects() -> list[dict[str, Any]]:
    return [d for p in OBJECT_FILES for d in docs(p)]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects() if o["kind"] == kind}


def values(name: str) -> dict[str, Any]:
    data = yaml.safe_load((MAN / "helm" / name).read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load_scenario(ROOT / "configs/scenarios/default.yaml")


# ---------------------------------------------------------------- schema validation


def test_there_are_manifests() -> None:
    kinds = {o["kind"] for o in objects()}
    assert {
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    } <= kinds


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", OBJECT_FILES, ids=lambda p: str(p.relative_to(MAN)))
def test_manifest_validates(path: Path, version: str) -> None:
    for doc in docs(path):
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            where = ".".join(str(x) for x in e.path)
            pytest.fail(
                f"{path.relative_to(ROOT)}: {doc['kind']}/{doc['metadata']['name']}: "
                f"{where}: {e.message}"
            )


def test_objects_kisim_creates_validate(scenario: Scenario) -> None:
    from bridge.kube_objects import hpa_body

    for pool, cfg in scenario.pools.items():
        body = hpa_body(
            f"kisim-triton-{pool}",
            "kisim",
            f"triton-{pool}",
            pool,
            cfg,
            scenario.controller.hpa,
            0.6,
        )
        for version in VERSIONS:
            kv.validate(body, version, strict=True)


def test_names_unique_and_namespaced() -> None:
    seen: set[tuple[str, str, str]] = set()
    for o in objects():
        key = (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") in ("kisim", "gpu-operator"), key


# ---------------------------------------------------------------- consistency


def test_triton_deployments(scenario: Scenario) -> None:
    deps = by_kind("Deployment")
    for pool, cfg in scenario.pools.items():
        d = deps[f"triton-{pool}"]
        tmpl = d["spec"]["template"]
        assert d["spec"]["selector"]["matchLabels"].items() <= tmpl["metadata"]["labels"].items()
        assert tmpl["metadata"]["labels"]["kisim.io/pool"] == pool
        spec = tmpl["spec"]
        for c in spec["containers"] + spec.get("initContainers", []):
            r = c["resources"]
            assert r["requests"] == r["limits"], f"{pool}/{c['name']}: not Guaranteed"
        triton = spec["containers"][0]
        res = triton["resources"]["limits"]
        assert float(res["cpu"]) == cfg.resources.cpu
        assert res["memory"] == f"{cfg.resources.memory_gib:g}Gi"
        assert res.get("nvidia.com/gpu", 0) == cfg.resources.gpu
        assert (spec.get("runtimeClassName") == "nvidia") == (cfg.resources.gpu > 0)
        assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert triton["livenessProbe"]["httpGet"]["path"].startswith("/v2/health/")
        ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
        assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
        dev = scenario.calibration.devices[cfg.device].startup
        assert triton["readinessProbe"]["periodSeconds"] == dev.readiness_period_s
        assert triton["readinessProbe"]["initialDelaySeconds"] == dev.readiness_initial_delay_s
        assert spec["terminationGracePeriodSeconds"] == dev.termination_grace_s


def _pbtxt(text: str) -> dict[str, Any]:
    def num(key: str) -> int | None:
        m = re.search(rf"\b{key}:\s*(\d+)", text)
        return int(m.group(1)) if m else None

    pref = re.search(r"preferred_batch_size:\s*\[([^\]]*)\]", text)
    inst = re.search(r"count:\s*(\d+),\s*kind:\s*(KIND_\w+)", text)
    assert inst, "instance_group with count and kind"
    return {
        "max_batch_size": num("max_batch_size"),
        "delay_us": num("max_queue_delay_microseconds") or 0,
        "preferred": [int(x) for x in pref.group(1).split(",")] if pref else [],
        "dynamic": "dynamic_batching" in text,
        "count": int(inst.group(1)),
        "kind": inst.group(2),
    }


def test_model_config_matches_scenario(scenario: Scenario) -> None:
    cm = by_kind("ConfigMap")["triton-model-config"]["data"]
    for pool, cfg in scenario.pools.items():
        got = _pbtxt(cm[f"{pool}.pbtxt"])
        b = cfg.batching
        assert got["max_batch_size"] == b.max_batch_size
        assert got["dynamic"] == b.enabled
        assert got["delay_us"] == b.max_queue_delay_us
        assert got["preferred"] == b.preferred_batch_sizes
        assert got["count"] == cfg.instances
        kind = scenario.calibration.devices[cfg.device].kind
        assert got["kind"] == ("KIND_GPU" if kind == "gpu" else "KIND_CPU")


def test_services_select_the_pools() -> None:
    deps, svcs = by_kind("Deployment"), by_kind("Service")
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deps.values()]
    for name, s in svcs.items():
        sel = s["spec"]["selector"]
        assert any(sel.items() <= lbl.items() for lbl in pod_labels), f"{name} selects nothing"
    for pool in ("gpu", "cpu"):
        assert svcs[f"triton-{pool}"]["spec"]["selector"]["kisim.io/pool"] == pool


def test_rbac_is_least_privilege() -> None:
    assert "ClusterRole" not in {o["kind"] for o in objects()}
    assert "ClusterRoleBinding" not in {o["kind"] for o in objects()}
    role = by_kind("Role")["kisim-actuator"]
    rules = {
        (g, r): sorted(rule["verbs"])
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
    }
    assert rules == {
        ("", "pods"): ["get", "list", "watch"],
        ("apps", "deployments/scale"): ["get", "patch"],
        ("autoscaling", "horizontalpodautoscalers"): ["create", "delete", "get", "list", "update"],
    }
    rb = by_kind("RoleBinding")["kisim-actuator"]
    assert rb["roleRef"]["name"] == "kisim-actuator"
    assert rb["subjects"] == [{"kind": "ServiceAccount", "name": "kisim", "namespace": "kisim"}]


def test_hand_applied_hpa_matches_scenario(scenario: Scenario) -> None:
    for pool, cfg in scenario.pools.items():
        h = by_kind("HorizontalPodAutoscaler")[f"triton-{pool}"]["spec"]
        assert h["scaleTargetRef"]["name"] == f"triton-{pool}"
        assert h["maxReplicas"] == cfg.max_replicas
        target = h["metrics"][0]["resource"]["target"]["averageUtilization"]
        assert target == round(scenario.controller.hpa.target_cpu_utilization * 100)


def test_locustfile_compiles() -> None:
    src = by_kind("ConfigMap")["locustfile"]["data"]["locustfile.py"]
    compile(src, "locustfile.py", "exec")


def test_time_slicing_configs() -> None:
    cm = by_kind("ConfigMap")["time-slicing-config"]
    for key, text in cm["data"].items():
        cfg = yaml.safe_load(text)
        assert cfg["version"] == "v1", key
        for r in cfg.get("sharing", {}).get("timeSlicing", {}).get("resources", []):
            assert r["name"] == "nvidia.com/gpu" and r["replicas"] == int(key.split("-")[1])


def test_actuator_defaults_match_manifests() -> None:
    from bridge.kube_settings import KubeSettings

    s = KubeSettings()
    deps, svcs = by_kind("Deployment"), by_kind("Service")
    kind_cfg = yaml.safe_load((MAN / "kind/kind-gpu.yaml").read_text())
    mapped = {m["hostPort"]: m for n in kind_cfg["nodes"] for m in n.get("extraPortMappings", [])}
    for pool, dep in s.deployments.items():
        assert deps[dep]["metadata"]["namespace"] == s.namespace
        port = int(s.pool_urls[pool].rsplit(":", 1)[1])
        http = next(p for p in svcs[f"triton-{pool}"]["spec"]["ports"] if p["name"] == "http")
        assert http["nodePort"] == port
        assert mapped[port]["containerPort"] == port


# ---------------------------------------------------------------- Helm values, Kind config


def test_gpu_operator_values() -> None:
    v = values("gpu-operator-values.yaml")
    assert v["driver"]["enabled"] is False
    assert v["toolkit"]["enabled"] is False
    assert v["dcgmExporter"]["enabled"] is True
    cfg = v["devicePlugin"]["config"]
    cm = by_kind("ConfigMap")[cfg["name"]]
    assert cm["metadata"]["namespace"] == "gpu-operator"
    assert cfg["default"] in cm["data"]


def test_kube_prometheus_stack_values(scenario: Scenario) -> None:
    v = values("kube-prometheus-stack-values.yaml")
    ps = v["prometheus"]["prometheusSpec"]
    assert ps["scrapeInterval"] == f"{scenario.metrics.scrape_interval_s:g}s"
    assert ps["serviceMonitorSelectorNilUsesHelmValues"] is False
    assert v["prometheus"]["service"]["nodePort"] == 30090
    mons = {m["name"]: m for m in v["prometheus"]["additionalServiceMonitors"]}
    assert {"triton", "dcgm-exporter"} <= set(mons)
    triton = mons["triton"]
    sel = triton["selector"]["matchLabels"]
    scraped = {
        n: s
        for n, s in by_kind("Service").items()
        if sel.items() <= s["metadata"]["labels"].items()
    }
    assert set(scraped) == {"triton-gpu", "triton-cpu"}  # not the combined one: no duplicates
    assert triton["namespaceSelector"]["matchNames"] == ["kisim"]
    for s in scraped.values():
        port = next(p for p in s["spec"]["ports"] if p["name"] == triton["endpoints"][0]["port"])
        assert port["port"] == 8002
    assert mons["dcgm-exporter"]["endpoints"][0]["port"] == "gpu-metrics"
    assert mons["dcgm-exporter"]["namespaceSelector"]["matchNames"] == ["gpu-operator"]


def test_metrics_server_values(scenario: Scenario) -> None:
    args = values("metrics-server-values.yaml")["args"]
    assert f"--metric-resolution={scenario.metrics.metrics_server_resolution_s:g}s" in args
    assert "--kubelet-insecure-tls" in args


def test_kind_config() -> None:
    cfg = yaml.safe_load((MAN / "kind/kind-gpu.yaml").read_text())
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    nodes = cfg["nodes"]
    assert nodes[0]["role"] == "control-plane"
    for n in nodes:
        for m in n.get("extraPortMappings", []):
            assert m["listenAddress"] == "127.0.0.1", "nothing beyond loopback"
    gpu = [
        n
        for n in nodes
        if any(
            m["containerPath"].startswith("/var/run/nvidia-container-devices/")
            for m in n.get("extraMounts", [])
        )
    ]
    assert len(gpu) == 1 and gpu[0]["role"] == "worker"
    classes = {n.get("labels", {}).get("kisim.io/node-class") for n in nodes}
    for d in by_kind("Deployment").values():
        want = d["spec"]["template"]["spec"].get("nodeSelector", {}).get("kisim.io/node-class")
        assert want is None or want in classes
    assert gpu[0]["labels"]["kisim.io/node-class"] == "gpu"


# ---------------------------------------------------------------- set-up script


SCRIPT = ROOT / "scripts/cluster-up.sh"


def test_cluster_up_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_cluster_up_script_shellcheck_clean() -> None:
    r = subprocess.run(["shellcheck", "-x", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
