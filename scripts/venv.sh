#!/usr/bin/env bash
# Creates the Python training venv .state/venv from training/requirements.txt (idempotent).
# Re-runs are no-ops while the requirements file is unchanged (stamp: .state/venv/.lookout-stamp).
# Records the install wall time in .state/venv/.lookout-install-time. Env: PYTHON (default python3, needs 3.10+),
# LOOKOUT_VENV (default .state/venv).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LOOKOUT_VENV:-.state/venv}"
REQ=training/requirements.txt
PY="${PYTHON:-python3}"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$VENV/.lookout-stamp" && "$(cat "$VENV/.lookout-stamp")" == "$want" ]]; then
  echo "venv: $VENV up to date"
  exit 0
fi
if ! command -v "$PY" >/dev/null; then
  echo "venv: $PY not found; install Python 3.11 or set PYTHON=/path/to/python3" >&2
  exit 1
fi
start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQ"
# The Go engine's ONNX Runtime must match this one (logits must agree).
"$VENV/bin/python" -c 'import onnxruntime, sys; v = onnxruntime.__version__; sys.exit(0 if v == "1.24.4" else f"venv: onnxruntime {v}, want 1.24.4")'
end=$(date +%s)
echo "$want" > "$VENV/.lookout-stamp"
echo "$((end - start))s $(date -u +%FT%TZ)" > "$VENV/.lookout-install-time"
echo "venv: $VENV installed in $((end - start))s ($(du -sh "$VENV" | cut -f1))"
