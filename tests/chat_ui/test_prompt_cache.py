"""Long chats keep llama.cpp's prompt cache: a turn reads only what is new to the model.

Against the session's real stack. llama.cpp's `/metrics` counts the prompt tokens it
actually evaluated (what its cache held is left out); each test compares that count
for one turn with the length of the turn's whole prompt.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from harness.db_api import DbApiServer
from harness.factories import add_message
from harness.forms import Browser, stored_chat, user_id_of
from harness.llama import LlamaServer
from tests.support.sse import read_until_done, send_json

QUESTION = "Reply with one word: which number was the largest?"
# chat-ui's default, which the session's chat-ui runs with.
SYSTEM_PROMPT = "You are a helpful assistant."
# The session's server: 2,048 tokens a slot; chat-ui keeps 512 of them for the reply.
PROMPT_BUDGET = 2048 - 512


def prompt_tokens_read(llama: LlamaServer) -> int:
    metrics = httpx.get(f"{llama.url}/metrics", timeout=5).text
    match = re.search(r"^llamacpp:prompt_tokens_total\s+(\S+)$", metrics, re.MULTILINE)
    assert match is not None, metrics[:500]
    return int(float(match.group(1)))


def count_tokens(llama: LlamaServer, text: str) -> int:
    response = httpx.post(f"{llama.url}/tokenize", json={"content": text}, timeout=30)
    return len(response.json()["tokens"])


def seed_history(
    db_api: DbApiServer, browser: Browser, chat_id: str, turns: int, *, answer_repeats: int = 3
) -> None:
    """`turns` more questions and answers, stored as if they had been asked in the app."""
    user_id = user_id_of(db_api, browser)
    headers = {"Authorization": f"Bearer {db_api.service_token}"}
    # Words of this chat's own in every message: llama.cpp reuses any long enough run
    # of tokens it still holds (--cache-reuse), from other tests' chats too.
    own = chat_id.split("-")[0]
    with httpx.Client(base_url=db_api.url, headers=headers, timeout=30) as client:
        start = len(stored_chat(db_api, browser, chat_id)["messages"])
        for index in range(start, start + turns):
            question = f"Tell me about {index} in {own}."
            add_message(client, user_id=user_id, chat_id=chat_id, content=question)
            add_message(
                client,
                user_id=user_id,
                chat_id=chat_id,
                role="assistant",
                content=f"In {own}, {index} is an integer with facts of its own. " * answer_repeats,
            )


def seeded_chat(
    browser: Browser, db_api: DbApiServer, llama: LlamaServer, *, turns: int
) -> tuple[str, int]:
    """A new chat with `turns` of history; answers its id and its messages' tokens."""
    chat_id = browser.new_chat()
    seed_history(db_api, browser, chat_id, turns)
    messages = stored_chat(db_api, browser, chat_id)["messages"]
    return chat_id, sum(count_tokens(llama, message["content"]) for message in messages)


def wait_for_idle_slots(llama: LlamaServer) -> None:
    """Until llama.cpp has released every slot (a reply's stream ends just before that).

    A person takes longer than that to send the next message; a test does not. The next
    turn goes to the chat's slot again, and what it reads is counted from here.
    """
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        slots = httpx.get(f"{llama.url}/slots", timeout=5).json()
        if not any(slot["is_processing"] for slot in slots):
            return
        time.sleep(0.02)
    raise AssertionError("llama.cpp's slots stayed busy")


def turn(browser: Browser, llama: LlamaServer, chat_id: str, question: str) -> int:
    """Send `question`, wait for the whole reply; answer the prompt tokens llama.cpp read."""
    wait_for_idle_slots(llama)
    before = prompt_tokens_read(llama)
    answer = send_json(browser, chat_id, question)
    assert answer.status_code == 202, answer.text
    assert read_until_done(browser, answer.json()["stream_url"])[-1][1]["status"] == "complete"
    return prompt_tokens_read(llama) - before


def test_the_next_turn_reads_only_the_new_message(
    signed_in: Browser, db_api: DbApiServer, llama_server: LlamaServer
) -> None:
    chat_id, history_tokens = seeded_chat(signed_in, db_api, llama_server, turns=15)
    assert history_tokens > 500

    first = turn(signed_in, llama_server, chat_id, QUESTION)
    second = turn(signed_in, llama_server, chat_id, "And the smallest? One word.")

    assert first >= history_tokens  # nothing of this chat was cached yet
    # The second prompt is the first one, its reply and a short question.
    assert second < 64, (first, second)


def prompt_tokens(llama: LlamaServer, messages: list[dict[str, Any]]) -> int:
    """The exact prompt length chat-ui counts: the server's template, then its tokenizer."""
    turns = [{"role": m["role"], "content": m["content"]} for m in messages]
    templated = httpx.post(
        f"{llama.url}/apply-template",
        json={"messages": [{"role": "system", "content": SYSTEM_PROMPT}, *turns]},
        timeout=30,
    ).json()["prompt"]
    tokenized = httpx.post(
        f"{llama.url}/tokenize", json={"content": templated, "add_special": True}, timeout=30
    )
    return len(tokenized.json()["tokens"])


def test_after_old_messages_are_dropped_the_window_is_read_once_and_then_cached(
    signed_in: Browser, db_api: DbApiServer, llama_server: LlamaServer
) -> None:
    # About 200 tokens: over the budget once added to the history below, and under half
    # of it with some 500 tokens of history kept.
    long_question = "Here is more context: " + "some detail, " * 60 + "Now one word: done?"
    question_tokens = count_tokens(llama_server, long_question)
    chat_id = signed_in.new_chat()
    # History until the long question no longer fits beside it (with the short turn
    # before it, some 30 tokens), while the short turn itself still does.
    history_prompt = 0
    while history_prompt <= PROMPT_BUDGET - question_tokens - 20:
        # Small steps (about 110 tokens a turn), so the loop stops short of the budget.
        seed_history(db_api, signed_in, chat_id, turns=1, answer_repeats=4)
        history = stored_chat(db_api, signed_in, chat_id)["messages"]
        history_prompt = prompt_tokens(llama_server, history)
    assert history_prompt + 40 < PROMPT_BUDGET, history_prompt

    # The whole history fits: one cold read fills the chat's slot.
    assert turn(signed_in, llama_server, chat_id, QUESTION) >= history_prompt - 40
    # The long question overflows the window: the oldest messages go, down to half.
    read = turn(signed_in, llama_server, chat_id, long_question)
    reply = stored_chat(db_api, signed_in, chat_id)["messages"][-1]
    assert reply["status"] == "complete" and reply["context_start_id"] is not None
    # At most half the window is read, never the whole of it again. (In the chat's own
    # slot llama.cpp usually shifts the kept part into place and reads only the question,
    # as bench/long_chat.py measures; when its RAM prompt cache holds other chats' prompts
    # it may load one of those into the slot first.)
    assert read <= PROMPT_BUDGET // 2 + 40, (read, question_tokens)
    # The next turn starts where this one did, so it reads only what is new.
    after = turn(signed_in, llama_server, chat_id, "And now? One word.")
    assert after < 64, after
    assert (
        stored_chat(db_api, signed_in, chat_id)["messages"][-1]["context_start_id"]
        == (reply["context_start_id"])
    )
