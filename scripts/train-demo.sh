#!/usr/bin/env bash
# Reproduces models/demo from scratch (make model): data -> training -> export -> evaluation.
#   1. training data: `lookout scenes dataset` (both domains, H.264 round trip at 1280x720, stored 320x180)
#   2. train (multitask strategy, see docs/TRAINING.md), progress lines with loss and ETA
#   3. export with optimum (image-to-text-with-past) + attributes_model.onnx into $OUT (default models/demo)
#   4. evaluate: held-out dataset at 1280x720 H.264 + two 60 s 1280x720 clips sampled at 1 fps,
#      scored with `lookout scenes score`
#   5. when OUT is models/demo: regenerate the golden outputs (scripts/golden.sh)
# Env: OUT (models/demo), RUN (.state/runs/demo), DATA (.state/data/demo), N (training images, 16000),
#      STEPS (training steps), LOOKOUT (bin/lookout), THREADS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-models/demo}"
RUN="${RUN:-.state/runs/demo}"
DATA="${DATA:-.state/data/demo}"
N="${N:-16000}"
STEPS="${STEPS:-2000}"
THREADS="${THREADS:-2}"
LOOKOUT="${LOOKOUT:-bin/lookout}"
PY=.state/venv/bin/python
# What the model knows, in the out-of-domain warning (domain_profile.json trained_on).
TRAINED_ON="lookout's synthetic scenes only: procedurally rendered driving and surveillance frames (docs/SCENES.md), no real camera footage"
export PYTHONPATH="$PWD/training${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="$THREADS"
[[ -x "$PY" ]] || scripts/venv.sh
[[ -x "$LOOKOUT" ]] || go build -o "$LOOKOUT" ./cmd/lookout
t0=$(date +%s)
mk() { # name n seed size [store [more flags]]
  local dir="$DATA/$1"
  if [[ -f "$dir/captions.jsonl" ]]; then echo "data: $dir exists"; return; fi
  rm -rf "$dir"
  "$LOOKOUT" scenes dataset --domain both --n "$2" --seed "$3" --size "$4" ${5:+--store-size "$5"} "${@:6}" --out "$dir"
}
mk train "$N" 1 1280x720 320x180
mk val 1000 2 1280x720 320x180
mk test720 400 3 1280x720
echo "data ready after $(( $(date +%s) - t0 ))s"
rm -rf "$RUN"
"$PY" -m lookout_train train --data "$DATA/train" --val "$DATA/val" --out "$RUN" --strategy multitask \
  --patch 16 --hidden 128 --heads 4 --enc-layers 4 --dec-layers 2 \
  --steps "$STEPS" --batch 64 --lr 1.5e-3 --warmup 150 --threads "$THREADS" --log-every 50
# The export carries a domain profile (docs/MODELS.md, "Out-of-domain flag"), calibrated on held-out
# seeds as the engine sees frames (H.264 clips and raw renders).
mk domain-h264 2000 5 1280x720 320x180
mk domain-raw 1000 7 1280x720 320x180 --h264=false
"$PY" -m lookout_train export --ckpt "$RUN/ckpt" --out "$OUT" \
  --domain-data "$DATA/domain-h264" --domain-data "$DATA/domain-raw" --trained-on "$TRAINED_ON"
echo "trained + exported after $(( $(date +%s) - t0 ))s"
"$PY" -m lookout_train eval --model "$OUT" --data "$DATA/test720" | tee "$RUN/eval-test720.txt"
for spec in driving:9001 surveillance:9002; do
  d=${spec%%:*}; s=${spec#*:}
  clip="$RUN/clip-$d-$s.mp4"
  "$LOOKOUT" scenes video --domain "$d" --seed "$s" --duration 60s --size 1280x720 --fps 30 --out "$clip"
  "$PY" -m lookout_train eval --model "$OUT" --video "$clip" --truth "${clip%.mp4}.truth.jsonl" --every 1s --out "$RUN/captions-$d-$s.jsonl"
  "$LOOKOUT" scenes score --truth "${clip%.mp4}.truth.jsonl" --captions "$RUN/captions-$d-$s.jsonl" | tail -1 | tee "$RUN/score-$d-$s.txt"
done
du -sh "$OUT"
if [[ "$OUT" == models/demo ]]; then
  LOOKOUT_DEMO_CKPT="$RUN/ckpt" scripts/golden.sh   # keep testdata/golden/demo.json in step with the new model
fi
echo "make model: done in $(( ($(date +%s) - t0) / 60 )) min"
