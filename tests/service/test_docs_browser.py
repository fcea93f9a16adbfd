"""/docs and /redoc in a real browser: headless Debian Chromium, driven by Playwright, against a
live server, with every request off this server refused (an air-gapped deployment).

Skipped when Chromium or Playwright is missing, unless RECOMMENDER_REQUIRE_BROWSER=1 (CI sets
it, and .ci/run installs Debian's ``chromium``): then a missing browser fails the test.
Playwright never downloads a browser here: it launches the system one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import live_server

from recommender.service import Settings

# The binary behind Debian's /usr/bin/chromium launcher script, else whatever is on PATH.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = candidate if Path(candidate).is_file() else shutil.which(candidate)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    required = os.environ.get("RECOMMENDER_REQUIRE_BROWSER") == "1"
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable is None or sync_playwright is None:
        missing = "chromium" if executable is None else "playwright"
        if required:
            pytest.fail(f"RECOMMENDER_REQUIRE_BROWSER=1 but {missing} is not installed")
        pytest.skip(
            f"{missing} is not installed (apt-get install chromium; pip install playwright)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=LAUNCH_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    with live_server(settings.model_copy(update={"run_worker": False})) as url:
        yield url


def open_offline(browser, base_url: str, path: str):
    """A page at ``base_url + path`` whose requests anywhere else are aborted and recorded."""
    page = browser.new_page()
    blocked: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            blocked.append((route.request.resource_type, route.request.url))
            route.abort()

    page.route("**/*", only_this_server)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base_url + path)
    return page, blocked, errors


def test_docs_lists_every_operation_offline(browser, server):
    import httpx

    document = httpx.get(f"{server}/openapi.json").json()
    expected = {
        (method.upper(), path) for path, methods in document["paths"].items() for method in methods
    }
    page, blocked, errors = open_offline(browser, server, "/docs")
    try:
        page.wait_for_selector(".opblock", timeout=30_000)
        listed = set()
        for block in page.query_selector_all(".opblock"):
            method = block.query_selector(".opblock-summary-method").inner_text().strip()
            path = block.query_selector(".opblock-summary-path").get_attribute("data-path")
            listed.add((method, path))
        assert listed == expected
        # The security schemes give Swagger UI its Authorize button.
        assert page.query_selector("button.authorize") is not None
        assert page.title() == "recommender - Swagger UI"
    finally:
        page.close()
    assert blocked == [], f"/docs reached outside the server: {blocked}"
    assert errors == []


def test_redoc_renders_offline(browser, server):
    page, blocked, errors = open_offline(browser, server, "/redoc")
    try:
        # ReDoc lists each operation by its summary in the menu, and shows its path.
        page.get_by_text("User Recommendations").first.wait_for(state="attached", timeout=30_000)
        assert "/v1/users/{user_id}/recommendations" in page.content()
        content = page.content()
        for path in ("/v1/ratings", "/v1/items/{item_id}", "/v1/admin/retrain"):
            assert path in content, path
    finally:
        page.close()
    # ReDoc's bundle links its "API docs by Redocly" logo from its CDN: a missing image in
    # the menu footer, nothing the page needs. Scripts, styles, fonts, data: none outside.
    needed = [(kind, url) for kind, url in blocked if kind != "image"]
    assert needed == [], f"/redoc reached outside the server: {needed}"
    assert errors == []
