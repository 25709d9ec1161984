"""Replies as the page's script sees them (JSON and server-sent events), on a fake model.

Streaming with the real model (updates, stop freeing the llama.cpp slot, a busy model,
another replica) is in tests/chat_ui/test_streaming.py; here the fake model breaks off
on demand, which the real one cannot.
"""

from __future__ import annotations

import re

from harness.forms import Browser
from tests.support.inprocess import InProcessApp
from tests.support.sse import JSON, post_json, read_until_done, send_json, sse_events

SHORT_QUESTION = "Name three colours, one per line."


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_json_errors_are_json(signed_in: Browser) -> None:
    chat_id = signed_in.new_chat()
    empty = send_json(signed_in, chat_id, "   ")
    assert empty.status_code == 422
    assert empty.json() == {"error": "Type a message before sending."}
    stale = signed_in.http.post(
        f"/chats/{chat_id}/messages", data={"csrf_token": "stale", "content": "hi"}, headers=JSON
    )
    assert stale.status_code == 403 and "error" in stale.json()
    nothing = post_json(signed_in, f"/chats/{chat_id}/regenerate")
    assert nothing.status_code == 422 and "error" in nothing.json()


def test_another_users_stream_is_not_found(signed_in: Browser, inprocess: InProcessApp) -> None:
    inprocess.model.stream_failure = "hang"  # still being written while the intruder asks
    chat_id = signed_in.new_chat()
    answer = send_json(signed_in, chat_id, "Reply with just one word: hello.").json()
    intruder = inprocess.browser()
    intruder.sign_up()
    assert intruder.get(answer["stream_url"]).status_code == 404
    assert post_json(intruder, f"/chats/{chat_id}/stop").status_code == 404
    assert inprocess.model.streams_closed == 0
    assert post_json(signed_in, f"/chats/{chat_id}/stop").status_code == 204
    assert read_until_done(signed_in, answer["stream_url"])[-1][1]["status"] == "stopped"


