#!/usr/bin/env bash
# Quick start, command 1: set up, then run the main job on the built-in default scenario.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
exec .venv/bin/kisim demo "$@"
