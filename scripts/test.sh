#!/usr/bin/env bash
# Quick start, command 2: set up (kisim + the real servers the integration tests start),
# then run the whole test suite, server-backed and slow tests included.
#
# Two phases: everything that does not start real servers runs on both cores (-n 2); then the
# `server` tests (real Triton, Prometheus, Locust, Ray) run one at a time, on a machine no
# other test is loading: they compare real timings and counters, and a twin test hogging the
# second core made them measure the host instead of the stack (CI, 2 cores).
# Pytest exit 5 (nothing selected, e.g. a path with no server tests) counts as success.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh || exit 1
if [[ -x scripts/setup-bridge.sh ]]; then scripts/setup-bridge.sh || exit 1; fi
py=.venv/bin/python
ok() { [[ $1 == 0 || $1 == 5 ]]; }
$py -m pytest -q -n 2 -m "not server" "$@"; a=$?
$py -m pytest -q -m server "$@"; b=$?
ok $a && ok $b && exit 0
echo "test.sh: failed (parallel phase exit $a, server phase exit $b)" >&2
exit 1
