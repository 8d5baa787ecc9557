"""The import contracts of pyproject.toml (`lint-imports`): layers, cluster clients, no cycles.

The contract runs on the real source; then it is shown to *fail* on a copy of the source
with one bad import added (an upward import, a cluster client outside `bridge`, a cycle),
so a contract that silently checks nothing cannot pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["kisim", "twin", "bridge", "calibration", "agents", "bench"]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_contracts_hold() -> None:
    r = lint(ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout and "5 kept" in r.stdout


BAD = {
    "upward import": ("kisim/core/config.py", "import twin.backend\n", "Layers"),
    "env imports the twin": ("kisim/env/episode.py", "import twin.backend\n", "Layers"),
    "cluster client outside bridge": ("twin/kernel.py", "import kubernetes\n", "Only bridge"),
    "ray in the twin": ("twin/backend.py", "import ray\n", "Ray stays above"),
    "cycle in a package": ("kisim/core/window.py", "import kisim.core.summary\n", "cycles"),
    "policy imports training": ("agents/policies/static.py", "import agents.training.train\n",
                                "agents:"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_contracts_fail_on_a_bad_import(tmp_path: Path, case: str) -> None:
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    rel, line, contract = BAD[case]
    f = tmp_path / rel
    f.write_text(f.read_text() + "\n" + line)
    r = lint(tmp_path)
    assert r.returncode != 0, r.stdout[-2000:]
    broken = [ln for ln in r.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in b for b in broken), broken
