"""The distribution: every package listed in pyproject.toml, and a wheel that runs on its own.

pyproject.toml lists the packages by hand (so that the top-level `configs/` can ship as
`kisim/configs`); the first test keeps that list equal to the folders. The slow test
builds the wheel from a copy of the sources, unpacks it, and runs its console script
from another directory with nothing but the wheel on the path: the packaged default
scenario, `--help`, and `kisim.core.paths` pointing into the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
CONFIGS_PACKAGE = "kisim.configs"


def _roots() -> list[str]:
    """The top-level packages the distribution ships."""
    return sorted({p.split(".")[0] for p in SETUPTOOLS["packages"]})


def test_listed_packages_are_the_package_folders() -> None:
    """A new subpackage must be added to pyproject.toml, or the wheel silently lacks it."""
    listed = set(SETUPTOOLS["packages"]) - {CONFIGS_PACKAGE}
    found = {
        p for p in find_packages(str(ROOT), include=[f"{r}*" for r in _roots()])
        if not p.startswith("kisim.configs")
    }  # fmt: skip
    assert listed == found
    assert SETUPTOOLS["package-dir"] == {CONFIGS_PACKAGE: "configs"}


def _entry_point(site: Path) -> str:
    """`module:function` of the wheel's `kisim` console script."""
    (info,) = site.glob("*.dist-info")
    lines = (info / "entry_points.txt").read_text().splitlines()
    section = lines[lines.index("[console_scripts]") + 1 :]
    return next(
        v.strip() for k, _, v in (ln.partition("=") for ln in section) if k.strip() == "kisim"
    )


def _run_packaged(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The wheel's console script with only the unpacked wheel (and the venv's third-party
    packages) importable: no checkout on sys.path, run from an unrelated directory."""
    module, func = _entry_point(site).split(":")
    code = (
        f"import sys, {module} as m; sys.argv = ['kisim', *sys.argv[1:]]; "
        f"assert m.__file__.startswith({str(site)!r}), m.__file__; m.{func}()"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-P", "-c", code, *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_wheel_carries_the_configs_and_runs_from_elsewhere(tmp_path: Path) -> None:
    src = _mkdir(tmp_path / "src")  # a copy: the build leaves build/ and *.egg-info behind
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in [*_roots(), "configs"]:
        shutil.copytree(ROOT / d, src / d, ignore=ignore)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("kisim-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"kisim/configs/{p.relative_to(ROOT / 'configs')}"
               for p in (ROOT / "configs").rglob("*.yaml")}  # fmt: skip
    assert shipped and shipped <= names, sorted(shipped - names)
    assert "kisim/configs/scenarios/default.yaml" in names
    assert not [n for n in names if n.endswith((".png", ".pdf"))], "figures are not package data"

    site, elsewhere = tmp_path / "site", _mkdir(tmp_path / "elsewhere")
    zipfile.ZipFile(wheel).extractall(site)

    run = _run_packaged(site, elsewhere, "simulate", "--duration", "60", "--json")
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["served"] > 0 and "p95_ms" in summary

    helped = _run_packaged(site, elsewhere, "--help")
    assert helped.returncode == 0 and "simulate" in helped.stdout, helped.stderr[-2000:]

    show = "from kisim.core.paths import configs_dir; print(configs_dir())"
    where = subprocess.run(
        [sys.executable, "-P", "-c", show],
        cwd=elsewhere, env=os.environ | {"PYTHONPATH": str(site)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert where.stdout.strip() == str(site / "kisim" / "configs"), where.stderr


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p
