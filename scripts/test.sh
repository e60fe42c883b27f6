#!/usr/bin/env bash
# The whole test suite (what CI runs): lint, then pytest.  Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
# Three worker processes (TEST_WORKERS), each test file in one of them (module fixtures stay
# shared): most tests wait on real processes and browsers, so on the 2-core CI machine three
# keep both cores busier than two (15.6 minutes against 17-19). TEST_WORKERS=0: one process.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-3}" --dist loadfile "$@"
