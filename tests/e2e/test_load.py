"""Many users at once through nginx, like browsers with JavaScript off; then count.

50 simulated users each sign up, then send 6 messages (two chats of three) with
plain form posts: the CSRF token and the request id come from the page's form. Each
post redirects at once to the chat page, which the user follows as it refreshes
itself until the reply is written. Some forms are submitted twice at once.
Afterwards the database must hold every message exactly once, each with one
finished reply, and no request may have failed with a 5xx. Replies are capped at a
few tokens (MAX_REPLY_TOKENS) on a dedicated chat-ui and nginx, so the run takes
minutes on two cores. Figures go to test-artifacts/reliability/load.json.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from harness.chat_ui import running_chat_ui
from harness.db_api import DbApiServer
from harness.factories import DEFAULT_PASSWORD
from harness.llama import LlamaServer
from harness.nginx import NginxServer, start_nginx
from harness.processes import REPO_ROOT, free_port

USERS = 50
CHATS_PER_USER = 2
# Every reply costs the model the whole chat so far, so turns are few and the users many:
# what this checks is many people at once.
MESSAGES_PER_CHAT = 3
# Every seventh form (by user and message number) is submitted twice at once.
DOUBLE_SUBMIT_EVERY = 7
# All at once: db-api queues the password hashing (one per core) instead of failing.
SIGNUPS_AT_ONCE = USERS
ARTIFACT = REPO_ROOT / "test-artifacts" / "reliability" / "load.json"
# A page answer can wait for a reply queued behind all the others on the model.
CLIENT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)

COMPOSER = re.compile(r'<form method="post" action="([^"]+)" class="composer"')
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')
# Without script, the chat page reloads itself while the reply is written (chat.html).
SELF_REFRESH = re.compile(r'<meta http-equiv="refresh" content="(\d+); url=([^"#]+)')


@pytest.fixture(scope="module")
def load_site(
    db_api: DbApiServer, llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NginxServer]:
    """A chat-ui with short replies, and an nginx in front of it, for this module."""
    env = {"MAX_REPLY_TOKENS": "8"}
    with running_chat_ui(db_api, llama_server.url, extra_env=env) as chat_ui:
        port = free_port()
        config_dir = tmp_path_factory.mktemp("nginx-load")
        upstream = chat_ui.url.removeprefix("http://")
        process = start_nginx(config_dir=config_dir, chat_ui_upstream=upstream, port=port)
        try:
            yield NginxServer(f"http://127.0.0.1:{port}", process, config_dir)
        finally:
            process.stop()


@dataclass
class Tally:
    """Every request's status, and what was sent and acknowledged."""

    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    acknowledged: dict[str, str] = field(default_factory=dict)  # content -> chat path
    double_submits: int = 0

    def record(self, what: str, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{what}: {response.status_code} {response.text[:200]}")


def form_of(page: str) -> tuple[str, dict[str, str]]:
    """The message form's action and hidden fields, as a browser would submit them."""
    action, csrf, request_id = (pattern.search(page) for pattern in (COMPOSER, CSRF, REQUEST_ID))
    assert action and csrf and request_id, "no message form in the page"
    fields = {"csrf_token": html.unescape(csrf.group(1)), "request_id": request_id.group(1)}
    return html.unescape(action.group(1)), fields


async def simulated_user(
    base_url: str, index: int, run: str, tally: Tally, signups: asyncio.Semaphore
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=CLIENT_TIMEOUT) as client:
        username = f"load{run}_{index}"
        # People arrive over time rather than in one instant: a few sign-ups (each an
        # argon2 hash, deliberately costly) run at once; the messages then all overlap.
        async with signups:
            signup_page = await client.get("/signup")
            tally.record("GET /signup", signup_page)
            csrf = html.unescape(CSRF.search(signup_page.text).group(1))  # type: ignore[union-attr]
            signed_up = await client.post(
                "/signup",
                data={
                    "csrf_token": csrf,
                    "username": username,
                    "password": DEFAULT_PASSWORD,
                    "password_confirm": DEFAULT_PASSWORD,
                },
            )
        tally.record("POST /signup", signed_up)
        assert signed_up.status_code == 303, signed_up.text[:500]
        number = 0
        for _chat in range(CHATS_PER_USER):
            # The chats page's form starts a new chat; each chat page's form continues it.
            listing = await client.get("/chats")
            tally.record("GET /chats", listing)
            page = listing.text
            for _message in range(MESSAGES_PER_CHAT):
                number += 1
                twice = (index + number) % DOUBLE_SUBMIT_EVERY == 0
                page = await send(client, page, f"{username} message {number}", tally, twice=twice)


async def send(
    client: httpx.AsyncClient, page: str, content: str, tally: Tally, *, twice: bool
) -> str:
    """Submit the page's message form (twice at once if asked); answer the next page."""
    action, fields = form_of(page)
    data = {**fields, "content": content}
    posts = [client.post(action, data=data) for _ in range(2 if twice else 1)]
    answers = await asyncio.gather(*posts)
    tally.double_submits += twice
    for answer in answers:
        tally.record(f"POST {action}", answer)
        assert answer.status_code == 303, (content, answer.status_code, answer.text[:300])
    locations = {answer.headers["location"] for answer in answers}
    assert len(locations) == 1, locations
    (location,) = locations
    tally.acknowledged[content] = location.removesuffix("#latest")
    chat_page = await client.get(location)
    tally.record("GET chat", chat_page)
    assert chat_page.status_code == 200
    # The send came back at once; the page refreshes itself until the reply is written,
    # then goes back to the chat's own address (a redirect a browser follows).
    while refresh := SELF_REFRESH.search(chat_page.text):
        await asyncio.sleep(int(refresh.group(1)))
        chat_page = await client.get(html.unescape(refresh.group(2)), follow_redirects=True)
        tally.record("GET chat", chat_page)
        assert chat_page.status_code == 200
    return chat_page.text


def stored_turns(database_url: str, run: str) -> list[dict[str, Any]]:
    """Every message of this run's users, straight from PostgreSQL."""
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT m.id, m.chat_id, m.role, m.content, m.status "
                    "FROM messages m JOIN chats c ON c.id = m.chat_id "
                    "JOIN users u ON u.id = c.owner_id "
                    "WHERE u.username LIKE :prefix ORDER BY m.chat_id, m.id"
                ),
                {"prefix": f"load{run}\\_%"},
            ).mappings()
            return [dict(row) for row in rows]
    finally:
        engine.dispose()


