"""Chats through chat-ui's real pages, against the real db-api and the real model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import markupsafe
import pytest

from tests.support.chat_ui import ChatUiServer, running_chat_ui, start_chat_ui
from tests.support.db_api import DbApiServer
from tests.support.forms import Browser, chat_id_of, stored_chat, textarea_text
from tests.support.llama import LlamaServer
from tests.support.processes import ServiceProcess, free_port

QUESTION = "Reply with just one word: hello."
MODEL_UNREACHABLE = "The language model is not reachable right now."


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connection refused, like a stopped server."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def chat_ui_without_model(db_api: DbApiServer) -> Iterator[ChatUiServer]:
    """A second chat-ui on the same database and session key, whose model is down."""
    with running_chat_ui(db_api, closed_port_url()) as server:
        yield server


@pytest.fixture(scope="module")
def chat_ui_without_database(llama_server: LlamaServer, db_api: DbApiServer) -> Iterator[str]:
    """A chat-ui whose db-api is down; it accepts the main chat-ui's cookies."""
    port = free_port()
    process: ServiceProcess = start_chat_ui(
        port=port,
        db_api_url=closed_port_url(),
        lm_api_url=llama_server.url,
        service_token=db_api.service_token,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def test_new_chat_starts_with_the_opening_message(signed_in: Browser) -> None:
    chat_id = signed_in.new_chat()
    page = signed_in.get(f"/chats/{chat_id}")
    assert page.status_code == 200
    assert "Hello, how can I assist you today?" in page.text
    assert f'href="/chats/{chat_id}"' in page.text  # listed in the sidebar
    assert '<label for="content"' in page.text


def test_sending_a_message_stores_a_real_reply(signed_in: Browser, db_api: DbApiServer) -> None:
    chat_id = signed_in.new_chat()
    response = signed_in.submit(f"/chats/{chat_id}/messages", {"content": f"  {QUESTION}\n"})
    assert response.status_code == 200
    assert response.url.path == f"/chats/{chat_id}"
    assert QUESTION in response.text

    chat = stored_chat(db_api, signed_in, chat_id)
    assert chat["title"] == QUESTION
    roles = [(m["role"], m["status"]) for m in chat["messages"]]
    assert roles == [("assistant", "complete"), ("user", "complete"), ("assistant", "complete")]
    assert chat["messages"][1]["content"] == QUESTION
    reply = chat["messages"][2]["content"]
    assert reply.strip()
    # The reply is shown as rendered markdown; its words appear in the page.
    first_word = reply.split()[0].strip("*_`#.,!")
    assert str(markupsafe.escape(first_word)) in response.text


def test_first_message_from_the_empty_state_creates_the_chat(
    signed_in: Browser, db_api: DbApiServer
) -> None:
    response = signed_in.submit("/chats", {"content": QUESTION})
    chat_id = chat_id_of(response)
    chat = stored_chat(db_api, signed_in, chat_id)
    assert [m["role"] for m in chat["messages"]] == ["assistant", "user", "assistant"]
    assert chat["messages"][0]["content"] == "Hello, how can I assist you today?"
    assert chat["messages"][2]["status"] == "complete"


def test_message_content_is_escaped(
    signed_in: Browser, chat_ui_without_model: ChatUiServer
) -> None:
    # The model is not needed to see how the user's own text is shown, and the second
    # chat-ui accepts the same cookies (same session key).
    chat_id = signed_in.new_chat()
    with httpx.Client(
        base_url=chat_ui_without_model.url, cookies=signed_in.http.cookies, follow_redirects=True
    ) as other:
        token = signed_in.csrf_token()
        response = other.post(
            f"/chats/{chat_id}/messages",
            data={"csrf_token": token, "content": "<script>alert(1)</script>"},
        )
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_too_long_message_is_refused_with_the_text_kept(
    signed_in: Browser, db_api: DbApiServer
) -> None:
    chat_id = signed_in.new_chat()
    long_text = "word " * 900
    response = signed_in.submit(f"/chats/{chat_id}/messages", {"content": long_text})
    assert response.status_code == 422
    assert "the limit is 4,000" in response.text
    assert textarea_text(response.text) == long_text
    assert len(stored_chat(db_api, signed_in, chat_id)["messages"]) == 1


def test_empty_message_is_refused(signed_in: Browser) -> None:
    chat_id = signed_in.new_chat()
    response = signed_in.submit(f"/chats/{chat_id}/messages", {"content": "   "})
    assert response.status_code == 422
    assert "Type a message before sending." in response.text


def test_message_without_csrf_is_refused_with_the_text_kept(
    signed_in: Browser, db_api: DbApiServer
) -> None:
    chat_id = signed_in.new_chat()
    for token in ("", "wrong-token"):
        response = signed_in.http.post(
            f"/chats/{chat_id}/messages", data={"csrf_token": token, "content": "keep me"}
        )
        assert response.status_code == 403
        assert "Your session expired or the form is stale." in response.text
        assert textarea_text(response.text) == "keep me"
    assert len(stored_chat(db_api, signed_in, chat_id)["messages"]) == 1


def test_new_chat_without_csrf_is_refused(signed_in: Browser) -> None:
    response = signed_in.http.post("/chats", data={})
    assert response.status_code == 403


def test_another_users_chat_is_not_found(signed_in: Browser, chat_ui: ChatUiServer) -> None:
    chat_id = signed_in.new_chat()
    intruder = Browser(chat_ui.url)
    try:
        intruder.sign_up()
        assert intruder.get(f"/chats/{chat_id}").status_code == 404
        response = intruder.submit(f"/chats/{chat_id}/messages", {"content": "hi"})
        assert response.status_code == 404
        assert intruder.submit(f"/chats/{chat_id}/retry").status_code == 404
        assert f"/chats/{chat_id}" not in intruder.get("/chats").text
    finally:
        intruder.close()


def test_missing_and_malformed_chat_ids_are_not_found(signed_in: Browser) -> None:
    for path in (f"/chats/{uuid.uuid4()}", "/chats/not-a-uuid"):
        response = signed_in.get(path)
        assert response.status_code == 404
        assert "We could not find" in response.text


def test_model_down_keeps_the_message_and_retry_answers_it(
    signed_in: Browser, chat_ui_without_model: ChatUiServer, db_api: DbApiServer
) -> None:
    chat_id = signed_in.new_chat()
    with httpx.Client(
        base_url=chat_ui_without_model.url,
        cookies=signed_in.http.cookies,
        follow_redirects=True,
        timeout=60,
    ) as down:
        response = down.post(
            f"/chats/{chat_id}/messages",
            data={"csrf_token": signed_in.csrf_token(), "content": QUESTION},
        )
        assert response.status_code == 200
        assert MODEL_UNREACHABLE in response.text
        assert f'action="/chats/{chat_id}/retry"' in response.text
        assert QUESTION in response.text

    chat = stored_chat(db_api, signed_in, chat_id)
    assert [(m["role"], m["status"]) for m in chat["messages"]] == [
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "error"),
    ]
    failed_reply_id = chat["messages"][2]["id"]

    # The same browser, now on the chat-ui whose model is up.
    page = signed_in.get(f"/chats/{chat_id}")
    assert f'action="/chats/{chat_id}/retry"' in page.text
    response = signed_in.submit(f"/chats/{chat_id}/retry")
    assert response.status_code == 200
    assert f'action="/chats/{chat_id}/retry"' not in response.text

    chat = stored_chat(db_api, signed_in, chat_id)
    assert [(m["role"], m["status"]) for m in chat["messages"]] == [
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert chat["messages"][2]["id"] == failed_reply_id
    assert chat["messages"][2]["content"].strip()


def test_database_down_shows_503_with_the_text_kept(
    signed_in: Browser, chat_ui_without_database: str
) -> None:
    chat_id = signed_in.new_chat()
    with httpx.Client(
        base_url=chat_ui_without_database, cookies=signed_in.http.cookies, follow_redirects=True
    ) as down:
        response = down.post(
            f"/chats/{chat_id}/messages",
            data={"csrf_token": signed_in.csrf_token(), "content": "please keep this"},
        )
        assert response.status_code == 503
        assert "The database is not reachable right now" in response.text
        assert textarea_text(response.text) == "please keep this"

        page = down.get(f"/chats/{chat_id}")
        assert page.status_code == 503
        assert "The database is not reachable right now" in page.text

        ready = down.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"db_api": "unreachable", "lm_api": "ok"}


