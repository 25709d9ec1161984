"""The chat menus, the delete dialog, search as you type and editing in place, in a real
Chromium through nginx: what closes them, where the focus goes, what they change."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from harness.db_api import DbApiServer
from harness.factories import add_message, auth_headers, create_chat, unique_username
from harness.nginx import NginxServer
from tests.support.browser import OpenTab
from tests.support.pages import PASSWORD, latest_reply, new_chat, send, sign_up


@pytest.fixture
def db_client(db_api: DbApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        yield client


def user_with_chats(page: Page, base_url: str, db_client: httpx.Client, word: str) -> list[str]:
    """Sign up in the page; two chats, the first of 40 messages with `word` in one."""
    username = unique_username("menus")
    sign_up(page, base_url, username)
    owner = db_client.post(
        "/users/verify", json={"username": username, "password": PASSWORD}
    ).json()["id"]
    chats = [create_chat(db_client, user_id=owner, title=t) for t in ("Trip ideas", "Groceries")]
    for number in range(20):
        found = f"Is **{word}** worth a visit?" if number == 3 else f"Question {number}?"
        add_message(db_client, user_id=owner, chat_id=chats[0]["id"], content=found)
        add_message(
            db_client,
            user_id=owner,
            chat_id=chats[0]["id"],
            role="assistant",
            content=f"Answer {number}.\n\n" + "More of the answer.\n\n" * 3,
        )
    return [f"/chats/{chat['id']}" for chat in chats]


def test_the_chat_menu_closes_on_escape_outside_and_after_renaming(
    nginx: NginxServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    page = open_tab().page
    trip, _ = user_with_chats(page, nginx.url, db_client, "lagoon")
    page.goto(f"{nginx.url}{trip}")
    trigger = page.locator(".chat-header summary")
    panel = page.locator(".chat-header .menu__panel")
    title_field = page.locator(".chat-header").get_by_label("Rename")

    trigger.click()
    expect(panel).to_be_visible()
    expect(title_field).to_be_focused()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(trigger).to_be_focused()

    trigger.click()
    expect(panel).to_be_visible()
    page.locator(".conversation__scroll").click(position={"x": 20, "y": 20})
    expect(panel).to_be_hidden()

    trigger.click()
    title_field.fill("Trip to the lagoon")
    title_field.press("Enter")
    expect(page.get_by_role("heading", name="Trip to the lagoon", exact=True)).to_be_visible()
    expect(
        page.locator("nav.sidebar").get_by_role("link", name="Trip to the lagoon")
    ).to_be_visible()
    expect(panel).to_be_hidden()


def test_deleting_from_the_sidebar_asks_in_a_dialog_and_the_notice_moves_nothing(
    nginx: NginxServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    page = open_tab().page
    user_with_chats(page, nginx.url, db_client, "harbour")
    page.goto(f"{nginx.url}/chats")
    heading = page.locator("nav.sidebar").get_by_role("heading", name="Your chats")
    before = heading.bounding_box()
    item = page.locator(".chat-list__item", has_text="Groceries")
    trigger = item.locator("summary")

    trigger.click()
    item.get_by_role("link", name="Delete…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Delete “Groceries”?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(trigger).to_be_focused()

    trigger.click()
    item.get_by_role("link", name="Delete…").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").filter(has_text="Chat deleted.")).to_be_visible()
    expect(page.locator(".chat-list__item", has_text="Groceries")).to_have_count(0)
    expect(page.locator(".chat-list__item", has_text="Trip ideas")).to_have_count(1)
    # The notice floats over the page: the sidebar starts where it did.
    assert heading.bounding_box() == before


def test_search_answers_as_you_type_and_opens_the_matching_message(
    nginx: NginxServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    page = open_tab().page
    word = "zanzibar" + unique_username("w")[-6:].lower()
    user_with_chats(page, nginx.url, db_client, word)
    page.goto(f"{nginx.url}/chats")
    page.get_by_role("searchbox", name="Search your chats").press_sequentially(word, delay=20)
    results = page.get_by_role("region", name="Search results")
    expect(results).to_contain_text("1 chat matches")
    # No page was loaded for it; the snippet is plain text with the word marked.
    expect(page).to_have_url(re.compile(r"/chats$"))
    expect(results.locator("mark")).to_have_text(word)
    expect(results).not_to_contain_text("**")

    results.get_by_role("link", name="Trip ideas").click()
    expect(page).to_have_url(re.compile(r"/chats/[0-9a-f-]{36}#message-\d+$"))
    target = page.locator(".message", has_text=word)
    expect(target).to_be_in_viewport()
    expect(target).to_have_css("outline-style", "solid")
    expect(page.locator(".message").last).not_to_be_in_viewport()


def test_editing_in_place_has_the_message_box_keys_and_the_reply_ends_in_view(
    nginx: NginxServer, open_tab: OpenTab
) -> None:
    page = open_tab().page
    sign_up(page, nginx.url, unique_username("editor"))
    new_chat(page, nginx.url)
    expect(send(page, "Reply with just one word: apple.")).to_have_attribute(
        "data-status", "complete"
    )
    question = page.locator(".message--user").last
    edit = question.locator("summary", has_text="Edit")
    box = question.get_by_label("Revised text")

    edit.click()
    expect(box).to_be_focused()
    expect(box).to_have_value("Reply with just one word: apple.")
    # In place: the text shows once, in the box.
    expect(question.locator(".message__content")).to_be_hidden()
    box.press("Escape")
    expect(box).to_be_hidden()
    expect(edit).to_be_focused()
    expect(question.locator(".message__content")).to_have_text("Reply with just one word: apple.")

    edit.click()
    box.fill("Reply with just one word: pear.")
    box.press("Shift+Enter")
    expect(box).to_have_value("Reply with just one word: pear.\n")
    # The edit starts a reply; the page reloads to follow it.
    with page.expect_navigation():
        box.press("Enter")
    expect(page.locator(".message--user .message__content")).to_have_text(
        ["Reply with just one word: pear."]
    )
    reply = latest_reply(page)
    expect(reply).to_have_attribute("data-status", "complete")
    # The end of the reply and its actions are above the message box, not behind it.
    regenerate = page.get_by_role("button", name="Regenerate")
    expect(regenerate).to_be_in_viewport()
    expect(reply.locator(".message__content")).to_be_in_viewport()

    with page.expect_navigation():
        regenerate.click()
    expect(latest_reply(page)).to_have_attribute("data-status", "complete")
    expect(page.get_by_role("button", name="Regenerate")).to_be_in_viewport()
    expect(page.locator(".message--assistant")).to_have_count(1)
