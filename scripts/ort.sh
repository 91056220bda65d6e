#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that lookout's Go engine loads.
#
# Source: PyPI's onnxruntime wheel (the same version as the Python side in .state/venv, so logits agree),
# fetched with pip download, its sha256 checked against the pin below, and the library unpacked to
#   .state/ort/libonnxruntime.so.1.24.4  (and libonnxruntime.so -> it, libonnxruntime_providers_shared.so)
# github.com/yalue/onnxruntime_go v1.27.0 asks for C API 24, which ORT 1.24.x provides.
#
# Usage: scripts/ort.sh            (idempotent: does nothing when the checked library is in place)
# Env:   PYTHON   python with pip (default: .state/venv/bin/python, else python3)
#        ORT_DIR  install folder (default: .state/ort under the repo root)
# For the CUDA/TensorRT providers install onnxruntime-gpu yourself and point LOOKOUT_ORT_LIB at its library.
set -euo pipefail

ORT_VERSION=1.24.4
WHEEL=onnxruntime-${ORT_VERSION}-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
WHEEL_SHA256=e54ad52e61d2d4618dcff8fa1480ac66b24ee2eab73331322db1049f11ccf330
LIB_SHA256=2d518e11c7767f9fdc4413bdbeb45acf30db504ff76a82fc19d9238a3f9f6c24

die() { echo "ort.sh: $*" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${ORT_DIR:-$root/.state/ort}
lib=$dest/libonnxruntime.so.$ORT_VERSION

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "only linux x86_64 is pinned here (this is $(uname -s)-$(uname -m)); set LOOKOUT_ORT_LIB to an ONNX Runtime $ORT_VERSION library"

if [ -f "$lib" ] && [ "$(sha256sum "$lib" | cut -d' ' -f1)" = "$LIB_SHA256" ]; then
	ln -sf "libonnxruntime.so.$ORT_VERSION" "$dest/libonnxruntime.so"
	echo "ort.sh: $lib already installed (sha256 ok)"
	exit 0
fi

py=${PYTHON:-}
if [ -z "$py" ]; then
	if [ -x "$root/.state/venv/bin/python" ]; then py=$root/.state/venv/bin/python; else py=python3; fi
fi
"$py" -m pip --version >/dev/null 2>&1 || die "$py has no pip; install python3-pip or set PYTHON to a python with pip"
command -v unzip >/dev/null || die "unzip not found; install it (apt-get install unzip)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "ort.sh: downloading onnxruntime==$ORT_VERSION wheel from PyPI"
"$py" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_27_x86_64 \
	--python-version 3.11 --implementation cp -d "$tmp" "onnxruntime==$ORT_VERSION" ||
	die "pip download onnxruntime==$ORT_VERSION failed; check network access to PyPI (or PIP_INDEX_URL)"
[ -f "$tmp/$WHEEL" ] || die "pip did not produce $WHEEL (got: $(ls "$tmp")); the pin in scripts/ort.sh needs updating"
got=$(sha256sum "$tmp/$WHEEL" | cut -d' ' -f1)
[ "$got" = "$WHEEL_SHA256" ] || die "$WHEEL sha256 is $got, want $WHEEL_SHA256; refusing a changed artifact"

mkdir -p "$dest"
unzip -q -o -j "$tmp/$WHEEL" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" \
	"onnxruntime/capi/libonnxruntime_providers_shared.so" -d "$tmp/x" || die "wheel lacks onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
got=$(sha256sum "$tmp/x/libonnxruntime.so.$ORT_VERSION" | cut -d' ' -f1)
[ "$got" = "$LIB_SHA256" ] || die "libonnxruntime.so.$ORT_VERSION sha256 is $got, want $LIB_SHA256"
install -m 0755 "$tmp/x/libonnxruntime.so.$ORT_VERSION" "$lib"
install -m 0755 "$tmp/x/libonnxruntime_providers_shared.so" "$dest/libonnxruntime_providers_shared.so"
ln -sf "libonnxruntime.so.$ORT_VERSION" "$dest/libonnxruntime.so"
echo "ort.sh: installed $dest/libonnxruntime.so -> libonnxruntime.so.$ORT_VERSION"
