#!/usr/bin/env bash
# Strategy comparison for docs/TRAINING.md: every strategy with the same small budget on the same data.
# Usage: training/table.sh DATA_DIR RUNS_DIR   (DATA_DIR has train/ and val/ from `lookout scenes dataset`)
# Env: STEPS (400), BATCH (32), ARCH (model flags, default the demo architecture).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:?usage: training/table.sh DATA_DIR RUNS_DIR}"
RUNS="${2:?usage: training/table.sh DATA_DIR RUNS_DIR}"
STEPS="${STEPS:-400}"
BATCH="${BATCH:-32}"
ARCH="${ARCH:---patch 16 --hidden 128 --heads 4 --enc-layers 4 --dec-layers 2}"
PY=.state/venv/bin/python
export PYTHONPATH="$PWD/training"
common=(--data "$DATA/train" --val "$DATA/val" --batch "$BATCH" --lr 1.5e-3 --warmup 50 --log-every 100 $ARCH)
run() { local name=$1; shift; [[ -f "$RUNS/$name/metrics.json" ]] && return; rm -rf "$RUNS/$name"
  "$PY" -m lookout_train train --out "$RUNS/$name" "${common[@]}" "$@" 2>&1 | grep -v -i -E "warn|attention_mask|recommend"; }
run joint --strategy joint --steps "$STEPS"
run alternating-k1 --strategy alternating --alt-every 1 --steps "$STEPS"
run alternating-k50 --strategy alternating --alt-every 50 --steps "$STEPS"
run multitask --strategy multitask --attr-weight 0.5 --steps "$STEPS"
half=$((STEPS / 2))
run transfer-d2s --strategy transfer --pretrain-domain driving --pretrain-steps "$half" --domain surveillance --fraction 0.05 --steps "$half"
run scratch-s005 --strategy joint --domain surveillance --fraction 0.05 --steps "$half"
"$PY" - "$RUNS" <<'PY'
import json, os, sys
runs = sys.argv[1]
print("| run | strategy | steps x batch | train images | BLEU-4 | exact match | slot acc | attr acc | train min |")
print("|---|---|---|---|---|---|---|---|---|")
for name in sorted(os.listdir(runs)):
    p = os.path.join(runs, name, "metrics.json")
    if not os.path.isfile(p):
        continue
    m = json.load(open(p)); e = m.get("eval", {})
    steps = " + ".join(f"{v}" for v in m["steps"].values())
    imgs = " / ".join(str(v) for v in m["train_images"].values())
    print(f"| {name} | {m['strategy']} | {steps} x {m['batch']} | {imgs} | {e.get('bleu4', 0):.1f} | {e.get('exact_match', 0):.3f} | "
          f"{e.get('slot_accuracy', 0):.3f} | {e.get('attr_accuracy', 0):.3f} | {m['train_seconds'] / 60:.1f} |")
PY
