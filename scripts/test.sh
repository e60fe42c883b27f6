#!/usr/bin/env bash
# The whole test suite (what CI runs): lint, then pytest.  Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
# Two worker processes (TEST_WORKERS), each test file in one of them (module fixtures stay
# shared): on the 2-core CI machine 17 minutes instead of 25. TEST_WORKERS=0: one process.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
