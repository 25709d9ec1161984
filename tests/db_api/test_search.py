"""Full-text search over the acting user's chat titles and messages."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from db_api.queries import search
from harness.db_api import db_api_env, run_migrations
from harness.factories import (
    add_message,
    create_chat,
    create_turn,
    create_user,
    finish_reply,
    user_headers,
)
from harness.postgres import PostgresCluster

START, STOP = "\u0002", "\u0003"


def _search(client: httpx.Client, user: dict[str, Any], q: str, **params: Any) -> dict[str, Any]:
    response = client.get(
        "/chats/search", params={"q": q, **params}, headers=user_headers(user["id"])
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _chat_ids(results: dict[str, Any]) -> list[str]:
    return [item["chat"]["id"] for item in results["items"]]


def _marked(snippet: str) -> list[str]:
    """The words a snippet highlights."""
    return [part.split(STOP)[0] for part in snippet.split(START)[1:]]


@pytest.fixture
def user(db_api_client: httpx.Client) -> dict[str, Any]:
    return create_user(db_api_client)


def test_finds_a_chat_by_a_word_in_a_message(
    db_api_client: httpx.Client, user: dict[str, Any]
) -> None:
    chat = create_chat(db_api_client, user_id=user["id"], title="Holidays")
    create_turn(
        db_api_client,
        user_id=user["id"],
        chat_id=chat["id"],
        content="Which tram goes up to the castle in Lisbon?",
    )
    create_chat(db_api_client, user_id=user["id"], title="Unrelated")
    results = _search(db_api_client, user, "TRAM")
    assert results["query"] == "TRAM"
    assert len(results["items"]) == 1
    hit = results["items"][0]
    assert hit["chat"]["id"] == chat["id"]
    assert set(hit["chat"]) == {"id", "title", "created_at", "updated_at"}
    assert _marked(hit["snippet"]) == ["tram"]
    assert "castle" in hit["snippet"]


def test_finds_a_chat_by_a_word_in_its_title(
    db_api_client: httpx.Client, user: dict[str, Any]
) -> None:
    chat = create_chat(db_api_client, user_id=user["id"], title="Sourdough starter")
    add_message(db_api_client, user_id=user["id"], chat_id=chat["id"], content="Flour?")
    results = _search(db_api_client, user, "sourdough")
    assert _chat_ids(results) == [chat["id"]]
    # No message matches, so the snippet is the highlighted title.
    assert results["items"][0]["snippet"] == f"{START}Sourdough{STOP} starter"


def test_the_best_match_comes_first(db_api_client: httpx.Client, user: dict[str, Any]) -> None:
    once = create_chat(db_api_client, user_id=user["id"], title="Mentions it once")
    first = create_turn(
        db_api_client,
        user_id=user["id"],
        chat_id=once["id"],
        content="By the way, ferries leave from the harbour every hour all day long.",
    )
    # Each reply finished before the next chat's turn: one being written per user.
    finish_reply(db_api_client, user_id=user["id"], turn=first)
    often = create_chat(db_api_client, user_id=user["id"], title="Ferries")
    often_turn = create_turn(
        db_api_client,
        user_id=user["id"],
        chat_id=often["id"],
        content="Ferries, ferries: which ferries go to the islands?",
    )
    finish_reply(db_api_client, user_id=user["id"], turn=often_turn)
    # The most recently active chat would come first if rank were ignored.
    create_turn(db_api_client, user_id=user["id"], chat_id=once["id"], content="Thanks")
    results = _search(db_api_client, user, "ferries")
    assert _chat_ids(results) == [often["id"], once["id"]]


def test_equal_matches_are_newest_first(db_api_client: httpx.Client, user: dict[str, Any]) -> None:
    chats = [
        create_chat(db_api_client, user_id=user["id"], title=f"Zucchini {index}")
        for index in range(3)
    ]
    create_turn(db_api_client, user_id=user["id"], chat_id=chats[0]["id"], content="ok")
    results = _search(db_api_client, user, "zucchini")
    assert _chat_ids(results) == [chats[0]["id"], chats[2]["id"], chats[1]["id"]]


def test_snippet_uses_the_best_message_and_two_fragments(
    db_api_client: httpx.Client, user: dict[str, Any]
) -> None:
    chat = create_chat(db_api_client, user_id=user["id"], title="Gardening")
    filler = " ".join(f"word{index}" for index in range(60))
    content = f"Tomatoes need sun. {filler} Water the tomatoes in the morning."
    create_turn(db_api_client, user_id=user["id"], chat_id=chat["id"], content=content)
    snippet = _search(db_api_client, user, "tomatoes")["items"][0]["snippet"]
    assert _marked(snippet) == ["Tomatoes", "tomatoes"]
    assert len(snippet) < len(content)
    assert "<" not in snippet


def test_each_chat_appears_once(db_api_client: httpx.Client, user: dict[str, Any]) -> None:
    chat = create_chat(db_api_client, user_id=user["id"], title="Quinoa recipes")
    for _ in range(3):
        turn = create_turn(
            db_api_client, user_id=user["id"], chat_id=chat["id"], content="More quinoa"
        )
        finish_reply(db_api_client, user_id=user["id"], turn=turn)
    assert _chat_ids(_search(db_api_client, user, "quinoa")) == [chat["id"]]


def test_other_users_chats_never_appear(db_api_client: httpx.Client) -> None:
    alice = create_user(db_api_client)
    bob = create_user(db_api_client)
    secret = f"xylophone{uuid.uuid4().hex[:6]}"
    for owner in (alice, bob):
        chat = create_chat(db_api_client, user_id=owner["id"], title=f"About {secret}")
        create_turn(
            db_api_client, user_id=owner["id"], chat_id=chat["id"], content=f"My {secret} story"
        )
    alice_hits = _search(db_api_client, alice, secret)["items"]
    bob_hits = _search(db_api_client, bob, secret)["items"]
    assert len(alice_hits) == len(bob_hits) == 1
    alice_chats = db_api_client.get("/chats", headers=user_headers(alice["id"])).json()["items"]
    assert [hit["chat"] for hit in alice_hits] == alice_chats
    assert alice_hits[0]["chat"]["id"] != bob_hits[0]["chat"]["id"]
    stranger = create_user(db_api_client)
    assert _search(db_api_client, stranger, secret)["items"] == []


@pytest.mark.parametrize("word", ["café", "привет", "Straße", "東京"])
def test_non_ascii_words_are_found(
    db_api_client: httpx.Client, user: dict[str, Any], word: str
) -> None:
    chat = create_chat(db_api_client, user_id=user["id"], title="Unicode")
    create_turn(
        db_api_client,
        user_id=user["id"],
        chat_id=chat["id"],
        content=f"Say {word} to everyone, please.",
    )
    results = _search(db_api_client, user, word)
    assert _chat_ids(results) == [chat["id"]]
    assert _marked(results["items"][0]["snippet"]) == [word]


def test_web_search_syntax(db_api_client: httpx.Client, user: dict[str, Any]) -> None:
    both = create_chat(db_api_client, user_id=user["id"], title="Red kite")
    create_turn(db_api_client, user_id=user["id"], chat_id=both["id"], content="A red kite flew")
    kite_only = create_chat(db_api_client, user_id=user["id"], title="Blue kite")
    assert set(_chat_ids(_search(db_api_client, user, "kite"))) == {both["id"], kite_only["id"]}
    assert _chat_ids(_search(db_api_client, user, "kite -red")) == [kite_only["id"]]
    assert _chat_ids(_search(db_api_client, user, '"red kite"')) == [both["id"]]


def test_limit(db_api_client: httpx.Client, user: dict[str, Any]) -> None:
    for index in range(4):
        create_chat(db_api_client, user_id=user["id"], title=f"Marmalade {index}")
    assert len(_search(db_api_client, user, "marmalade", limit=2)["items"]) == 2
    assert len(_search(db_api_client, user, "marmalade")["items"]) == 4


@pytest.mark.parametrize("q", ["!!!", "-", '""', "&|!():*", "... ,;"])
def test_a_query_without_words_matches_nothing(
    db_api_client: httpx.Client, user: dict[str, Any], q: str
) -> None:
    create_chat(db_api_client, user_id=user["id"], title="Anything at all !!! or -")
    results = _search(db_api_client, user, q)
    assert results["items"] == []


def test_query_is_trimmed(db_api_client: httpx.Client, user: dict[str, Any]) -> None:
    chat = create_chat(db_api_client, user_id=user["id"], title="Origami cranes")
    results = _search(db_api_client, user, "  origami  ")
    assert results["query"] == "origami"
    assert _chat_ids(results) == [chat["id"]]


def test_stored_marker_characters_cannot_unbalance_the_snippet(
    db_api_client: httpx.Client, user: dict[str, Any]
) -> None:
    chat = create_chat(db_api_client, user_id=user["id"], title="Control characters")
    create_turn(
        db_api_client,
        user_id=user["id"],
        chat_id=chat["id"],
        content=f"Odd {STOP}text with a pelican{START} inside",
    )
    snippet = _search(db_api_client, user, "pelican")["items"][0]["snippet"]
    assert snippet.count(START) == snippet.count(STOP) == 1
    assert _marked(snippet) == ["pelican"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": ""},
        {"q": "   "},
        {"q": "x" * 201},
        {"q": "nul\x00"},
        {"q": "ok", "limit": 0},
        {"q": "ok", "limit": 51},
        {"q": "ok", "limit": "many"},
    ],
)
def test_bad_search_is_422(
    db_api_client: httpx.Client, user: dict[str, Any], params: dict[str, Any]
) -> None:
    response = db_api_client.get("/chats/search", params=params, headers=user_headers(user["id"]))
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_longest_query_is_fine(db_api_client: httpx.Client, user: dict[str, Any]) -> None:
    assert _search(db_api_client, user, "word " * 39 + "word")["items"] == []


async def test_non_ascii_case_folds_in_a_utf8_locale_database(postgres: PostgresCluster) -> None:
    """Native mode and compose run PostgreSQL with a UTF-8 LC_CTYPE: "CAFÉ" finds "café".

    (The session's test cluster uses the C locale, where only ASCII letters fold.)
    """
    name = f"search_utf8_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        postgres.url_for("postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        with admin.connect() as connection:
            connection.execute(
                text(f"CREATE DATABASE {name} TEMPLATE template0 LC_CTYPE 'C.UTF-8'")
            )
    finally:
        admin.dispose()
    env = db_api_env(postgres=postgres, database=name, service_token=secrets.token_urlsafe(32))
    run_migrations(env)
    engine = create_engine(postgres.url_for(name), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            user_id, chat_id = uuid.uuid4(), uuid.uuid4()
            connection.execute(
                text("INSERT INTO users (id, username, password_hash) VALUES (:id, 'u', 'x')"),
                {"id": user_id},
            )
            connection.execute(
                text("INSERT INTO chats (id, owner_id, title) VALUES (:id, :owner, 'CAFÉ')"),
                {"id": chat_id, "owner": user_id},
            )
            connection.execute(
                text("INSERT INTO messages (chat_id, role, content) VALUES (:chat, 'user', :c)"),
                {"chat": chat_id, "c": "ПРИВЕТ, Straße"},
            )
        # The query itself, as db-api runs it: asyncpg under SQLAlchemy's async session.
        service_engine = create_async_engine(
            make_url(postgres.url_for(name)).set(drivername="postgresql+asyncpg"),
            poolclass=NullPool,
        )
        try:
            async with AsyncSession(service_engine) as db:
                for query in ("café", "Café", "привет", "Привет"):
                    hits = await search.search_chats(db, owner_id=user_id, query=query, limit=5)
                    assert [chat.id for chat, _, _ in hits] == [chat_id], query
        finally:
            await service_engine.dispose()
    finally:
        engine.dispose()
