#!/usr/bin/env bash
# Run the product with the demo property on embedded defaults: the reference cloud,
# the kiosk and its sync agent, all on 127.0.0.1.  Ctrl-C stops all three.
#   var/demo/cloud   the reference cloud's data        (port ${CLOUD_PORT:-8090})
#   var/demo/kiosk   the kiosk's data: keys, database  (port ${PORT:-8080})
# Prints a guest, a staff and an admin token (printable QR PNGs in var/demo/kiosk/qr/).
# The demo property is seeded on the first run only; later runs keep what happened
# (requests, work orders, approvals, sessions).  --reseed seeds it again (the kiosk's
# own work orders and approvals are kept even then).
set -euo pipefail
RESEED=no
for arg in "$@"; do
  case $arg in
    --reseed) RESEED=yes ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option $arg (use --reseed)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
BIN=.venv/bin
ROOT=${DEMO_DIR:-var/demo}
PORT=${PORT:-8080}
CLOUD_PORT=${CLOUD_PORT:-8090}
export KIOSK_DATA_DIR="$ROOT/kiosk"
# The demo's "camera" is a folder: copy a QR PNG into it to hold the code up (no webcam needed).
export KIOSK__CAMERA__ENABLED=true KIOSK__CAMERA__SOURCE=folder KIOSK__CAMERA__URI="$KIOSK_DATA_DIR/camera"
CLOUD_DIR="$ROOT/cloud"

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
  cred=$($BIN/kiosk-cloud device add kiosk-1 --hotel demo --data-dir "$CLOUD_DIR")
  $BIN/kiosk-agent link --cloud "http://127.0.0.1:$CLOUD_PORT" --device-id kiosk-1 --credential "$cred" >/dev/null
fi
mkdir -p "$KIOSK_DATA_DIR/qr" "$KIOSK_DATA_DIR/camera"
for role in guest staff admin; do
  case $role in guest) user=$guest ;; staff) user=s01 ;; *) user=demo-admin ;; esac
  tok=$($BIN/kiosk token create --role "$role" --hotel demo --user "$user" --reusable \
        --expires-in 7d --png "$KIOSK_DATA_DIR/qr/$role.png")
  echo "demo $role token (QR: $KIOSK_DATA_DIR/qr/$role.png):"
  echo "  $tok"
done

pids=()
trap 'kill -TERM "${pids[@]}" 2>/dev/null; wait' INT TERM EXIT
$BIN/kiosk-cloud serve --data-dir "$CLOUD_DIR" --port "$CLOUD_PORT" & pids+=($!)
$BIN/kiosk-agent run & pids+=($!)
$BIN/kiosk serve --port "$PORT" & pids+=($!)
echo "kiosk on http://127.0.0.1:$PORT (staff: /staff), cloud on http://127.0.0.1:$CLOUD_PORT"
echo "hold a code up to the demo camera:  cp $KIOSK_DATA_DIR/qr/guest.png $KIOSK_DATA_DIR/camera/guest-\$(date +%s).png"
echo "check delivery with: $BIN/kiosk-agent --data-dir $KIOSK_DATA_DIR status"
wait -n
