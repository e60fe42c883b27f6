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


def sign_in_as_admin(page, kiosk, *, user: str = "a-mia", name: str = "Mia Keller") -> None:
    """At the kiosk's lobby, type an admin code and wait for the admin screen."""
    import re

    from playwright.sync_api import expect

    page.goto(kiosk.url + "/")
    page.wait_for_selector("body[data-ready=yes]")
    page.locator("#token").fill(kiosk.token("admin", user=user, name=name))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/admin(#overview)?$"))
    page.wait_for_selector("body[data-ready=yes]")
