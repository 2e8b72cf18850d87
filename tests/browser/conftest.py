"""Headless Chromium (Debian's /usr/bin/chromium, never a downloaded browser) driven by Playwright for Python."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class ChromiumLauncher:
    """Starts Playwright and Chromium on demand.

    Tests do all their database work (seeding, expected values) *before* ``launch()``: Playwright's sync API runs
    an event loop and greenlets in the test thread, under which Django refuses ORM calls (async-unsafe) and would
    open a second, unclosed connection.
    """

    def __init__(self):
        self._playwright_cm = None
        self.browser = None

    def launch(self):
        from playwright.sync_api import sync_playwright

        self._playwright_cm = sync_playwright()
        playwright = self._playwright_cm.__enter__()
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        return self.browser

    def close(self) -> None:
        if self.browser is not None:
            self.browser.close()
        if self._playwright_cm is not None:
            self._playwright_cm.__exit__(None, None, None)


@pytest.fixture
def chromium(live_db):
    """A Chromium launcher per test; depends on ``live_db`` so the browser closes before the database is emptied."""
    if not os.access(CHROMIUM, os.X_OK) or shutil.which("pdftotext") is None:
        pytest.fail("browser tests need /usr/bin/chromium and pdftotext (`make system-deps` installs them)")
    launcher = ChromiumLauncher()
    yield launcher
    launcher.close()


AXE_VERSION = "4.14.1"
AXE_DIR = Path(settings.BASE_DIR) / "var" / "node"  # git-ignored (var/)
AXE_SCRIPT = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core's browser bundle, installed with npm into var/node on first use (pinned version)."""
    if not AXE_SCRIPT.is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("the accessibility tests need npm to install axe-core (`make system-deps` installs it)")
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(AXE_DIR),
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--no-package-lock",
                f"axe-core@{AXE_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return AXE_SCRIPT
