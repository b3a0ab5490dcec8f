"""A real browser for the dashboard tests: Debian's chromium driven by Playwright.

Without chromium the browser tests are skipped on a laptop and fail under CI=true, where
`.ci/run` installs it. With CONVEYOR_SCREENSHOTS=1 the tests also save the screenshots the
README shows (docs/images/dashboard-*.png).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CONVEYOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        _unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(name="page")
def page_fixture(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own cookies) and page; failing on any script error."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    """Save docs/images/dashboard-<name>.png when CONVEYOR_SCREENSHOTS is set."""
    if not os.environ.get("CONVEYOR_SCREENSHOTS"):
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)  # let relative times and live parts settle
    page.screenshot(path=str(IMAGES / f"dashboard-{name}.png"), full_page=full_page)
