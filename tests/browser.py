"""One headless Chromium for the browser tests: Debian's chromium driven by Playwright.

The ``browser`` fixture in conftest.py launches it once per test module with :data:`ARGS`;
a module that needs other flags (the fake microphone of the workflow tests) defines its own.
Screenshots go to $SCREENSHOT_DIR (default var/test-artifacts/screens) as test artifacts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("SCREENSHOT_DIR", Path(__file__).resolve().parents[1] / "var/test-artifacts/screens"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="chromium is not installed (scripts/setup.sh --test does)")


def launch(playwright, extra_args: list[str] | None = None):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh --test does)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS + list(extra_args or []))


def shot(page, name: str) -> None:
    """A full-page screenshot named ``name`` among the test artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
