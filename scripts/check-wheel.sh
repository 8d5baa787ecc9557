#!/usr/bin/env bash
# The distribution as a user gets it: `python -m build` (sdist, then the wheel built from the
# sdist), `twine check --strict`, then a fresh venv with only the wheel and its dependencies
# from the package index pip is configured with (the base install: no torch), and, from an
# unrelated directory, `kisim --help` and `kisim simulate` on the packaged default scenario.
# Not in CI (it installs ~600 MB of dependencies); tests/test_packaging.py checks the wheel there.
# Usage: scripts/check-wheel.sh [DIST_DIR]   (default: a temporary folder, removed at the end)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dist=${1:-$tmp/dist}
step() { printf '%-56s' "$1"; t0=$EPOCHREALTIME; }
done_() { awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%6.1f s\n", b - a }'; }

step "python -m build (sdist + wheel from it)"
"$py" -m build -o "$dist" "$root" >"$tmp/build.log" 2>&1 || { tail -n 30 "$tmp/build.log"; exit 1; }
done_
whl=$(ls -t "$dist"/kisim-*.whl | head -n 1); sdist=$(ls -t "$dist"/kisim-*.tar.gz | head -n 1)
step "twine check --strict"
"$py" -m twine check --strict "$whl" "$sdist" >"$tmp/twine.log" 2>&1 || { cat "$tmp/twine.log"; exit 1; }
done_
n_yaml=$("$py" -m zipfile -l "$whl" | grep -c 'kisim/configs/.*\.yaml' || true)
[[ $n_yaml -gt 0 ]] || { echo "the wheel carries no kisim/configs/*.yaml"; exit 1; }

step "fresh venv + pip install the wheel"
base=$("$py" -c 'import sys; print(sys._base_executable)')
"$base" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check "$whl" >"$tmp/pip.log" 2>&1 \
  || { grep -v 'is ignored' "$tmp/pip.log" | tail -n 30; exit 1; }
done_
if "$tmp/venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "the base install pulled torch (it belongs to the rl extra only)"; exit 1
fi

mkdir -p "$tmp/elsewhere" && cd "$tmp/elsewhere"
step "kisim --help"
"$tmp/venv/bin/kisim" --help >/dev/null
done_
step "kisim simulate --duration 60 --json (packaged default)"
out=$("$tmp/venv/bin/kisim" simulate --duration 60 --json | tail -n 1)
done_
"$tmp/venv/bin/python" - "$out" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
assert s["served"] > 0, s
print(f"simulated: {s['served']:.0f} requests served, p95 {s['p95_ms']:.1f} ms")
PY
echo "ok: $(basename "$whl") ($n_yaml YAML configs) and $(basename "$sdist") install and run"
