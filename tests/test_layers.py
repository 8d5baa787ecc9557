"""The layer contract of DESIGN.md, checked on the source (every import, top-level or lazy).

- only `bridge/` talks to clusters and load generators;
- `twin/` never imports `bridge`, `agents` or `calibration`;
- the thin core of `kisim` (config, patterns, window, backend, summary, errors) imports
  nothing from the packages built on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_CLIENTS = {"kubernetes", "locust", "prometheus_api_client", "tritonclient", "gevent"}
CORE = ["config", "devices", "env_config", "patterns", "registry", "window", "backend", "summary",
        "errors"]


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def files(pkg: str) -> list[Path]:
    return sorted((ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("pkg", ["kisim", "twin", "calibration", "agents"])
def test_cluster_clients_only_in_bridge(pkg: str) -> None:
    leaks = {str(f.relative_to(ROOT)): imports(f) & CLUSTER_CLIENTS for f in files(pkg)}
    assert not {k: v for k, v in leaks.items() if v}


def test_twin_is_below_bridge_agents_calibration() -> None:
    bad = {str(f.relative_to(ROOT)): imports(f) & {"bridge", "agents", "calibration"}
           for f in files("twin")}  # fmt: skip
    assert not {k: v for k, v in bad.items() if v}


def test_core_imports_nothing_above_it() -> None:
    for name in CORE:
        f = ROOT / "kisim" / f"{name}.py"
        assert not imports(f) & {"twin", "bridge", "agents", "calibration"}, f


def test_checker_sees_lazy_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def g():\n    import kubernetes.client\n    from locust import HttpUser\n")
    assert imports(f) >= {"kubernetes", "locust"}
