"""KubeActuator through the official client against a FAKE API server (no cluster here).

What a real cluster adds and these tests cannot show - scheduling, kubelet, Triton start-up,
real RBAC - is covered by docs/real-cluster.md; here: scale, bounds, readiness polling,
409 handling, retries then a clean error, HPA lifecycle, restore on close, dry-run.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("kubernetes")

from bridge.actuator import Actuator  # noqa: E402
from bridge.kube import KubeActuator  # noqa: E402
from bridge.kube_settings import KubeSettings  # noqa: E402
from kisim.core.config import Scenario, load_scenario  # noqa: E402
from kisim.core.errors import BackendError, ConfigError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _load_fake():  # by path: independent of how tests/ is laid out as packages
    spec = importlib.util.spec_from_file_location(
        "fake_kube_api", Path(__file__).with_name("fake_kube_api.py")
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_kube_api", mod)
    spec.loader.exec_module(mod)
    return mod


FakeKubeAPI = _load_fake().FakeKubeAPI
GPU_LABELS = {"app.kubernetes.io/name": "triton", "kisim.io/pool": "gpu"}
CPU_LABELS = {"app.kubernetes.io/name": "triton", "kisim.io/pool": "cpu"}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    # default: gpu replicas 1 (0..2), cpu replicas 1 (0..8), controller hpa
    return load_scenario(ROOT / "configs/scenarios/default.yaml")


@pytest.fixture
def fake() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI(ready_after_s=0.0) as f:
        f.add_deployment("triton-gpu", 2, GPU_LABELS)
        f.add_deployment("triton-cpu", 3, CPU_LABELS)
        yield f


def settings(fake: FakeKubeAPI, tmp_path: Path, **kw: object) -> KubeSettings:
    kc = fake.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
    base: dict[str, object] = dict(
        kubeconfig=kc,
        context="fake",
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
        poll_interval_s=0.02,
        retries=3,
        request_timeout_s=5.0,
        ready_timeout_s=5.0,
    )
    base.update(kw)
    return KubeSettings(**base)  # type: ignore[arg-type]


def replicas(fake: FakeKubeAPI) -> dict[str, int]:
    return {n: d.replicas for n, d in fake.deployments.items()}


def test_is_an_actuator(fake: FakeKubeAPI, tmp_path: Path) -> None:
    assert isinstance(KubeActuator(settings(fake, tmp_path)), Actuator)


def test_start_scales_to_initial_and_close_restores(fake, tmp_path, scenario) -> None:
    act = KubeActuator(settings(fake, tmp_path))
    act.start(scenario)
    assert replicas(fake) == {"triton-gpu": 1, "triton-cpu": 1}
    assert act.pool_url("gpu") == "http://127.0.0.1:30800"
    act.set_replicas("cpu", 4)
    act.start(scenario)  # a second episode: back to initial, originals kept
    assert replicas(fake) == {"triton-gpu": 1, "triton-cpu": 1}
    act.close()
    assert replicas(fake) == {"triton-gpu": 2, "triton-cpu": 3}
    act.close()  # idempotent
    assert [m for m, _ in fake.writes].count("PATCH") == 6  # 2 + 1 + 1 + 2 restores


def test_context_manager_restores_on_error(fake, tmp_path, scenario) -> None:
    with pytest.raises(RuntimeError), KubeActuator(settings(fake, tmp_path)) as act:
        act.start(scenario)
        act.set_replicas("cpu", 6)
        raise RuntimeError("policy crashed")
    assert replicas(fake) == {"triton-gpu": 2, "triton-cpu": 3}


def test_scale_uses_subresource_and_clamps(fake, tmp_path, scenario) -> None:
    act = KubeActuator(settings(fake, tmp_path))
    act.start(scenario)
    assert act.set_replicas("gpu", 5) == 2  # max_replicas 2
    assert act.set_replicas("cpu", -3) == 0  # min_replicas 0
    assert act.set_replicas("cpu", 7) == 7
    assert replicas(fake) == {"triton-gpu": 2, "triton-cpu": 7}
    assert {p for m, p in fake.writes} == {
        "/apis/apps/v1/namespaces/kisim/deployments/triton-gpu/scale",
        "/apis/apps/v1/namespaces/kisim/deployments/triton-cpu/scale",
    }
    with pytest.raises(BackendError, match="not in scenario"):
        act.set_replicas("tpu", 1)
    act.close()


def test_readiness_polling(fake, tmp_path, scenario) -> None:
    fake.ready_after_s = 0.3
    act = KubeActuator(settings(fake, tmp_path, ready_timeout_s=0))
    act.start(scenario)
    act.set_replicas("cpu", 3)
    st = act.state("cpu")
    assert (st.desired, st.ready, st.pending) == (3, 1, 2)
    assert any("labelSelector=" in p for m, p in fake.log if "/pods" in p)
    t0 = time.monotonic()
    states = act.wait_ready(timeout_s=5)
    assert time.monotonic() - t0 >= 0.2
    assert states["cpu"].ready == 3 and states["cpu"].pending == 0
    act.set_replicas("cpu", 1)  # scale-down: pods leave at once in the fake
    assert act.state("cpu").ready == 1
    act.close()


def test_unschedulable_pods_are_pending_and_wait_times_out(fake, tmp_path, scenario) -> None:
    fake.capacity["triton-gpu"] = 1  # one GPU
    act = KubeActuator(settings(fake, tmp_path))
    act.start(scenario)
    act.set_replicas("gpu", 2)
    counts = act.pods("gpu")
    assert (counts.ready, counts.unschedulable) == (1, 1)
    assert act.state("gpu").pending == 1
    with pytest.raises(BackendError, match=r"not ready after 0.2 s: gpu 1/2 ready, 1 pending"):
        act.wait_ready(timeout_s=0.2, pools=["gpu"])
    act.close()


def test_start_waits_for_initial_replicas(fake, tmp_path, scenario) -> None:
    fake.ready_after_s = 0.2
    fake.set_replicas("triton-cpu", 0)  # so that start() has to bring one up
    act = KubeActuator(settings(fake, tmp_path))
    act.start(scenario)
    assert act.state("cpu").ready == 1
    act.close()


def test_conflict_rereads_and_retries(fake, tmp_path, scenario) -> None:
    act = KubeActuator(settings(fake, tmp_path))
    act.start(scenario)
    n_log = len(fake.log)
    fake.inject(409, times=2, method="PATCH", path="/triton-cpu/scale")
    assert act.set_replicas("cpu", 4) == 4
    assert fake.deployments["triton-cpu"].replicas == 4
    new = [m for m, p in fake.log[n_log:] if "triton-cpu/scale" in p]
    assert new == ["GET", "PATCH", "GET", "PATCH", "GET", "PATCH"]  # re-read before each try
    act.close()


def test_stale_resource_version_is_a_real_conflict(fake, tmp_path, scenario) -> None:
    """The PATCH carries the read resourceVersion; another writer in between -> 409."""
    act = KubeActuator(settings(fake, tmp_path))
    act.start(scenario)
    real_read = act._read_scale
    raced = []

    def read_then_race(pool: str):
        scale = real_read(pool)
        if not raced:  # someone scales right after our first read
            raced.append(1)
            fake.set_replicas("triton-cpu", 6)
        return scale

    act._read_scale = read_then_race  # type: ignore[method-assign]
    assert act.set_replicas("cpu", 2) == 2
    assert fake.deployments["triton-cpu"].replicas == 2
    act.close()


def test_persistent_conflict_ends_in_backend_error(fake, tmp_path, scenario) -> None:
    act = KubeActuator(settings(fake, tmp_path, conflict_retries=2))
    act.start(scenario)
    fake.inject(409, times=100, method="PATCH")
    with pytest.raises(BackendError, match="still 409 Conflict after 3 attempts"):
        act.set_replicas("cpu", 5)
    fake.clear_faults()
    act.close()


def test_server_errors_are_retried(fake, tmp_path, scenario) -> None:
    act = KubeActuator(settings(fake, tmp_path))
    act.start(scenario)
    n_log = len(fake.log)
    fake.inject(500, times=2, method="GET", path="/triton-cpu/scale")
    fake.inject(503, times=1, method="PATCH")
    fake.inject(0, times=1, method="GET", path="/pods")  # a dropped connection
    assert act.set_replicas("cpu", 3) == 3
    assert act.state("cpu").desired == 3
    calls = [m for m, p in fake.log[n_log:] if "triton-cpu/scale" in p]
    assert calls[:5] == ["GET", "GET", "GET", "PATCH", "PATCH"]
    act.close()


def test_server_errors_exhausted_give_one_line_naming_the_address(fake, tmp_path, scenario) -> None:
    act = KubeActuator(settings(fake, tmp_path, retries=2))
    act.start(scenario)
    fake.inject(500, times=100, method="GET")
    with pytest.raises(BackendError) as ei:
        act.state("gpu")
    msg = str(ei.value)
    assert fake.url in msg and "after 3 attempts" in msg and "500" in msg
    assert "\n" not in msg
    fake.clear_faults()
    act.close()


def test_unreachable_api_is_a_clean_error(tmp_path, scenario) -> None:
    with FakeKubeAPI() as f:
        s = settings(f, tmp_path, retries=1)
        url = f.url
    act = KubeActuator(s)  # the fake is gone: connection refused
    with pytest.raises(BackendError, match=rf"Kubernetes API {url}: GET deployments/triton-gpu"):
        act.start(scenario)


def test_forbidden_namespace_is_not_retried(fake, tmp_path, scenario) -> None:
    act = KubeActuator(settings(fake, tmp_path, namespace="default"))
    with pytest.raises(BackendError, match="403.*only its namespace"):
        act.start(scenario)
    assert len(fake.log) == 1


def test_bad_kubeconfig_context_is_a_config_error(fake, tmp_path) -> None:
    with pytest.raises(ConfigError, match="kubeconfig"):
        KubeActuator(settings(fake, tmp_path, context="no-such-context"))


def test_hpa_create_update_delete(fake, tmp_path, scenario) -> None:
    act = KubeActuator(settings(fake, tmp_path))
    act.start(scenario)
    act.set_hpa("cpu", 0.6)
    h = fake.hpas["kisim-triton-cpu"]
    spec = h["spec"]
    assert h["apiVersion"] == "autoscaling/v2"
    assert h["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kisim"
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "triton-cpu",
    }
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 8)  # min 0 -> 1 (no scale-to-0)
    assert spec["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    with pytest.raises(BackendError, match="managed by HorizontalPodAutoscaler"):
        act.set_replicas("cpu", 3)
    rv = h["metadata"]["resourceVersion"]
    fake.inject(409, times=1, method="PUT")  # update races: re-read, replace again
    act.set_hpa("cpu", 0.8)
    h = fake.hpas["kisim-triton-cpu"]
    assert h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    assert h["metadata"]["resourceVersion"] != rv
    act.set_hpa("cpu", None)
    assert fake.hpas == {}
    act.set_hpa("cpu", None)  # deleting nothing is fine
    act.set_hpa("gpu", 0.5)
    assert set(fake.hpas) == {"kisim-triton-gpu"}
    act.close()  # removes what kisim created
    assert fake.hpas == {}
    with pytest.raises(BackendError, match=r"not in \(0, 1\]"):
        act.start(scenario)
        act.set_hpa("cpu", 1.5)
    act.close()


def test_foreign_hpa_refused_and_leftover_kisim_hpa_removed(fake, tmp_path, scenario) -> None:
    foreign = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "triton-cpu", "namespace": "kisim", "resourceVersion": "1"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "triton-cpu"},
            "maxReplicas": 4,
        },
    }
    fake.hpas["triton-cpu"] = foreign
    act = KubeActuator(settings(fake, tmp_path))
    with pytest.raises(BackendError, match="already scales deployment triton-cpu"):
        act.start(scenario)
    act.close()
    assert replicas(fake) == {"triton-gpu": 2, "triton-cpu": 3}  # nothing changed
    assert fake.writes == []
    del fake.hpas["triton-cpu"]
    leftover = {
        **foreign,
        "metadata": {
            **foreign["metadata"],
            "name": "kisim-triton-cpu",
            "labels": {"app.kubernetes.io/managed-by": "kisim"},
        },
    }
    fake.hpas["kisim-triton-cpu"] = leftover
    act.start(scenario)
    assert fake.hpas == {}
    act.close()


def test_dry_run_changes_nothing(fake, tmp_path, scenario) -> None:
    lines: list[str] = []
    act = KubeActuator(settings(fake, tmp_path, dry_run=True), echo=lines.append)
    act.start(scenario)
    assert act.state("cpu").desired == 1  # what it would have set
    assert act.set_replicas("cpu", 9) == 8
    act.set_hpa("gpu", 0.7)
    act.close()
    assert fake.writes == []
    assert replicas(fake) == {"triton-gpu": 2, "triton-cpu": 3} and fake.hpas == {}
    assert all(not c.applied for c in act.changes)
    assert lines[0] == (
        "[dry-run] would scale deployments/triton-gpu/scale in namespace kisim: replicas 2 -> 1"
    )
    assert any("would create horizontalpodautoscalers/kisim-triton-gpu" in x for x in lines)
    assert any("would delete horizontalpodautoscalers/kisim-triton-gpu" in x for x in lines)
    assert lines[-1].endswith("deployments/triton-cpu/scale in namespace kisim: replicas 8 -> 3")


def test_not_started_is_a_clear_error(fake, tmp_path) -> None:
    act = KubeActuator(settings(fake, tmp_path))
    with pytest.raises(BackendError, match="not started"):
        act.set_replicas("gpu", 1)
    assert act.pool_url("gpu") is None
