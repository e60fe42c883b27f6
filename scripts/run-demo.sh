#!/usr/bin/env bash
# Run the product with the demo property on embedded defaults: the reference cloud,
# the kiosk and its sync agent, all on 127.0.0.1.  Ctrl-C stops all three.
#   var/demo/cloud   the reference cloud's data        (port ${CLOUD_PORT:-8090})
#   var/demo/kiosk   the kiosk's data: keys, database  (port ${PORT:-8080})
# Prints a guest, a staff and an admin token (printable QR PNGs in var/demo/kiosk/qr/).
# The demo property is seeded on the first run only; later runs keep what happened
# (requests, work orders, approvals, sessions).  --reseed seeds it again (the kiosk's
# own work orders and approvals are kept even then).
# --pms opera runs a fake OPERA Cloud (built from its published API specs, ../shared/pms)
# as the demo hotel's PMS on port ${PMS_PORT:-8095}: the cloud reads its stays and posts the
# charges of offers guests take there, and the fake says what lands.
set -euo pipefail
RESEED=no
PMS=none
while [ $# -gt 0 ]; do
  case $1 in
    --reseed) RESEED=yes ;;
    --pms) shift; PMS=${1:-} ;;
    --pms=*) PMS=${1#--pms=} ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (use --reseed, --pms opera)" >&2; exit 2 ;;
  esac
  shift
done
case $PMS in none|opera) ;; *) echo "unknown PMS '$PMS' (the demo has: opera)" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
BIN=.venv/bin
ROOT=${DEMO_DIR:-var/demo}
PORT=${PORT:-8080}
CLOUD_PORT=${CLOUD_PORT:-8090}
export KIOSK_DATA_DIR="$ROOT/kiosk"
# The demo's "camera" is a folder: copy a QR PNG into it to hold the code up (no webcam needed).
export KIOSK__CAMERA__ENABLED=true KIOSK__CAMERA__SOURCE=folder KIOSK__CAMERA__URI="$KIOSK_DATA_DIR/camera"
CLOUD_DIR="$ROOT/cloud"

# Both ports must be free: a demo already running (or anything else) would answer in our place.
for p in "$PORT" "$CLOUD_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "error: ADDRESS_IN_USE: 127.0.0.1:$p is already in use (a demo still running? stop it, or choose other ports: PORT=8081 CLOUD_PORT=8091 $0)" >&2
    exit 1
  fi
done

$BIN/kiosk init >/dev/null
# the demo property: rooms, stays, folios, staff, tasks, assets, offers (and a guest to be);
# seeded once, its summary kept next to the data
SEEDED="$KIOSK_DATA_DIR/demo-seed.json"
if [ "$RESEED" = yes ] || [ ! -s "$SEEDED" ]; then
  $BIN/kiosk demo seed > "$SEEDED.tmp" && mv "$SEEDED.tmp" "$SEEDED"
  echo "seeded the demo property ($SEEDED)"
else
  echo "keeping the demo property seeded before (run with --reseed to seed it again)"
fi
guest=$($BIN/python -c 'import json, sys; print(json.load(open(sys.argv[1]))["guestConfirmation"])' "$SEEDED")
if [ ! -f "$KIOSK_DATA_DIR/keys/cloud.json" ]; then
  # not linked yet: a kiosk-1 the cloud kept from an earlier demo gets a new credential (--rotate)
  cred=$($BIN/kiosk-cloud device add kiosk-1 --hotel demo --rotate --data-dir "$CLOUD_DIR")
  $BIN/kiosk-agent link --cloud "http://127.0.0.1:$CLOUD_PORT" --device-id kiosk-1 --credential "$cred" >/dev/null
