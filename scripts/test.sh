#!/usr/bin/env bash
# Quick start, command 2: set up (kisim + the real servers the integration tests start),
# then run the whole test suite, server-backed and slow tests included.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
if [[ -x scripts/setup-bridge.sh ]]; then scripts/setup-bridge.sh; fi
exec .venv/bin/python -m pytest -q -n 2 "$@"
