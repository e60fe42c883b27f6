#!/usr/bin/env bash
# Run the kiosk with the demo property on embedded defaults.
# Creates the instance under var/demo (keys, trust list, database), prints a guest,
# a staff and an admin token (QR PNGs in var/demo/qr/), then serves on port 8080.
set -euo pipefail
cd "$(dirname "$0")/.."
export KIOSK_DATA_DIR=${KIOSK_DATA_DIR:-var/demo}
K=.venv/bin/kiosk
$K init >/dev/null
mkdir -p "$KIOSK_DATA_DIR/qr"
for role in guest staff admin; do
  tok=$($K token create --role "$role" --hotel demo --user "demo-$role" --reusable \
        --expires-in 7d --png "$KIOSK_DATA_DIR/qr/$role.png")
  echo "demo $role token (QR in $KIOSK_DATA_DIR/qr/$role.png):"
  echo "  $tok"
done
echo "kiosk on http://127.0.0.1:${PORT:-8080}  (POST /api/qr/scan with one of the tokens above)"
exec $K serve --port "${PORT:-8080}"
