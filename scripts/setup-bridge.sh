#!/usr/bin/env bash
# Set-up for the local real-serving bridge (idempotent; CI runs it on a fresh machine):
#   1. the Prometheus server (Debian package) — no service is started;
#   2. .venv-triton: nvidia-pytriton (bundles tritonserver 2.51) + numpy<2 + onnxruntime,
#      kept apart from .venv because pytriton needs numpy<2;
#   3. the MobileNetV4 conv_small ONNX model (random weights), exported with the main
#      venv's torch into .kisim-cache/models/.
# Usage: scripts/setup-bridge.sh            (from anywhere; works on the repository root)
# Env:   PYTHON=python3.11 (interpreter for .venv-triton), KISIM_CACHE=.kisim-cache
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cache=${KISIM_CACHE:-$root/.kisim-cache}
tv=$root/.venv-triton
reqs=("nvidia-pytriton==0.7.0" "numpy>=1.26,<2" "onnxruntime>=1.18,<2")
t0=$SECONDS
say() { echo "setup-bridge: $*"; }

# 1. Prometheus ------------------------------------------------------------------------
if ! command -v prometheus >/dev/null 2>&1; then
  say "installing prometheus (apt)"
  sudo_=""; [[ $(id -u) -ne 0 ]] && sudo_="sudo"
  $sudo_ apt-get update -qq
  # --no-install-recommends: no node-exporter; policy-rc.d keeps the package from starting
  # a service that would listen on 0.0.0.0:9090.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_ tee /usr/sbin/policy-rc.d >/dev/null
    $sudo_ chmod +x /usr/sbin/policy-rc.d; made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  [[ -n ${made_policy:-} ]] && $sudo_ rm -f /usr/sbin/policy-rc.d
fi
say "prometheus: $(prometheus --version 2>&1 | head -n 1)"

# 2. .venv-triton ----------------------------------------------------------------------
stamp=$tv/.kisim-reqs
want=$(printf '%s\n' "${reqs[@]}")
if [[ ! -x $tv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  say "creating $tv"
  py=${PYTHON:-}
  if [[ -z $py ]]; then
    if [[ -x $root/.venv/bin/python ]]; then py=$(readlink -f "$root/.venv/bin/python"); else py=python3.11; fi
  fi
  "$py" -m venv "$tv"
  echo '*' > "$tv/.gitignore"  # the venv ignores itself
  rm -f "$stamp"
  "$tv/bin/python" -m pip install -q --no-compile "${reqs[@]}" 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
fi
"$tv/bin/python" -c "import pytriton, numpy, onnxruntime; assert numpy.__version__ < '2'" \
  || { say "error: $tv is broken; delete it and rerun"; exit 1; }
echo "$want" > "$stamp"
say ".venv-triton ok ($("$tv/bin/python" -c 'import numpy, onnxruntime; print("numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__)'))"

# 3. Model -----------------------------------------------------------------------------
model=$cache/models/mobilenetv4_conv_small.onnx
if [[ ! -s $model ]]; then
  py=$root/.venv/bin/python
  [[ -x $py ]] || py=python3
  "$py" -c "import torch" 2>/dev/null \
    || { say "error: torch is missing in $py: install the project with its [rl] extra first"; exit 1; }
  # torch's exporter needs the `onnx` package; when the main venv lacks it, put it (alone,
  # --no-deps: numpy/protobuf come from the venv) in the cache instead of changing .venv.
  pp=""
  if ! "$py" -c "import onnx" 2>/dev/null; then
    [[ -d $cache/onnx-export/onnx ]] \
      || "$py" -m pip install -q --no-deps --target "$cache/onnx-export" "onnx>=1.16,<2"
    pp=$cache/onnx-export
  fi
  say "exporting $model"
  PYTHONPATH=$pp${PYTHONPATH:+:$PYTHONPATH} "$py" -W ignore::DeprecationWarning \
    -m bridge.model_export --out "$model"
fi
say "model ok: $model ($(du -h "$model" | cut -f1))"
say "done in $((SECONDS - t0)) s"
