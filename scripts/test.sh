#!/usr/bin/env bash
# The whole test suite (what CI runs): lint, then pytest.  Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
