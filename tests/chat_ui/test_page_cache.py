"""Chat pages served again from chat-ui's page cache: always current, never someone else's.

A page is kept per user and chat under db-api's ETag for the user's data; these tests
change that data behind chat-ui's back (straight through db-api, as another replica
would) and check that the very next view shows it, and that a kept page never outlives
the session it was rendered for. Here the real db-api's ETag meets the cache; the
cache's other rules are tested in-process on the fakes: tests/inprocess/test_page_cache.py.
"""

from __future__ import annotations

import uuid

import httpx

from harness.db_api import DbApiServer
from harness.factories import add_message, user_headers
from harness.forms import Browser, user_id_of


def db_api_client(db_api: DbApiServer) -> httpx.Client:
    return httpx.Client(
        base_url=db_api.url, headers={"Authorization": f"Bearer {db_api.service_token}"}
    )


def test_a_change_made_elsewhere_shows_on_the_next_view(
    signed_in: Browser, db_api: DbApiServer
) -> None:
    chat_id = signed_in.new_chat()
    signed_in.get(f"/chats/{chat_id}")
    signed_in.get(f"/chats/{chat_id}")  # now kept
    text = f"Written by another replica {uuid.uuid4().hex[:8]}"
    with db_api_client(db_api) as client:
        add_message(client, user_id=user_id_of(db_api, signed_in), chat_id=chat_id, content=text)
    assert text in signed_in.get(f"/chats/{chat_id}").text
    # The chat list page is kept too, and follows a renamed chat.
    signed_in.get("/chats")
    with db_api_client(db_api) as client:
        client.patch(
            f"/chats/{chat_id}",
            json={"title": "Renamed behind chat-ui's back"},
            headers=user_headers(user_id_of(db_api, signed_in)),
        ).raise_for_status()
    assert "Renamed behind chat-ui&#39;s back" in signed_in.get("/chats").text
