"""/docs (Swagger UI) and /redoc (ReDoc) work with no network but db-api itself.

FastAPI's default pages load their scripts and styles from a CDN: on a machine without
internet they stay blank, and elsewhere each visit is reported to that CDN.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from harness.db_api import DbApiServer
from harness.factories import create_user
from tests.support.browser import OpenTab, cut_network_except, save_screenshot

DOCS_PAGES = ["/docs", "/redoc"]
# `http://…`, `https://…` and protocol-relative `//…`, wherever they appear in the page.
ABSOLUTE_URL = re.compile(r"""(?:https?:)?//[^\s"'<>`)]+""", re.IGNORECASE)
LINKED_ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
# ReDoc's side menu always asks for this; the page's Content-Security-Policy refuses it.
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_docs_page_names_no_other_host(db_api: DbApiServer, path: str) -> None:
    page = httpx.get(f"{db_api.url}{path}")
    assert page.status_code == 200
    db_api_host = urlsplit(db_api.url).netloc
    elsewhere = [
        url for url in ABSOLUTE_URL.findall(page.text) if urlsplit(url).netloc != db_api_host
    ]
    assert elsewhere == []


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_docs_page_lets_the_browser_fetch_only_from_db_api(db_api: DbApiServer, path: str) -> None:
    policy = httpx.get(f"{db_api.url}{path}").headers["content-security-policy"]
    directives = [directive.split() for directive in policy.split(";")]
    assert ["default-src", "'self'"] in directives
    sources = {source for _name, *values in directives for source in values}
    assert sources <= {"'self'", "'unsafe-inline'", "'none'", "data:", "blob:"}, policy


@pytest.mark.parametrize("path", DOCS_PAGES)
def test_docs_page_assets_are_served_by_db_api(db_api: DbApiServer, path: str) -> None:
    page_url = f"{db_api.url}{path}"
    assets = LINKED_ASSET.findall(httpx.get(page_url).text)
    assert any(asset.endswith(".js") for asset in assets), assets
    for asset in assets:
        response = httpx.get(urljoin(page_url, asset))
        assert response.status_code == 200, asset
        assert response.content, asset


def test_swagger_ui_lists_operations_and_authorizes_offline(
    db_api: DbApiServer, db_api_client: httpx.Client, open_tab: OpenTab
) -> None:
    user = create_user(db_api_client)
    tab = open_tab()
    page = tab.page
    leaving = cut_network_except(page, db_api.url)
    page.goto(f"{db_api.url}/docs")
    expect(page.get_by_text("Get the acting user")).to_be_visible()
    expect(page.get_by_text("Check a username and password")).to_be_visible()

    # "Authorize" with the service token, then call a route that needs it.
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator("#auth-bearer-value").fill(db_api.service_token)
    dialog.locator("button.authorize").click()
    expect(dialog.get_by_text("Logout", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    operation = page.locator("#operations-users-get_current_user")
    operation.get_by_text("Get the acting user").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_placeholder("X-User-Id").fill(user["id"])
    operation.get_by_role("button", name="Execute").click()
    live_response = operation.locator(".live-responses-table .response")
    expect(live_response.locator(".response-col_status")).to_have_text("200")
    expect(live_response).to_contain_text(user["username"])

    save_screenshot(page, "db-api-swagger-ui-offline")
    assert leaving == []
    assert tab.script_errors == []


def test_redoc_lists_operations_offline(db_api: DbApiServer, open_tab: OpenTab) -> None:
    tab = open_tab()
    page = tab.page
    leaving = cut_network_except(page, db_api.url)
    page.goto(f"{db_api.url}/redoc")
    expect(page.get_by_role("heading", name="Get the acting user")).to_be_visible()
    expect(page.get_by_role("heading", name="Check a username and password")).to_be_visible()
    # The search runs in a worker; the page's policy must let it start.
    page.get_by_placeholder("Search...").fill("acting user")
    expect(page.locator("[role=search]").get_by_text("Get the acting user")).to_be_visible()

    save_screenshot(page, "db-api-redoc-offline")
    assert leaving == []
    assert [error for error in tab.script_errors if REDOCLY_LOGO not in error] == []
