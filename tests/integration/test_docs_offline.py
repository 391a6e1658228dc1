"""The API docs (/docs, /redoc) work on a cluster with no way out: every asset comes from the api.

The api runs on 127.0.0.2, not 127.0.0.1: Swagger UI skips some outside calls (its validator badge)
only when the page is on "localhost" or "127.0.0.1", and a cluster's address is neither. Requests
to anything but loopback are aborted and listed; the list must stay empty.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect, sync_playwright
from serving import serving

from sentinai.api.app import create_app
from sentinai.api.readmodel import ReadModel
from sentinai.api.settings import ApiSettings
from sentinai.common.decisions import ActionCommand, ActionRequested, ActionVerdict

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOST = "127.0.0.2"


class _NoPlanner:
    """Reading the docs sends nothing to the planner."""

    async def command(self, cmd: ActionCommand) -> ActionVerdict | None:
        raise AssertionError(f"the docs sent {cmd!r}")

    async def request(self, req: ActionRequested) -> ActionVerdict | None:
        raise AssertionError(f"the docs sent {req!r}")


@pytest.fixture
def api() -> Iterator[str]:
    async def connected() -> bool:
        return True

    app = create_app(
        ReadModel(keep_anomalies=10), settings=ApiSettings(), nats_connected=connected, commands=_NoPlanner()
    )
    with serving(app, host=HOST) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        yield launched
        launched.close()


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _offline_page(browser: Browser) -> tuple[Page, list[str], list[str]]:
    """A page that can reach only this machine; what it tried beyond is listed, not sent."""
    page = browser.new_page()
    outside: list[str] = []
    errors: list[str] = []

    def only_loopback(route: Route) -> None:
        url = route.request.url
        if url.startswith(("http:", "https:", "ws:", "wss:")) and not _is_loopback(url):
            outside.append(url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", only_loopback)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, outside, errors


def _operation(page: Page, path: str) -> Locator:
    return page.locator(".opblock-summary-path").filter(has_text=re.compile(f"^{re.escape(path)}$"))


def test_swagger_ui_lists_the_operations_with_no_network(browser: Browser, api: str) -> None:
    page, outside, errors = _offline_page(browser)
    loaded: list[str] = []
    page.on("requestfinished", lambda request: loaded.append(request.url))
    page.goto(api + "/docs", timeout=15_000)
    health = _operation(page, "/api/health")
    expect(health).to_be_visible(timeout=15_000)
    expect(_operation(page, "/api/actions/{action_id}/approve")).to_be_visible()
    # An operation opens and shows its responses: the UI works, not only its first paint.
    health.click()
    expect(page.locator(".opblock.is-open .responses-wrapper")).to_be_visible(timeout=5_000)
    assert outside == []
    assert errors == []
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in loaded)
    assert any(url.endswith("/openapi.json") for url in loaded)


def test_redoc_renders_the_api_with_no_network(browser: Browser, api: str) -> None:
    page, outside, errors = _offline_page(browser)
    response = page.goto(api + "/redoc", timeout=15_000)
    expect(page.get_by_role("heading", name=re.compile("^SentinAI API"))).to_be_visible(timeout=15_000)
    expect(page.locator("h2").filter(has_text=re.compile(r"^Health\s*$"))).to_be_visible(timeout=15_000)
    expect(page.get_by_text("/api/health").first).to_be_attached(timeout=15_000)
    # ReDoc's sidebar logo lives on its CDN: the page's policy keeps the browser from asking for it.
    assert response is not None
    assert "img-src 'self' data:" in response.headers["content-security-policy"]
    assert outside == []
    assert errors == []


def test_the_oauth2_redirect_page_is_served_locally(api: str) -> None:
    resp = httpx.get(api + "/docs/oauth2-redirect", timeout=5)
    assert resp.status_code == 200
    assert "oauth2" in resp.text.lower()
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", resp.text)
