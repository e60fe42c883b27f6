"""Schemathesis (every check) against a real kiosk server with the demo property: no 5xx,
no answer that disagrees with docs/openapi.yaml, no schema-valid request refused.

CI runs a short, seeded budget as the admin; the long run (docs/security.md), every role:
``FUZZ_EXAMPLES=500 FUZZ_SEED=random FUZZ_ROLES=guest,staff,admin .venv/bin/pytest tests/test_api_fuzz.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import loaded
import pytest
import requests
from harness import BIN, Kiosk

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "8")
SEED = os.environ.get("FUZZ_SEED", "20261201")
ROLES = [r for r in os.environ.get("FUZZ_ROLES", "admin").split(",") if r]
#: longer than a test lets a model run (tests/loaded.py): a model triggered on a loaded machine
#: answers late, not never
REQUEST_TIMEOUT = int(loaded.MODEL_TIMEOUT_SECONDS) + 60
pytestmark = pytest.mark.skipif(not (BIN / "st").exists() and not shutil.which("st"),
                                reason="schemathesis is not installed (pip install -e .[test])")


def run_st(schema: Path, url: str, config: Path, headers: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    # every check (the config file enables all; on the command line they would override its
    # per-operation settings); one worker: hypothesis' lambda descriptions call ast.parse,
    # which is not thread-safe on Python 3.11 ("AST constructor recursion depth mismatch")
    args = [str(BIN / "st"), "--config-file", str(config), "run", str(schema), "--url", url,
            "--max-examples", EXAMPLES, "--workers", "1", "--request-timeout", str(REQUEST_TIMEOUT), "--no-color"]
    if SEED != "random":
        args += ["--seed", SEED]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    return subprocess.run(args, capture_output=True, text=True, timeout=3500, cwd=tmp_path)


@pytest.mark.timeout(3600)  # a few hundred generated requests on a loaded machine (thousands in the long run)
@pytest.mark.parametrize("role", ROLES)
def test_the_kiosk_api_holds_to_its_openapi_document(tmp_path, role):
    # the guest's own limits (requests, questions, offers a minute) would turn most of a
    # guest's run into RATE_LIMITED answers: raised here, tested in test_input_hardening.py
    k = Kiosk(tmp_path, "fuzz")
    k.env.update({f"KIOSK__GUEST__MAX_{w}_PER_MINUTE": "1000" for w in ("REQUESTS", "QUESTIONS", "OFFERS")})
    seeded = json.loads(k.cli("kiosk", "demo", "seed").stdout.strip().splitlines()[-1])
    k.serve()
    try:
        user = {"guest": seeded["guestConfirmation"], "staff": seeded["staffId"]}.get(role, "fuzz-admin")
        token = k.cli("kiosk", "token", "create", "--role", role, "--hotel", "demo", "--user", user,
                      "--reusable").stdout.strip()
        r = requests.post(k.url + "/api/qr/scan", json={"qrToken": token, "hotelId": "demo"}, timeout=60)
        jwt = r.json()["sessionJWT"]
        p = run_st(ROOT / "docs/openapi.yaml", k.url, ROOT / "tests/fuzz/kiosk.toml",
                   {"Authorization": f"Bearer {jwt}"}, tmp_path)
        assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
        assert requests.get(k.url + "/healthz", timeout=60).status_code == 200
    finally:
        k.stop_all()


@pytest.mark.timeout(3600)
def test_the_cloud_api_holds_to_its_openapi_document(tmp_path):
    from harness import Cloud

    cloud = Cloud(tmp_path).start()
    try:
        cred = cloud.device("fuzz", "demo")
        p = run_st(ROOT / "docs/cloud-openapi.yaml", cloud.url, ROOT / "tests/fuzz/cloud.toml",
                   {"Authorization": f"Bearer {cred}"}, tmp_path)
        assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
        assert requests.get(cloud.url + "/sync/v1/health", headers={"Authorization": f"Bearer {cred}"},
                            timeout=60).status_code == 200
    finally:
        cloud.stop()