def test_model_breaking_off_keeps_the_partial_text_and_retry_works(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    model = inprocess.model
    model.stream_failure, model.tokens_before_failure = "break", 3
    partial = "You said: Name"
    chat_id = signed_in.new_chat()
    answer = send_json(signed_in, chat_id, SHORT_QUESTION)
    assert answer.status_code == 202, answer.text
    done = read_until_done(signed_in, answer.json()["stream_url"])[-1]
    assert done[0] == "done" and done[1]["status"] == "error"
    assert "stopped answering before the reply was finished" in done[1]["error"]
    assert partial in text_of(done[1]["html"])

    messages = inprocess.stored_chat(signed_in, chat_id)["messages"]
    assert [(m["role"], m["status"]) for m in messages] == [
        ("user", "complete"),
        ("assistant", "error"),
    ]
    assert messages[0]["content"] == SHORT_QUESTION
    assert messages[1]["content"].strip() == partial

    model.stream_failure = None
    page = signed_in.get(f"/chats/{chat_id}").text
    assert f'action="/chats/{chat_id}/retry"' in page
    retried = post_json(signed_in, f"/chats/{chat_id}/retry")
    assert retried.status_code == 202, retried.text
    assert read_until_done(signed_in, retried.json()["stream_url"])[-1][1]["status"] == "complete"
    reply = inprocess.stored_chat(signed_in, chat_id)["messages"][-1]
    assert reply["id"] == messages[1]["id"]
    assert reply["status"] == "complete"
    assert reply["content"] == f"You said: {SHORT_QUESTION}"


def test_an_edit_the_database_cannot_store_keeps_the_message_and_its_reply(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    """A NUL character is refused before the edit removes anything."""
    chat_id = signed_in.new_chat()
    first = send_json(signed_in, chat_id, "Reply with just one word: hello.").json()
    read_until_done(signed_in, first["stream_url"])
    before = inprocess.stored_chat(signed_in, chat_id)["messages"]

    edited = post_json(signed_in, f"/chats/{chat_id}/edit", content="Say\x00goodbye.")
    assert edited.status_code == 422, edited.text
    assert edited.json()["error"] == "Messages can't contain NUL characters."
    assert inprocess.stored_chat(signed_in, chat_id)["messages"] == before


def test_a_second_chat_waits_for_the_users_reply_and_keeps_the_text(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    """One reply being written per user: another chat's send says so and keeps the text."""
    second = signed_in.new_chat()
    done = send_json(signed_in, second, "Say hi.").json()
    read_until_done(signed_in, done["stream_url"])
    before = inprocess.stored_chat(signed_in, second)["messages"]
    inprocess.model.stream_failure = "hang"  # the first chat's reply is still being written
    first = signed_in.new_chat()
    answer = send_json(signed_in, first, "Tell me a long story.").json()

    refused = send_json(signed_in, second, "And a short one here?")
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "Your reply in another chat is still being written. Wait for it to finish, "
        "or stop it there, then send this again."
    }
    # Without JavaScript: the same words, and the typed text back in the box.
    page = signed_in.submit(f"/chats/{second}/messages", {"content": "And a short one here?"})
    assert page.status_code == 409
    assert "Your reply in another chat is still being written" in page.text
    assert "And a short one here?</textarea>" in page.text
    # Neither stores nor deletes anything, an edit of the last message included.
    edited = post_json(signed_in, f"/chats/{second}/edit", content="Say hello.")
    assert edited.status_code == 409
    assert inprocess.stored_chat(signed_in, second)["messages"] == before

    assert post_json(signed_in, f"/chats/{first}/stop").status_code == 204
    read_until_done(signed_in, answer["stream_url"])
    inprocess.model.stream_failure = None
    assert send_json(signed_in, second, "And a short one here?").status_code == 202


def test_a_reply_queued_by_another_process_shows_its_place_in_the_queue(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    """Followed through db-api (another replica writes it): its place in line, script or not."""
    db = inprocess.db
    earlier = inprocess.browser()
    earlier.sign_up()
    earlier_id = inprocess.user_id(earlier)
    earlier_chat = inprocess.call(db.create_chat, earlier_id)
    inprocess.call(db.start_turn, earlier_id, earlier_chat["id"])
    user_id = inprocess.user_id(signed_in)
    chat = inprocess.call(db.create_chat, user_id)
    turn = inprocess.call(db.start_turn, user_id, chat["id"], content="Am I next?")

    page = signed_in.get(f"/chats/{chat['id']}").text
    assert "Queued, position 2: the model is writing other replies first" in page
    stream_url = f"/chats/{chat['id']}/messages/{turn['reply']['id']}/stream"
    with signed_in.http.stream("GET", stream_url) as response:
        event, data = next(sse_events(response))
    assert event == "update" and data["position"] == 2


def test_a_refreshing_page_goes_back_to_the_chats_address_once_the_reply_is_written(
    signed_in: Browser, inprocess: InProcessApp
) -> None:
    inprocess.model.stream_failure = "hang"
    chat_id = signed_in.new_chat()
    answer = send_json(signed_in, chat_id, "Tell me a long story.").json()
    writing = signed_in.http.get(f"/chats/{chat_id}?refresh=1", follow_redirects=False)
    assert writing.status_code == 200
    assert f'content="2; url=/chats/{chat_id}?refresh=2#latest"' in writing.text

    assert post_json(signed_in, f"/chats/{chat_id}/stop").status_code == 204
    read_until_done(signed_in, answer["stream_url"])
    # Twice: the second view is answered from the page kept after the first.
    for _ in range(2):
        written = signed_in.http.get(f"/chats/{chat_id}?refresh=2", follow_redirects=False)
        assert written.status_code == 303
        assert written.headers["location"] == f"/chats/{chat_id}#latest"
        assert signed_in.get(f"/chats/{chat_id}").status_code == 200