def test_readiness_reports_the_model_down(chat_ui_without_model: ChatUiServer) -> None:
    response = httpx.get(f"{chat_ui_without_model.url}/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {"db_api": "ok", "lm_api": "unreachable"}


@pytest.fixture(scope="module")
def chat_ui_with_little_room(db_api: DbApiServer, llama_server: LlamaServer) -> Iterator[str]:
    """A chat-ui that reserves almost the whole context window for the reply."""
    with running_chat_ui(
        db_api, llama_server.url, extra_env={"MAX_REPLY_TOKENS": "2000"}
    ) as server:
        yield server.url


def test_message_too_long_for_the_context_is_refused_with_the_text_kept(
    signed_in: Browser, chat_ui_with_little_room: str, db_api: DbApiServer
) -> None:
    chat_id = signed_in.new_chat()
    text = "lorem ipsum dolor " * 50
    with httpx.Client(
        base_url=chat_ui_with_little_room, cookies=signed_in.http.cookies, follow_redirects=True
    ) as client:
        response = client.post(
            f"/chats/{chat_id}/messages",
            data={"csrf_token": signed_in.csrf_token(), "content": text},
        )
    assert response.status_code == 422
    assert "too long for the model&#39;s context window" in response.text
    assert textarea_text(response.text) == text.strip()
    assert len(stored_chat(db_api, signed_in, chat_id)["messages"]) == 1
