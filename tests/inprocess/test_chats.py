"""Chats through chat-ui's real pages, on the fake db-api and a fake model.

That a real reply is generated and stored is checked with the real model in
tests/chat_ui/test_chats.py; here the model answers "You said: …" at once, or is down.
"""

from __future__ import annotations

import uuid

from harness.forms import Browser, chat_id_of, textarea_text
from tests.support.inprocess import InProcessApp

QUESTION = "Reply with just one word: hello."
MODEL_UNREACHABLE = "The language model is not reachable right now."


def statuses(inprocess: InProcessApp, browser: Browser, chat_id: str) -> list[tuple[str, str]]:
    chat = inprocess.stored_chat(browser, chat_id)
    return [(m["role"], m["status"]) for m in chat["messages"]]


def test_new_chat_is_an_empty_message_box_that_stores_nothing(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    page = signed_in.get("/chats")
    assert 'href="/chats">+ New chat</a>' in page.text  # a link: following it stores nothing
    assert "Hello, how can I assist you today?" in page.text  # the greeting is the page's
    assert '<label for="content"' in page.text
    signed_in.get("/chats")
    assert inprocess.db.chats == {}


def test_an_empty_chat_shows_the_greeting_without_storing_it(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    page = signed_in.get(f"/chats/{chat_id}")
    assert page.status_code == 200
    assert "Hello, how can I assist you today?" in page.text
    assert f'href="/chats/{chat_id}"' in page.text  # listed in the sidebar
    assert inprocess.stored_chat(signed_in, chat_id)["messages"] == []


def test_sending_a_message_stores_it_and_the_reply(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    response = signed_in.until_written(
        signed_in.submit(f"/chats/{chat_id}/messages", {"content": f"  {QUESTION}\n"})
    )
    assert response.status_code == 200
    assert response.url.path == f"/chats/{chat_id}"
    assert QUESTION in response.text
    assert f"You said: {QUESTION}" in response.text

    chat = inprocess.stored_chat(signed_in, chat_id)
    assert chat["title"] == QUESTION
    assert statuses(inprocess, signed_in, chat_id) == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert chat["messages"][0]["content"] == QUESTION
    assert chat["messages"][1]["content"] == f"You said: {QUESTION}"
    # The model saw the system prompt and the question: no greeting.
    (completion,) = inprocess.model.completions
    assert [m["role"] for m in completion["messages"]] == ["system", "user"]


def test_first_message_from_the_empty_state_creates_the_chat(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    response = signed_in.submit("/chats", {"content": QUESTION})
    chat_id = chat_id_of(response)
    chat = inprocess.stored_chat(signed_in, chat_id)
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant"]
    assert chat["messages"][0]["content"] == QUESTION
    assert chat["messages"][1]["status"] == "complete"


def test_message_content_is_escaped(signed_in: Browser, inprocess: InProcessApp) -> None:
    inprocess.model.state = "down"  # the user's own text is shown either way
    chat_id = signed_in.new_chat()
    response = signed_in.submit(
        f"/chats/{chat_id}/messages", {"content": "<script>alert(1)</script>"}
    )
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_too_long_message_is_refused_with_the_text_kept(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    long_text = "word " * 900
    response = signed_in.submit(f"/chats/{chat_id}/messages", {"content": long_text})
    assert response.status_code == 422
    assert "the limit is 4,000" in response.text
    assert textarea_text(response.text) == long_text
    assert len(inprocess.stored_chat(signed_in, chat_id)["messages"]) == 0


def test_empty_message_is_refused(signed_in: Browser) -> None:
    chat_id = signed_in.new_chat()
    response = signed_in.submit(f"/chats/{chat_id}/messages", {"content": "   "})
    assert response.status_code == 422
    assert "Type a message before sending." in response.text


def test_message_without_csrf_is_refused_with_the_text_kept(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    for token in ("", "wrong-token"):
        response = signed_in.http.post(
            f"/chats/{chat_id}/messages", data={"csrf_token": token, "content": "keep me"}
        )
        assert response.status_code == 403
        assert "Your session expired or the form is stale." in response.text
        assert textarea_text(response.text) == "keep me"
    assert len(inprocess.stored_chat(signed_in, chat_id)["messages"]) == 0


def test_new_chat_without_csrf_is_refused(signed_in: Browser) -> None:
    response = signed_in.http.post("/chats", data={})
    assert response.status_code == 403


def test_another_users_chat_is_not_found(signed_in: Browser, inprocess: InProcessApp) -> None:
    chat_id = signed_in.new_chat()
    intruder = inprocess.browser()
    intruder.sign_up()
    assert intruder.get(f"/chats/{chat_id}").status_code == 404
    response = intruder.submit(f"/chats/{chat_id}/messages", {"content": "hi"})
    assert response.status_code == 404
    assert intruder.submit(f"/chats/{chat_id}/retry").status_code == 404
    assert f"/chats/{chat_id}" not in intruder.get("/chats").text


def test_missing_and_malformed_chat_ids_are_not_found(signed_in: Browser) -> None:
    for path in (f"/chats/{uuid.uuid4()}", "/chats/not-a-uuid"):
        response = signed_in.get(path)
        assert response.status_code == 404
        assert "We could not find" in response.text


def test_model_down_keeps_the_message_and_retry_answers_it(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    inprocess.model.state = "down"
    response = signed_in.until_written(
        signed_in.submit(f"/chats/{chat_id}/messages", {"content": QUESTION})
    )
    assert response.status_code == 200
    assert MODEL_UNREACHABLE in response.text
    assert f'action="/chats/{chat_id}/retry"' in response.text
    assert QUESTION in response.text
    assert statuses(inprocess, signed_in, chat_id) == [
        ("user", "complete"),
        ("assistant", "error"),
    ]
    failed_reply_id = inprocess.stored_chat(signed_in, chat_id)["messages"][1]["id"]

    inprocess.model.state = "ready"
    page = signed_in.get(f"/chats/{chat_id}")
    assert f'action="/chats/{chat_id}/retry"' in page.text
    response = signed_in.until_written(signed_in.submit(f"/chats/{chat_id}/retry"))
    assert response.status_code == 200
    assert f'action="/chats/{chat_id}/retry"' not in response.text

    chat = inprocess.stored_chat(signed_in, chat_id)
    assert statuses(inprocess, signed_in, chat_id) == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert chat["messages"][1]["id"] == failed_reply_id
    assert chat["messages"][1]["content"] == f"You said: {QUESTION}"


def test_database_down_shows_503_with_the_text_kept(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    chat_id = signed_in.new_chat()
    csrf = signed_in.csrf_token()
    inprocess.db.down = True
    response = signed_in.http.post(
        f"/chats/{chat_id}/messages", data={"csrf_token": csrf, "content": "please keep this"}
    )
    assert response.status_code == 503
    assert "The database is not reachable right now" in response.text
    assert textarea_text(response.text) == "please keep this"

    page = signed_in.get(f"/chats/{chat_id}")
    assert page.status_code == 503
    assert "The database is not reachable right now" in page.text

    ready = signed_in.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"db_api": "unreachable", "lm_api": "ok"}


def test_readiness_reports_the_model_down(inprocess: InProcessApp) -> None:
    inprocess.model.state = "down"
    response = inprocess.client().get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {"db_api": "ok", "lm_api": "unreachable"}


def test_message_too_long_for_the_context_is_refused_with_the_text_kept(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    # The reply's 512 tokens leave little room: about 90 of the 600.
    inprocess.model.context_tokens = 600
    chat_id = signed_in.new_chat()
    text = "lorem ipsum dolor " * 50
    response = signed_in.submit(f"/chats/{chat_id}/messages", {"content": text})
    assert response.status_code == 422
    assert "too long for the model&#39;s context window" in response.text
    assert textarea_text(response.text) == text.strip()
    assert len(inprocess.stored_chat(signed_in, chat_id)["messages"]) == 0
