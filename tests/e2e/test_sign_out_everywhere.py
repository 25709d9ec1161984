"""Ending every sign-in of an account from the page signs out its other browsers too."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from harness.factories import unique_username
from harness.nginx import NginxServer
from tests.support.browser import OpenTab
from tests.support.pages import sign_in, sign_up


def test_end_all_sign_ins_signs_out_the_other_browser(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    username = unique_username("everywhere")
    laptop = open_tab().page
    sign_up(laptop, nginx.url, username)
    phone = open_tab().page
    sign_in(phone, nginx.url, username)

    laptop.get_by_role("button", name="End all sign-ins").click()
    expect(laptop).to_have_url(re.compile(r"/login"))

    phone.goto(f"{nginx.url}/chats")
    expect(phone).to_have_url(re.compile(r"/login"))
    expect(phone.get_by_text("Your session expired")).to_be_visible()
