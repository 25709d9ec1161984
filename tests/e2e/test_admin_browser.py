"""The admin flow in a real browser through nginx: the first account is the admin, the
second waits, the admin approves, the second chats.

On a db-api of its own with the shipped `SIGNUP_MODE=approval`, so this module's first
sign-up is the install's first account.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from harness.chat_ui import running_chat_ui
from harness.db_api import running_db_api
from harness.factories import unique_username
from harness.llama import LlamaServer
from harness.nginx import NginxServer, start_nginx
from harness.postgres import PostgresCluster
from harness.processes import free_port
from tests.e2e.test_accessibility_browser import violations
from tests.support.browser import OpenTab, save_screenshot
from tests.support.pages import PASSWORD, send, sign_in


@pytest.fixture(scope="module")
def install(
    postgres: PostgresCluster, llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    """A new install: nobody has signed up yet."""
    with (
        running_db_api(postgres, extra_env={"SIGNUP_MODE": "approval"}) as db_api,
        running_chat_ui(db_api, llama_server.url) as chat_ui,
    ):
        config_dir: Path = tmp_path_factory.mktemp("nginx-admin")
        port = free_port()
        upstream = chat_ui.url.removeprefix("http://")
        process = start_nginx(config_dir=config_dir, chat_ui_upstream=upstream, port=port)
        try:
            yield NginxServer(
                url=f"http://127.0.0.1:{port}", process=process, config_dir=config_dir
            )
        finally:
            process.stop()


def create_account(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()


def test_the_first_user_approves_the_second_who_then_chats(
    install: NginxServer, open_tab: OpenTab
) -> None:
    admin_name, newcomer_name = unique_username("owner"), unique_username("newcomer")
    admin_tab, newcomer_tab = open_tab(), open_tab()
    admin, newcomer = admin_tab.page, newcomer_tab.page

    create_account(admin, install.url, admin_name)
    expect(admin).to_have_url(re.compile(r"/chats$"))
    expect(admin.get_by_role("link", name="Admin")).to_be_visible()

    create_account(newcomer, install.url, newcomer_name)
    expect(newcomer.get_by_role("heading", name="Waiting for approval")).to_be_visible()
    expect(newcomer.get_by_role("link", name="Admin")).to_have_count(0)
    save_screenshot(newcomer, "waiting-for-approval")

    admin.get_by_role("link", name="Admin").click()
    expect(admin.get_by_role("heading", name="Users")).to_be_visible()
    row = admin.get_by_role("row").filter(has_text=newcomer_name)
    expect(row).to_contain_text("Waiting for approval")
    expect(admin.get_by_text("never what")).to_be_visible()
    save_screenshot(admin, "admin-users")
    found = violations(admin, "admin users")
    row.get_by_role("button", name=f"Approve {newcomer_name}").click()
    expect(admin.get_by_role("status")).to_contain_text(f"{newcomer_name} is approved")
    expect(admin.get_by_role("row").filter(has_text=newcomer_name)).to_contain_text("Active")

    newcomer.get_by_role("link", name="Check again").click()
    expect(newcomer.get_by_role("textbox", name="Message")).to_be_visible()
    reply = send(newcomer, "Reply with just one word: hello.")
    expect(reply).to_have_attribute("data-status", "complete")
    assert reply.locator(".message__content").inner_text().strip()

    admin.get_by_role("link", name="Invites").click()
    admin.get_by_role("button", name="Make an invite link").click()
    link = admin.get_by_label("The link (shown only now)")
    # The page names a path; the script shows the whole address the admin reached.
    expect(link).to_have_value(re.compile(rf"^{re.escape(install.url)}/signup\?invite="))
    save_screenshot(admin, "admin-invite")
    found += violations(admin, "admin invite link")
    invite_url = link.input_value()

    admin.goto(f"{install.url}/admin/settings")
    admin.get_by_label("Closed: only people with an invite link").check()
    admin.get_by_role("button", name="Save settings").click()
    expect(admin.get_by_role("status")).to_contain_text("Settings saved")
    save_screenshot(admin, "admin-settings")
    found += violations(admin, "admin settings")

    invited = open_tab().page
    invited.goto(f"{install.url}/signup")
    expect(invited.get_by_text("Sign-up is closed on this server")).to_be_visible()
    invited.goto(invite_url)
    expect(invited.get_by_text("You were invited")).to_be_visible()
    invited.get_by_label("Username").fill(unique_username("invited"))
    invited.get_by_label("Password", exact=True).fill(PASSWORD)
    invited.get_by_label("Repeat password").fill(PASSWORD)
    invited.get_by_role("button", name="Create account").click()
    expect(invited.get_by_role("textbox", name="Message")).to_be_visible()

    admin.get_by_role("link", name="Audit log").click()
    for event in ("Signed up", "Approved", "Invite made", "Settings changed"):
        expect(admin.get_by_role("cell", name=event, exact=True).first).to_be_visible()
    save_screenshot(admin, "admin-audit")
    found += violations(admin, "admin audit log") + violations(newcomer, "waiting for approval")

    # Someone else's admin pages do not exist for the newcomer.
    newcomer.goto(f"{install.url}/admin/users")
    expect(newcomer.get_by_role("heading", name="Not found")).to_be_visible()
    sign_in(open_tab().page, install.url, newcomer_name)
    assert found == [], "\n".join(found)
    # Chromium logs the waiting page's 403 and the 404 as failed loads; nothing else failed.
    for tab in (admin_tab, newcomer_tab):
        assert [e for e in tab.script_errors if "Failed to load resource" not in e] == []
