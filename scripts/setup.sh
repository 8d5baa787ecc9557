#!/usr/bin/env bash
# Set up kisim on a fresh machine (idempotent): .venv with kisim and its extras.
# torch is pinned to 2.13.0, the CPU build on disk here; a looser pin pulls a multi-GB
# CUDA build (see docs/install.md). Re-running only installs what changed.
# Usage: scripts/setup.sh [extras]      default extras: rl,bridge,dev,ray
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
extras=${1:-rl,bridge,dev,ray}
py=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv with $($py --version)"
  "$py" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=.venv/.kisim-setup
want="$extras $(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "setup: installing kisim[$extras] into .venv (first time: ~3 min)"
  if [[ $extras == *rl* ]]; then
    .venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
  fi
  .venv/bin/python -m pip install -q -e ".[$extras]" 2>&1 | grep -vE '^WARNING: Location|^\s*$' || true
  .venv/bin/python -c "import kisim, twin.kernel" || { echo "setup: install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
echo "setup: .venv ready ($(.venv/bin/kisim --help >/dev/null && echo kisim CLI ok))"
