#!/usr/bin/env bash
# The sim-to-real experiment of issue 14, unattended, on a QUIET host (docs/sim2real.md):
#   1. record fresh calibration bundles of the local stack (configs/sim2real/schedules/);
#   2. fit the twin to them (kisim calibrate);
#   3. train PPO on the twin ONLY, with domain randomisation (configs/train/sim2real-local.yaml);
#   4. kisim sim2real: static min/max, hpa, the rule baseline tuned on the twin, PPO -
#      every policy x workload x seed on real serving and in the twin, then the report;
#   5. fine-tune the PPO policy on real serving (kisim train --real --from), and run
#      kisim sim2real again with the fine-tuned policy added (finished runs are reused).
# Every step skips what is already on disk, so a killed or failed run is resumed by running
# the script again. Writes OUT (default results/sim2real) with PROVENANCE.json: each
# invocation's command, commit, host and load average at start.
#
# Usage: scripts/sim2real.sh                     (from anywhere; ~2.5 h on a quiet 2-core host)
# Env:   OUT=results/sim2real  SEEDS=5  FINETUNE_EPISODES=8  SKIP_FINETUNE=0
#        MAX_LOAD=1.0 (refuse to start above this 1-min load average; FORCE=1 to start anyway)
#        WORKLOADS=ramp,spike,trace  TIMESTEPS= (PPO budget override; the config's by default)
#        A pipeline check (not results): OUT=/tmp/s2r SEEDS=1 WORKLOADS=spike TIMESTEPS=2048 \
#        FINETUNE_EPISODES=1 FORCE=1 scripts/sim2real.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
OUT=${OUT:-results/sim2real}
SEEDS=${SEEDS:-5}
FINETUNE_EPISODES=${FINETUNE_EPISODES:-8}
WORKLOADS=${WORKLOADS:-ramp,spike,trace}
steps=(); [[ -n ${TIMESTEPS:-} ]] && steps=(--timesteps "$TIMESTEPS")
MAX_LOAD=${MAX_LOAD:-1.0}
kisim=.venv/bin/kisim
py=.venv/bin/python
say() { echo "sim2real.sh [$(date -u +%H:%M:%S)]: $*"; }

scripts/setup.sh >/dev/null
scripts/setup-bridge.sh >/dev/null
mkdir -p "$OUT/bundles" "$OUT/calibration" "$OUT/models"

load=$(cut -d' ' -f1 /proc/loadavg)
if [[ ${FORCE:-0} != 1 ]] && awk -v l="$load" -v m="$MAX_LOAD" 'BEGIN{exit !(l > m)}'; then
  echo "sim2real.sh: load average $load > $MAX_LOAD: the real runs would measure the other" \
       "work on this host, not the stack (FORCE=1 to start anyway)" >&2
  exit 2
fi
$py - "$OUT/PROVENANCE.json" "$0 $*" <<'PY'
import json, os, platform, subprocess, sys, time
path, cmd = sys.argv[1], sys.argv[2]
doc = json.load(open(path)) if os.path.exists(path) else {"what": "scripts/sim2real.sh runs"}
commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
doc.setdefault("invocations", []).append({
    "command": cmd, "commit": commit, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "host": platform.node(), "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
    "env": {k: os.environ.get(k) for k in ("OUT", "SEEDS", "FINETUNE_EPISODES", "FORCE",
                                           "WORKLOADS", "TIMESTEPS", "SKIP_FINETUNE")}})
json.dump(doc, open(path + ".tmp", "w"), indent=2)
os.replace(path + ".tmp", path)
PY

# 1. calibration bundles of THIS stack (1-thread replicas) -------------------------------------
for s in configs/sim2real/schedules/*.yaml; do
  name=$(basename "$s" .yaml)
  if [[ -f $OUT/bundles/$name/manifest.yaml ]]; then say "bundle $name: on disk"; continue; fi
  rm -rf "$OUT/bundles/$name"
  say "recording $name (~2 min)"
  $kisim record --backend local --schedule "$s" --scenario configs/sim2real/local-scenario.yaml \
                --out "$OUT/bundles/$name"
done

# 2. the twin fitted to them ---------------------------------------------------------------
cal=$OUT/calibration/local.yaml
if [[ ! -f $cal ]]; then
  say "calibrating"
  $kisim calibrate "$OUT"/bundles/*/ --out "$cal" --name sim2real-local \
                   --prior configs/calibrated/cpu-epyc-2core-ort.yaml
fi
cat > "$OUT/twin-scenario.yaml" <<YAML
# The experiment's scenario with the calibration fitted above (written by scripts/sim2real.sh).
apiVersion: kisim/v1
kind: Scenario
extends: $root/configs/sim2real/local-scenario.yaml
name: sim2real-local
calibration: calibration/local.yaml
YAML

# 3. PPO on the twin only ------------------------------------------------------------------
ppo=$OUT/models/ppo
if [[ ! -f $ppo/best_model.zip || ! -f $ppo/stopped.json ]]; then
  resume=(); [[ -d $ppo/checkpoints ]] && resume=(--resume)
  say "training PPO on the twin (<= 15 min)"
  $kisim train --scenario "$OUT/twin-scenario.yaml" --config configs/train/sim2real-local.yaml \
               --out "$ppo" "${steps[@]}" "${resume[@]}"
fi

# 4. the experiment --------------------------------------------------------------------------
pols="static-cpu:1,static-cpu:3,hpa,kpa,ppo:$ppo/best_model.zip"
say "kisim sim2real: 5 policies x workloads $WORKLOADS x $SEEDS seeds, real and twin"
$kisim sim2real --config configs/sim2real/local.yaml --calibration "$cal" --policies "$pols" \
                --workloads "$WORKLOADS" --seeds "$SEEDS" --tune-on twin --trust-model --out "$OUT"

# 5. fine-tuning on real serving, then the same comparison with it ---------------------------
if [[ ${SKIP_FINETUNE:-0} != 1 ]]; then
  ft=$OUT/models/ppo-finetuned
  resume=(); [[ -d $ft/checkpoints ]] && resume=(--resume)
  if [[ ! -f $ft/model.zip || ! -f $ft/episodes.csv ]] || \
     (( $(tail -n +2 "$ft/episodes.csv" | wc -l) < FINETUNE_EPISODES )); then
    say "fine-tuning PPO on real serving ($FINETUNE_EPISODES episodes)"
    $kisim train --real --backend local --from "$ppo/best_model.zip" \
                 --scenario "$OUT/twin-scenario.yaml" --patterns "$WORKLOADS" \
                 --episodes "$FINETUNE_EPISODES" --max-replicas cpu=3 --trust-model \
                 --out "$ft" "${resume[@]}"
  fi
  say "kisim sim2real again, with the fine-tuned policy"
  $kisim sim2real --config configs/sim2real/local.yaml --calibration "$cal" \
                  --policies "$pols,ppo:$ft/model.zip" --workloads "$WORKLOADS" \
                  --seeds "$SEEDS" --tune-on twin --trust-model --out "$OUT"
fi
say "done: $OUT/report.md"
