#!/usr/bin/env bash
# Fetches real photos and a real pedestrian video (OpenCV's sample data, from
# Debian's opencv-doc package) into .state/realdata, for the out-of-domain
# tests (docs/MODELS.md, "Out-of-domain flag"). Only examples/data is kept:
# the package is 96 MB, its data folder about 60 MB. Idempotent and cached:
# does nothing when .state/realdata/vtest.avi exists. Needs no root
# (apt-get download). Override the target with LOOKOUT_REALDATA.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${LOOKOUT_REALDATA:-$root/.state/realdata}
if [ -s "$dest/vtest.avi" ]; then
  echo "realdata: present in $dest"
  exit 0
fi
start=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
deb=${LOOKOUT_OPENCV_DOC_DEB:-}
if [ -z "$deb" ]; then
  if ! (cd "$tmp" && apt-get download opencv-doc >"$tmp/apt.log" 2>&1); then
    echo "realdata: apt-get download opencv-doc failed ($(tail -n1 "$tmp/apt.log")); run apt-get update, or set LOOKOUT_OPENCV_DOC_DEB to a downloaded opencv-doc .deb" >&2
    exit 1
  fi
  deb=$(ls "$tmp"/opencv-doc_*.deb)
fi
mkdir -p "$tmp/x"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" --wildcards './usr/share/doc/opencv-doc/examples/data/*'
src="$tmp/x/usr/share/doc/opencv-doc/examples/data"
[ -s "$src/vtest.avi" ] || { echo "realdata: $deb has no examples/data/vtest.avi" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial"
cp -r "$src" "$dest.partial"
# Debian compresses some samples; the tests read plain files.
find "$dest.partial" -name '*.gz' -exec gunzip -f {} +
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "realdata: $(du -sh "$dest" | cut -f1) in $dest ($(( $(date +%s) - start ))s)"
