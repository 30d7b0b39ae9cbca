"""Debian's chromium driven by Playwright, for the browser tests (technician page, operator console)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def chromium(*extra_args: str) -> Iterator[Any]:
    """A headless chromium; a failure, not a skip, without it: where these tests are selected, it must be there."""
    if CHROMIUM is None:
        pytest.fail("the browser tests need Debian's chromium (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", *extra_args])
        try:
            yield browser
        finally:
            browser.close()
