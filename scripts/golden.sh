#!/usr/bin/env bash
# Regenerates the golden outputs the Go engine is tested against (make golden).
#  1. testdata/models/tiny-vit-gpt2 (+ its PyTorch checkpoint testdata/models/tiny-vit-gpt2-pytorch):
#     built (seeded, same weights every time) and exported with optimum when missing or when
#     LOOKOUT_GOLDEN_REBUILD_TINY=1. A rebuild gives identical weights but the exporter numbers some ONNX
#     initializer names differently from run to run, so the committed fixture is kept by default.
#  2. testdata/golden/images/*.png: the fixed procedural images.
#  3. testdata/golden/tiny-vit-gpt2.json (+ pixel_values/tiny-vit-gpt2/*.f32).
#  4. testdata/golden/demo.json for models/demo on the fixed images + synth frames (testdata/golden/frames),
#     reference = the PyTorch checkpoint in $LOOKOUT_DEMO_CKPT (default .state/runs/demo/ckpt) when present,
#     else transformers generate() over ONNX Runtime (optimum ORTModelForVision2Seq); the JSON says which.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.state/venv/bin/python}"
[[ -x "$PY" ]] || { echo "golden: $PY missing; run scripts/venv.sh first" >&2; exit 1; }
export PYTHONPATH="$PWD/training${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
if [[ "${LOOKOUT_GOLDEN_REBUILD_TINY:-0}" == 1 || ! -f testdata/models/tiny-vit-gpt2/decoder_model_merged.onnx \
      || ! -f testdata/models/tiny-vit-gpt2-pytorch/model.safetensors ]]; then
  rm -rf testdata/models/tiny-vit-gpt2 testdata/models/tiny-vit-gpt2-pytorch
  "$PY" -m lookout_train tiny --out testdata/models/tiny-vit-gpt2 --keep-ckpt testdata/models/tiny-vit-gpt2-pytorch
fi
"$PY" -m lookout_train golden images --out testdata/golden/images
"$PY" -m lookout_train golden run --model testdata/models/tiny-vit-gpt2 --ckpt testdata/models/tiny-vit-gpt2-pytorch \
  --name tiny-vit-gpt2 --images testdata/golden/images --out testdata/golden
if [[ -f models/demo/encoder_model.onnx ]]; then
  ck="${LOOKOUT_DEMO_CKPT:-.state/runs/demo/ckpt}"
  imgs="$(ls testdata/golden/images/*.png testdata/golden/frames/*.png 2>/dev/null | paste -sd, -)"
  if [[ -d "$ck" ]]; then
    "$PY" -m lookout_train golden run --model models/demo --ckpt "$ck" --name demo --images "$imgs" --out testdata/golden
  else
    echo "golden: no PyTorch checkpoint at $ck; demo golden from ONNX Runtime generate()" >&2
    "$PY" -m lookout_train golden run --model models/demo --name demo --images "$imgs" --out testdata/golden
  fi
fi
# 5. testdata/models/tiny-florence2 (built when missing or LOOKOUT_GOLDEN_REBUILD_TINY=1) and
#    testdata/golden/tiny-florence2.json: Florence-2 generate() + post_process_generation (docs/MODELS.md).
if [[ "${LOOKOUT_GOLDEN_REBUILD_TINY:-0}" == 1 || ! -f testdata/models/tiny-florence2/onnx/decoder_model_merged.onnx ]]; then
  "$PY" -m lookout_train florence build --out testdata/models/tiny-florence2 --images testdata/golden/images
fi
"$PY" -m lookout_train florence golden --model testdata/models/tiny-florence2 --images testdata/golden/images --out testdata/golden
# 6. testdata/golden/domain.tsv: the Python toolchain's domain distances for models/demo on the fixed
#    images and synth frames; the Go engine must match them (inference TestDomainMatchesPython).
if [[ -f models/demo/domain_profile.json ]]; then
  "$PY" -m lookout_train domain score --model models/demo testdata/golden/images/*.png testdata/golden/frames/*.png \
    > testdata/golden/domain.tsv
fi
# 7. One tiny fixture per VisionEncoderDecoder family (docs/MODELS.md): testdata/models/tiny-<family> and its
#    PyTorch checkpoint tiny-<family>-pytorch, built when missing or LOOKOUT_GOLDEN_REBUILD_TINY=1, exported with
#    our toolchain; testdata/golden/tiny-<family>.json from generate() on the checkpoint.
for fam in beit-gpt2 deit-trocr swin-trocr swin-mbart vit-bert deit-roberta; do
  if [[ "${LOOKOUT_GOLDEN_REBUILD_TINY:-0}" == 1 || ! -f testdata/models/tiny-$fam/encoder_model.onnx \
        || ! -f testdata/models/tiny-$fam-pytorch/model.safetensors ]]; then
    rm -rf "testdata/models/tiny-$fam" "testdata/models/tiny-$fam-pytorch"
    "$PY" -m lookout_train families build --family "$fam" --out "testdata/models/tiny-$fam" --keep-ckpt "testdata/models/tiny-$fam-pytorch"
  fi
  "$PY" -m lookout_train golden run --model "testdata/models/tiny-$fam" --ckpt "testdata/models/tiny-$fam-pytorch" \
    --name "tiny-$fam" --images testdata/golden/images --out testdata/golden
done
