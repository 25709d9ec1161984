"""A chat's reply from the real model, stored in the real db-api, shown on chat-ui's page.

The rest of the chat pages' logic (forms, refusals, a model or database that is down)
is tested in-process on the fakes: tests/inprocess/test_chats.py.
"""

from __future__ import annotations

import markupsafe

from harness.db_api import DbApiServer
from harness.forms import Browser, stored_chat

QUESTION = "Reply with just one word: hello."
MODEL_UNREACHABLE = "The language model is not reachable right now."


def test_sending_a_message_stores_a_real_reply(signed_in: Browser, db_api: DbApiServer) -> None:
    chat_id = signed_in.new_chat()
    response = signed_in.submit(f"/chats/{chat_id}/messages", {"content": f"  {QUESTION}\n"})
    assert response.status_code == 200
    assert response.url.path == f"/chats/{chat_id}"
    assert QUESTION in response.text
    response = signed_in.until_written(response)

    chat = stored_chat(db_api, signed_in, chat_id)
    assert chat["title"] == QUESTION
    roles = [(m["role"], m["status"]) for m in chat["messages"]]
    assert roles == [("user", "complete"), ("assistant", "complete")]
    assert chat["messages"][0]["content"] == QUESTION
    reply = chat["messages"][1]["content"]
    assert reply.strip()
    # The reply is shown as rendered markdown; its words appear in the page.
    first_word = reply.split()[0].strip("*_`#.,!")
    assert str(markupsafe.escape(first_word)) in response.text
