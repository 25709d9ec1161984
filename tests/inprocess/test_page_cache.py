"""Chat pages served again from chat-ui's page cache: always current, never someone else's.

A page is kept per user and chat under db-api's ETag for the user's data; these tests
change that data behind chat-ui's back (straight in the fake db-api, as another
replica would) and check that the very next view shows it, and that a kept page never
outlives the session it was rendered for. That the real db-api's ETag follows every
write is checked in tests/db_api/test_page_view.py, and together with this cache in
tests/chat_ui/test_page_cache.py.
"""

from __future__ import annotations

import re
import uuid

from harness.forms import Browser, csrf_from
from tests.support.inprocess import InProcessApp

REQUEST_ID_FIELD = re.compile(r'name="request_id" value="([^"]+)"')


def request_ids(page: str) -> list[str]:
    return REQUEST_ID_FIELD.findall(page)


def test_a_repeated_view_is_the_same_page_with_a_fresh_form_id(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    first = signed_in.get(f"/chats/{chat_id}").text
    second = signed_in.get(f"/chats/{chat_id}").text
    assert len(request_ids(first)) == len(request_ids(second)) == 1
    assert request_ids(first) != request_ids(second)
    uuid.UUID(request_ids(second)[0])
    # Filled in per response: the session's own CSRF token, in every form.
    assert csrf_from(second) == csrf_from(first)
    assert not re.search(r"(csrf|request)-[0-9a-f]{32}", second), "a marker was left unfilled"
    assert REQUEST_ID_FIELD.sub("", first) == REQUEST_ID_FIELD.sub("", second)
    # The second view was db-api's 304: the page came from the cache.
    assert inprocess.db.requests[-1] == ("GET", "/sessions/current/page", 304)


def test_a_change_made_elsewhere_shows_on_the_next_view(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    signed_in.get(f"/chats/{chat_id}")
    signed_in.get(f"/chats/{chat_id}")  # now kept
    user_id = inprocess.user_id(signed_in)
    text = f"Written by another replica {uuid.uuid4().hex[:8]}"
    inprocess.call(inprocess.db.add_message, user_id, chat_id, content=text)
    assert text in signed_in.get(f"/chats/{chat_id}").text
    # The chat list page is kept too, and follows a renamed chat.
    signed_in.get("/chats")
    inprocess.call(
        inprocess.db.rename_chat, user_id, chat_id, title="Renamed behind chat-ui's back"
    )
    assert "Renamed behind chat-ui&#39;s back" in signed_in.get("/chats").text


def test_a_kept_page_is_not_served_after_signing_out_everywhere(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    signed_in.get(f"/chats/{chat_id}")
    assert signed_in.get(f"/chats/{chat_id}").status_code == 200
    inprocess.call(inprocess.db.end_all_sessions, inprocess.user_id(signed_in))
    after = signed_in.get(f"/chats/{chat_id}")  # redirects are followed
    assert after.url.path == "/login"


def test_one_users_kept_page_never_reaches_another(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    secret = f"alice-only-{uuid.uuid4().hex[:8]}"
    signed_in.submit(f"/chats/{chat_id}/rename", {"title": secret}, form_page=f"/chats/{chat_id}")
    assert secret in signed_in.get(f"/chats/{chat_id}").text
    assert secret in signed_in.get(f"/chats/{chat_id}").text  # kept for Alice
    bob = inprocess.browser()
    bob.sign_up()
    response = bob.get(f"/chats/{chat_id}")
    assert response.status_code == 404
    assert secret not in response.text
    assert secret not in bob.get("/chats").text


def test_a_one_shot_notice_shows_once_even_over_a_kept_page(signed_in: Browser) -> None:
    keep, doomed = signed_in.new_chat(), signed_in.new_chat()
    signed_in.get("/chats")
    signed_in.get("/chats")
    deleted = signed_in.submit(f"/chats/{doomed}/delete", form_page=f"/chats/{keep}")
    assert deleted.url.path == "/chats"  # the redirect, followed, showed the notice
    assert "Chat deleted." in deleted.text
    assert "Chat deleted." not in signed_in.get("/chats").text
