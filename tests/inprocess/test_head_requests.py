"""HEAD answers like GET on every GET route: the same status and headers, and no body.

Routes come from the app itself, so a GET route added later is checked here too.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from chat_ui.main import app
from harness.forms import Browser, chat_id_of
from tests.support.inprocess import InProcessApp
from tests.support.routes import route_table

GET_ROUTES = sorted(path for method, path in route_table(app) if method == "GET")
# Different on every answer (date), framing for a body that is sent (transfer-encoding,
# added by the server), or left out of HEAD on purpose: a HEAD changes no session, so
# it sends no cookie.
NOT_COMPARED = {"date", "transfer-encoding", "set-cookie"}


def comparable(headers: httpx.Headers) -> list[tuple[str, str]]:
    return sorted(
        (name, value) for name, value in headers.multi_items() if name not in NOT_COMPARED
    )


@pytest.fixture
def own_chat(signed_in: Browser, inprocess: InProcessApp) -> tuple[str, int]:
    """The signed-in user's chat and its finished reply (a stream that ends at once)."""
    response = signed_in.submit("/chats", {"content": "Hello"})
    chat_id = chat_id_of(response)
    reply = inprocess.stored_chat(signed_in, chat_id)["messages"][-1]
    assert reply["status"] == "complete"
    return chat_id, reply["id"]


def concrete(template: str, chat_id: str, reply_id: int) -> str:
    # An admin page names an account or an invite: a made-up one is as good as any here.
    return template.format(
        chat_id=chat_id, message_id=reply_id, user_id=uuid.uuid4(), invite_id=uuid.uuid4()
    )


def assert_head_answers_like_get(client: httpx.Client, path: str) -> None:
    get = client.get(path, follow_redirects=False)
    head = client.head(path, follow_redirects=False)
    assert head.status_code == get.status_code, path
    assert head.content == b""
    assert comparable(head.headers) == comparable(get.headers), path


@pytest.mark.parametrize("template", GET_ROUTES)
def test_head_answers_like_get_signed_in(
    signed_in: Browser, own_chat: tuple[str, int], template: str
) -> None:
    chat_id, reply_id = own_chat
    assert_head_answers_like_get(signed_in.http, concrete(template, chat_id, reply_id))


@pytest.mark.parametrize("template", GET_ROUTES)
def test_head_answers_like_get_signed_out(
    inprocess: InProcessApp, own_chat: tuple[str, int], template: str
) -> None:
    chat_id, reply_id = own_chat
    stranger = inprocess.client()
    assert_head_answers_like_get(stranger, concrete(template, chat_id, reply_id))


def test_head_leaves_a_one_shot_notice_for_the_page_that_shows_it(signed_in: Browser) -> None:
    chat_id = signed_in.new_chat()
    deleted = signed_in.http.post(
        f"/chats/{chat_id}/delete",
        data={"csrf_token": signed_in.csrf_token()},
        follow_redirects=False,
    )
    assert deleted.status_code == 303
    # The chat list would use the notice up; a HEAD shows nothing, so it must not.
    head = signed_in.http.head("/chats")
    assert head.status_code == 200
    assert "set-cookie" not in head.headers
    assert "Chat deleted." in signed_in.get("/chats").text
