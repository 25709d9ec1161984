"""Ending every sign-in of an account from the account page signs out its other browsers too."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from harness.factories import unique_username
from harness.nginx import NginxServer
from tests.support.browser import OpenTab, save_screenshot
from tests.support.pages import sign_in, sign_up


def test_end_all_sign_ins_signs_out_the_other_browser(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    username = unique_username("everywhere")
    laptop = open_tab().page
    sign_up(laptop, nginx.url, username)
    phone = open_tab().page
    sign_in(phone, nginx.url, username)

    # On the account page, behind a confirmation.
    laptop.get_by_role("link", name="Account").click()
    expect(laptop.locator(".session")).to_have_count(2)
    save_screenshot(laptop, "account")
    laptop.get_by_role("link", name="End all sign-ins").click()
    expect(laptop).to_have_url(re.compile(r"/account/sign-out-everywhere"))
    laptop.get_by_role("button", name="End all sign-ins").click()
    expect(laptop).to_have_url(re.compile(r"/login"))
    expect(laptop.get_by_text("You are signed out on every browser and device.")).to_be_visible()

    phone.goto(f"{nginx.url}/chats")
    expect(phone).to_have_url(re.compile(r"/login"))
    expect(phone.get_by_text("Your session expired")).to_be_visible()