fi
mkdir -p "$KIOSK_DATA_DIR/qr" "$KIOSK_DATA_DIR/camera"
# The printed codes are reused across starts while they are still active for another day;
# only then (or once revoked) is a new one made, so a week of demos leaves one admin code,
# not one per start.
active=$($BIN/kiosk token list --status active --json)
for role in guest staff admin; do
  case $role in guest) user=$guest ;; staff) user=s01 ;; *) user=demo-admin ;; esac
  saved="$KIOSK_DATA_DIR/qr/$role.token"
  tok=""
  if [ -s "$saved" ] && $BIN/python - "$saved" "$active" <<'PY'
import base64, json, sys, time
token = open(sys.argv[1]).read().strip()
try:
    part = token.split(".")[1]
    jti = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["jti"]
except (IndexError, KeyError, ValueError):
    sys.exit(1)
for line in sys.argv[2].splitlines():
    t = json.loads(line)
    if t["jti"] == jti:
        left = time.mktime(time.strptime(t["expiresAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(time.gmtime())
        sys.exit(0 if left > 86400 else 1)
sys.exit(1)
PY
  then
    tok=$(cat "$saved")
  else
    tok=$($BIN/kiosk token create --role "$role" --hotel demo --user "$user" --reusable \
          --expires-in 7d --png "$KIOSK_DATA_DIR/qr/$role.png")
    printf '%s\n' "$tok" > "$saved"
  fi
  echo "demo $role token (QR: $KIOSK_DATA_DIR/qr/$role.png):"
  echo "  $tok"
done

pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
if [ "$PMS" = opera ]; then
  PMS_PORT=${PMS_PORT:-8095}
  $BIN/python -m tests.fakepms.opera_demo --port "$PMS_PORT" --kiosk-db "$KIOSK_DATA_DIR/kiosk.db" \
    --credentials "$ROOT/opera-credentials.json" & pids+=($!)
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PMS_PORT") 2>/dev/null && break; sleep 0.1; done
  $BIN/kiosk-cloud pms link --hotel demo --kind opera --url "http://127.0.0.1:$PMS_PORT" --pms-hotel DEMO \
    --credentials "$ROOT/opera-credentials.json" --charge-code 2010 --data-dir "$CLOUD_DIR" >/dev/null
  export KIOSK_CLOUD_PMS_POLL=${KIOSK_CLOUD_PMS_POLL:-15s}
  echo "the demo hotel's PMS: a fake OPERA Cloud on http://127.0.0.1:$PMS_PORT (what lands there is printed here)"
fi
$BIN/kiosk-cloud serve --data-dir "$CLOUD_DIR" --port "$CLOUD_PORT" & pids+=($!)
$BIN/kiosk-agent run & pids+=($!)
$BIN/kiosk serve --port "$PORT" & pids+=($!)
# Say where the demo is only once it answers there; if a program stops before that, say so and stop.
if ! $BIN/python - "${pids[@]: -3}" "http://127.0.0.1:$CLOUD_PORT/healthz" "http://127.0.0.1:$PORT/healthz" <<'PY'
import os, sys, time, urllib.request
pids, urls = [int(p) for p in sys.argv[1:4]], sys.argv[4:]
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    for pid, name in zip(pids, ("kiosk-cloud serve", "kiosk-agent run", "kiosk serve")):
        try:
            alive = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            alive = False
        if not alive:
            sys.exit(f"error: {name} stopped before the demo came up (its error is above)")
    up = 0
    for url in urls:
        try:
            urllib.request.urlopen(url, timeout=2)
            up += 1
        except OSError:  # not listening yet, or not healthy yet (an HTTPError is an OSError)
            pass
    if up == len(urls):
        sys.exit(0)
    time.sleep(0.2)
sys.exit("error: the demo did not come up within 120 s")
PY
then
  exit 1
fi
echo "kiosk on http://127.0.0.1:$PORT (staff: /staff), cloud on http://127.0.0.1:$CLOUD_PORT"
echo "hold a code up to the demo camera:  cp $KIOSK_DATA_DIR/qr/guest.png $KIOSK_DATA_DIR/camera/guest-\$(date +%s).png"
echo "check delivery with: $BIN/kiosk-agent --data-dir $KIOSK_DATA_DIR status"
wait -n
