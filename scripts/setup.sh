#!/usr/bin/env bash
# Set up everything on a fresh Debian machine: system packages, a venv, the project.
# Idempotent; used by the README's commands and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
PKGS="python3 python3-venv python3-dev gcc libzbar0 tzdata systemd faketime chromium espeak-ng flite postgresql"  # tzdata: the zones property.timezone names (not in every minimal image); test tools: faketime (clock skew), chromium (screens), espeak-ng and flite (speech: synthetic voices, and CMU voices built from recordings of people), postgresql (the cloud on PostgreSQL: throwaway servers)
missing=$(for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
# Another apt-get (unattended-upgrades on a fresh machine, often) may hold the dpkg lock:
# wait for it, up to APT_LOCK_WAIT seconds, instead of failing at once.
APT=(apt-get -o "DPkg::Lock::Timeout=${APT_LOCK_WAIT:-600}")
if [ -n "$missing" ]; then
  echo "installing $missing (waiting for apt's lock if another apt-get holds it)" >&2
  $SUDO "${APT[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO "${APT[@]}" install -y -qq $missing >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip 2>&1 | grep -v '^WARNING' || true
.venv/bin/pip install -q -e ".[test]" 2>&1 | grep -v '^WARNING' || true
.venv/bin/python -c "import kiosk.cli" # fail here, not later, if the install did not work
# LazyFS for the power-cut tests, built once per machine; where it cannot be built those tests skip, saying why
bash scripts/build-lazyfs.sh >/dev/null || echo "warning: LazyFS did not build; tests/test_powercut.py will skip" >&2
