#!/usr/bin/env bash
# Builds LazyFS (third_party/lazyfs, MIT) once into a cache directory, for the power-cut
# tests (tests/test_powercut.py).  Only Debian packages are installed; nothing is downloaded.
# The build is kept in ${XDG_CACHE_HOME:-~/.cache}/hotel-kiosk/lazyfs and redone only when
# the vendored sources change (their SHA-256 is stamped beside the binary), so a fresh clone
# on the same machine reuses it.  Prints the binary's path.  Called by scripts/setup.sh --test.
set -euo pipefail
cd "$(dirname "$0")/.."
src=third_party/lazyfs
out="${XDG_CACHE_HOME:-$HOME/.cache}/hotel-kiosk/lazyfs"
stamp=$(cd "$src" && find . -type f ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
if [ -x "$out/lazyfs" ] && [ "$(cat "$out/SOURCES.sha256" 2>/dev/null)" = "$stamp" ]; then
  echo "$out/lazyfs"
  exit 0
fi
rm -rf "$out.new"
bash "$src/build.sh" "$out.new" >/dev/null
echo "$stamp" >"$out.new/SOURCES.sha256"
rm -rf "$out"
mv "$out.new" "$out"
echo "$out/lazyfs"
