"""Where the local bridge finds what `scripts/setup-bridge.sh` installed.

Overridable by environment, so CI or a user can keep the Triton venv and the model
elsewhere: ``KISIM_TRITON_PYTHON``, ``KISIM_MODEL``, ``KISIM_CACHE``, ``KISIM_PROMETHEUS``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

from kisim.core.errors import BackendError

ROOT = Path(__file__).resolve().parent.parent
SETUP = "scripts/setup-bridge.sh"
MODEL_FILE = "models/mobilenetv4_conv_small.onnx"


def cache_dir() -> Path:
    return Path(os.environ.get("KISIM_CACHE", ROOT / ".kisim-cache"))


def triton_python() -> Path:
    return Path(os.environ.get("KISIM_TRITON_PYTHON", ROOT / ".venv-triton" / "bin" / "python"))


def model_path() -> Path:
    return Path(os.environ.get("KISIM_MODEL", cache_dir() / MODEL_FILE))


def prometheus_binary() -> str | None:
    return os.environ.get("KISIM_PROMETHEUS") or shutil.which("prometheus")


def missing_setup() -> str | None:
    """Why the local stack cannot run (first missing piece), or None when it can."""
    if prometheus_binary() is None:
        return f"no `prometheus` binary on PATH: run {SETUP}"
    if not triton_python().exists():
        return f"{triton_python()}: no Triton venv: run {SETUP}"
    if not model_path().is_file():
        return f"{model_path()}: no model file: run {SETUP}"
    return None


def require_setup() -> None:
    why = missing_setup()
    if why:
        raise BackendError(why)


@cache
def triton_libdir() -> str:
    """LIBDIR of the Triton venv's Python: its backend stub must load *that* libpython.

    Without it the stub loads the system libpython3.11 and model load fails with
    ``'_thread.RLock' object has no attribute '_recursion_count'`` (NOTES.md).
    """
    py = triton_python()
    try:
        out = subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise BackendError(f"{py}: cannot run the Triton venv's python ({e})") from None
    return out.stdout.strip()
