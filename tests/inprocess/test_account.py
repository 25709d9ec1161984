"""The account page through chat-ui's real routes: sign-ins listed and ended, a new
password, every chat in one zip, the account deleted, and the sign-in page's notices.

What db-api itself guarantees (one transaction, the throttle's counts, the cascade)
is tested against PostgreSQL in tests/db_api/test_account.py.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import httpx
import pytest

from harness.forms import Browser
from tests.support.inprocess import InProcessApp

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_ON_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
NEW_PASSWORD = "a brand new passphrase"
SESSION_ROW = re.compile(r'<li class="session">(.*?)</li>', re.DOTALL)
SESSION_ID = re.compile(r'name="session_id" value="([^"]+)"')


def browser_at(inprocess: InProcessApp, address: str, user_agent: str) -> Browser:
    """A browser with JavaScript off, seen at `address` with `user_agent`."""
    client = inprocess.client(
        follow_redirects=True, client=(address, 50000), headers={"User-Agent": user_agent}
    )
    return Browser(http=client)


def sign_in(browser: Browser, username: str, password: str) -> httpx.Response:
    browser.username, browser.password = username, password
    return browser.submit(
        "/login", {"username": username, "password": password}, form_page="/login"
    )


@pytest.fixture
def laptop(inprocess: InProcessApp) -> Browser:
    browser = browser_at(inprocess, "203.0.113.7", FIREFOX)
    browser.sign_up()
    return browser


@pytest.fixture
def phone(inprocess: InProcessApp, laptop: Browser) -> Browser:
    """The same account, signed in on another device."""
    browser = browser_at(inprocess, "198.51.100.23", SAFARI_ON_IPHONE)
    assert sign_in(browser, laptop.username, laptop.password).url.path == "/chats"
    return browser


def signed_in(browser: Browser) -> bool:
    return browser.get("/chats").url.path == "/chats"


def session_rows(page: str) -> list[str]:
    return SESSION_ROW.findall(page)


def end_session(browser: Browser, session_id: str) -> httpx.Response:
    return browser.submit("/account/sessions/end", {"session_id": session_id}, form_page="/account")


def change_password(browser: Browser, current: str, new: str = NEW_PASSWORD) -> httpx.Response:
    form = {"current_password": current, "new_password": new, "new_password_confirm": new}
    return browser.submit("/account/password", form, form_page="/account")


def delete_account(browser: Browser, password: str) -> httpx.Response:
    return browser.submit("/account/delete", {"password": password}, form_page="/account/delete")


# The page and its sign-ins


def test_the_top_bar_links_the_account_page(laptop: Browser) -> None:
    page = laptop.get("/chats").text
    assert '<a class="button button--quiet" href="/account">Account</a>' in page
    assert "End all sign-ins" not in page  # on the account page, behind a confirmation


def test_the_page_lists_every_browser_of_the_account_and_no_one_elses(
    inprocess: InProcessApp, laptop: Browser, phone: Browser
) -> None:
    stranger = browser_at(inprocess, "192.0.2.99", "Stranger's browser")
    stranger.sign_up()
    response = laptop.get("/account")
    assert response.status_code == 200
    rows = session_rows(response.text)
    assert len(rows) == 2
    this = next(row for row in rows if "This browser" in row)
    other = next(row for row in rows if "This browser" not in row)
    assert "Firefox on Linux" in this and "203.0.113.7" in this
    assert "Sign out this one" not in this  # the top bar's Sign out is for this one
    assert "Safari on iOS" in other and "198.51.100.23" in other
    assert "Sign out this one" in other
    assert "<time datetime=" in other
    assert "Stranger" not in response.text and "192.0.2.99" not in response.text


def test_what_a_browser_sends_is_shown_escaped(inprocess: InProcessApp) -> None:
    browser = browser_at(inprocess, "192.0.2.1", '<script>alert("ua")</script>')
    browser.sign_up()
    page = browser.get("/account").text
    assert '<script>alert("ua")' not in page
    assert "&lt;script&gt;alert(&#34;ua&#34;)&lt;/script&gt;" in page


def test_signing_out_another_browser_keeps_this_one(laptop: Browser, phone: Browser) -> None:
    (phone_id,) = SESSION_ID.findall(laptop.get("/account").text)
    response = laptop.submit(
        "/account/sessions/end", {"session_id": phone_id}, form_page="/account"
    )
    assert response.url.path == "/account"
    assert "That browser was signed out." in response.text
    assert len(session_rows(response.text)) == 1
    assert not signed_in(phone)
    assert signed_in(laptop)
    again = end_session(laptop, phone_id)
    assert again.status_code == 404
    assert "That sign-in has ended already." in again.text


def test_ending_all_sign_ins_asks_first_then_ends_every_one(
    laptop: Browser, phone: Browser
) -> None:
    confirm = laptop.get("/account/sign-out-everywhere")
    assert confirm.status_code == 200
    assert 'action="/logout"' in confirm.text and 'name="everywhere" value="1"' in confirm.text
    assert signed_in(phone)  # asking changed nothing
    response = laptop.submit("/logout", {"everywhere": "1"}, form_page="/account")
    assert response.url.path == "/login"
    assert "You are signed out on every browser and device." in response.text
    assert not signed_in(phone) and not signed_in(laptop)


def test_signing_out_says_so_once(laptop: Browser) -> None:
    response = laptop.submit("/logout")
    assert response.url.path == "/login"
    assert '<p class="alert alert--info" role="status">You are signed out.</p>' in response.text
    assert "You are signed out." not in laptop.get("/login").text


def test_the_account_pages_need_a_sign_in(browser: Browser) -> None:
    for path in ("/account", "/account/sign-out-everywhere", "/account/delete", "/account/export"):
        response = browser.get(path)
        assert response.url.path == "/login", path
        assert response.url.params["next"] == path


# A new password


def test_a_wrong_current_password_shows_the_form_again_and_changes_nothing(
    inprocess: InProcessApp, laptop: Browser, phone: Browser
) -> None:
    response = change_password(laptop, "not my password")
    assert response.status_code == 403
    assert "That is not your current password." in response.text
    assert 'action="/account/password"' in response.text
    assert "not my password" not in response.text and NEW_PASSWORD not in response.text
    assert len(session_rows(response.text)) == 2  # the rest of the page is there too
    assert inprocess.call(inprocess.db.accepts_password, laptop.username, laptop.password)
    assert signed_in(phone) and signed_in(laptop)


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("", NEW_PASSWORD, NEW_PASSWORD, "Enter your current password."),
        ("whatever1", "short", "short", "Passwords are 8 to 128 characters long."),
        ("whatever1", NEW_PASSWORD, NEW_PASSWORD + "!", "The two passwords do not match."),
    ],
)
def test_a_new_password_is_checked_first(
    inprocess: InProcessApp, laptop: Browser, current: str, new: str, confirm: str, message: str
) -> None:
    form = {"current_password": current, "new_password": new, "new_password_confirm": confirm}
    response = laptop.submit("/account/password", form, form_page="/account")
    assert response.status_code == 422
    assert message in response.text
    assert inprocess.call(inprocess.db.accepts_password, laptop.username, laptop.password)


def test_a_new_password_signs_out_the_other_browsers_only(
    inprocess: InProcessApp, laptop: Browser, phone: Browser
) -> None:
    response = change_password(laptop, laptop.password)
    assert response.url.path == "/account"
    assert "Your password was changed. Every other browser was signed out." in response.text
    assert signed_in(laptop)
    assert not signed_in(phone)
    old_password = laptop.password
    visitor = inprocess.browser()
    assert sign_in(visitor, laptop.username, old_password).status_code == 401
    assert sign_in(visitor, laptop.username, NEW_PASSWORD).url.path == "/chats"


def test_guessing_the_current_password_is_throttled(laptop: Browser) -> None:
    for _attempt in range(5):
        assert change_password(laptop, "a guess").status_code == 403
    response = change_password(laptop, laptop.password)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert "Too many attempts. Try again in" in response.text


# Deleting the account


def test_a_wrong_password_deletes_nothing(inprocess: InProcessApp, laptop: Browser) -> None:
    laptop.new_chat()
    before = inprocess.everything_stored(laptop)
    confirm = laptop.get("/account/delete")
    assert confirm.status_code == 200 and 'type="password"' in confirm.text
    for password, status, message in (
        ("", 422, "Enter your password to delete your account."),
        ("not my password", 403, "That is not your current password."),
    ):
        response = delete_account(laptop, password)
        assert response.status_code == status
        assert message in response.text
        assert 'action="/account/delete"' in response.text
        if password:
            assert password not in response.text
    assert inprocess.everything_stored(laptop) == before
    assert signed_in(laptop)


def test_deleting_the_account_removes_it_with_every_chat_and_signs_out(
    inprocess: InProcessApp, laptop: Browser, phone: Browser
) -> None:
    user_id = inprocess.user_id(laptop)
    for _chat in range(2):
        chat_id = laptop.new_chat()
        inprocess.call(inprocess.db.add_message, user_id, chat_id, content="Keep this?")
    bystander = inprocess.browser()
    bystander.sign_up()
    bystanders_chat = bystander.new_chat()
    response = delete_account(laptop, laptop.password)
    assert response.url.path == "/login"
    assert "Your account was deleted, with all of its chats." in response.text
    db = inprocess.db
    assert inprocess.call(lambda: user_id not in db.users)
    assert inprocess.call(lambda: [c for c in db.chats.values() if c.owner_id == user_id]) == []
    assert not inprocess.call(
        lambda: [m for m in db.messages.values() if m.content == "Keep this?"]
    )
    assert not signed_in(laptop) and not signed_in(phone)
    assert sign_in(inprocess.browser(), laptop.username, laptop.password).status_code == 401
    assert inprocess.stored_chat(bystander, bystanders_chat)["id"] == bystanders_chat


# Every chat in one download


def exported(response: httpx.Response) -> dict[str, bytes]:
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert int(response.headers["content-length"]) == len(response.content)
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def test_the_export_holds_every_chat_as_markdown_and_json_and_nothing_else(
    inprocess: InProcessApp, laptop: Browser
) -> None:
    user_id = inprocess.user_id(laptop)
    titles = [f"Chat {number}" for number in range(22)] + ["Plans: a/b?", "plans: A/B?", "Ünïcode"]
    for title in titles:
        chat = inprocess.call(inprocess.db.create_chat, user_id, title=title)
        inprocess.call(inprocess.db.add_message, user_id, chat["id"], content=f"About {title}")
    stranger = inprocess.browser()
    stranger.sign_up()
    strangers_chat = inprocess.call(
        inprocess.db.create_chat, inprocess.user_id(stranger), title="Stranger's secret"
    )
    response = laptop.get("/account/export")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith(f'attachment; filename="chats-{laptop.username}-')
    files = exported(response)

    (folder,) = {name.split("/")[0] for name in files}
    assert folder == disposition.split('"')[1].removesuffix(".zip")
    stems = {name.split("/")[1].rsplit(".", 1)[0] for name in files} - {"index"}
    assert len(stems) == len(titles)
    assert set(files) == {f"{folder}/index.md"} | {
        f"{folder}/{stem}.{extension}" for stem in stems for extension in ("md", "json")
    }
    # Unsafe characters gone, no name twice (whatever the case), the title still readable.
    assert all(not set('/\\:*?"<>|') & set(stem) for stem in stems)
    titled = {stem.split(" ", 1)[1].casefold() for stem in stems}
    assert {"plans a b", "plans a b (2)", "ünïcode"} <= titled

    chats: list[dict[str, Any]] = [
        json.loads(content) for name, content in files.items() if name.endswith(".json")
    ]
    assert sorted(chat["chat"]["title"] for chat in chats) == sorted(titles)
    for chat in chats:
        assert [m["content"] for m in chat["messages"]] == [f"About {chat['chat']['title']}"]
        markdown = files[f"{folder}/{_stem_of(files, chat['chat']['id'])}.md"].decode()
        assert markdown.startswith(f"# {chat['chat']['title']}\n")
    index = files[f"{folder}/index.md"].decode()
    assert f"{len(titles)} chats" in index
    assert all(f"[{title}]" in index for title in titles)
    everything = b"".join(files.values())
    assert b"Stranger" not in everything
    assert strangers_chat["id"].encode() not in everything


def _stem_of(files: dict[str, bytes], chat_id: str) -> str:
    """The file stem of the chat whose JSON names `chat_id`."""
    for name, content in files.items():
        if name.endswith(".json") and json.loads(content)["chat"]["id"] == chat_id:
            return name.split("/")[1].removesuffix(".json")
    raise AssertionError(f"no JSON file for chat {chat_id}")


def test_an_export_without_chats_is_an_index_only(laptop: Browser) -> None:
    files = exported(laptop.get("/account/export"))
    assert len(files) == 1
    (index,) = files.values()
    assert "0 chats" in index.decode()
