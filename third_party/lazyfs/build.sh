#!/usr/bin/env bash
# Builds LazyFS (a FUSE file system that can drop everything not yet fsync'ed: a simulated power cut)
# from this copy, with Debian's packages instead of the downloads its upstream CMake does.
# Usage: build.sh OUT_DIR   -> OUT_DIR/lazyfs (the binary; libpcache.so beside it, found via rpath)
set -euo pipefail
out=$(realpath -m "${1:?usage: build.sh OUT_DIR}")
here=$(cd "$(dirname "$0")" && pwd)
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
dpkg -s libspdlog-dev libtoml11-dev libfuse3-dev fuse3 cmake g++ >/dev/null 2>&1 || {
  $SUDO apt-get update -qq -o DPkg::Lock::Timeout=300 >/dev/null
  $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 libspdlog-dev libtoml11-dev libfuse3-dev fuse3 cmake g++ >/dev/null
}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp -r "$here/lazyfs" "$here/libs" "$work/"
log="$work/build.log"
{ (cd "$work/libs/libpcache" && mkdir -p build && cd build && cmake -DCMAKE_BUILD_TYPE=Release .. && cmake --build . -j2) &&
  (cd "$work/lazyfs" && mkdir -p build && cd build && cmake -DLAZYFS_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
     -DCMAKE_BUILD_RPATH='$ORIGIN' .. && cmake --build . -j2); } >"$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
mkdir -p "$out"
cp "$work/lazyfs/build/lazyfs" "$out/"
cp -P "$work"/libs/libpcache/build/libpcache.so* "$out/"
echo "$out/lazyfs"