def test_fifty_users_six_messages_each_nothing_lost_or_doubled(
    load_site: NginxServer, db_api: DbApiServer
) -> None:
    run = uuid.uuid4().hex[:6]
    tally = Tally()

    async def everyone() -> None:
        signups = asyncio.Semaphore(SIGNUPS_AT_ONCE)
        await asyncio.gather(
            *(simulated_user(load_site.url, index, run, tally, signups) for index in range(USERS))
        )

    started = time.monotonic()
    asyncio.run(everyone())
    duration = time.monotonic() - started

    messages = stored_turns(db_api.database_url, run)
    sent = USERS * CHATS_PER_USER * MESSAGES_PER_CHAT
    questions = Counter(m["content"] for m in messages if m["role"] == "user")
    lost = [content for content in tally.acknowledged if questions[content] == 0]
    duplicated = [content for content, count in questions.items() if count > 1]
    # Each question is followed by exactly one reply, finished.
    by_chat: dict[Any, list[dict[str, Any]]] = {}
    for message in messages:
        by_chat.setdefault(message["chat_id"], []).append(message)
    shapes = Counter(tuple(m["role"] for m in chat) for chat in by_chat.values())
    unfinished = [m for m in messages if m["status"] != "complete"]
    figures = {
        "users": USERS,
        "messages_sent": sent,
        "double_submitted_forms": tally.double_submits,
        "requests": sum(tally.statuses.values()),
        "statuses": {str(status): n for status, n in sorted(tally.statuses.items())},
        "server_errors": len(tally.server_errors),
        "duration_seconds": round(duration, 1),
        "messages_per_second": round(sent / duration, 2),
        "stored_user_messages": sum(questions.values()),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "replies_not_complete": len(unfinished),
        "chats": len(by_chat),
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nload: {json.dumps(figures)}")

    assert tally.server_errors == [], tally.server_errors[:10]
    assert len(tally.acknowledged) == sent
    assert (lost, duplicated) == ([], [])
    assert sum(questions.values()) == sent
    assert len(by_chat) == USERS * CHATS_PER_USER
    turns = ("user", "assistant") * MESSAGES_PER_CHAT
    assert shapes == {turns: USERS * CHATS_PER_USER}, shapes
    assert unfinished == [], unfinished[:5]
