"""The acting user's own account: a new password (the other sessions end), or the account
deleted with everything in it; both only with the password, throttled like sign-ins."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from harness.db_api import DbApiServer
from harness.factories import (
    DEFAULT_PASSWORD,
    add_message,
    create_chat,
    create_turn,
    create_user,
    user_headers,
)

DAY = 24 * 3600
NEW_PASSWORD = "a brand new passphrase"


def start(client: httpx.Client, user_id: str) -> str:
    body = {"user_id": user_id, "max_age_seconds": DAY}
    response = client.post("/sessions", json=body)
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def alive(client: httpx.Client, token: str) -> bool:
    response = client.get("/sessions/current", headers={"X-Session-Token": token})
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


def signs_in(client: httpx.Client, username: str, password: str) -> bool:
    response = client.post("/users/verify", json={"username": username, "password": password})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def change_password(
    client: httpx.Client, user_id: str, current: str, token: str | None = None, **extra: str
) -> httpx.Response:
    headers = user_headers(user_id) | ({"X-Session-Token": token} if token else {})
    body = {"current_password": current, "new_password": NEW_PASSWORD, **extra}
    return client.post("/users/me/password", json=body, headers=headers)


def delete_account(client: httpx.Client, user_id: str, password: str) -> httpx.Response:
    return client.request(
        "DELETE", "/users/me", json={"password": password}, headers=user_headers(user_id)
    )


def rows_of(db_api: DbApiServer, user_id: str) -> dict[str, int]:
    """How many rows of each table belong to the user."""
    counts = {
        "users": "SELECT count(*) FROM users WHERE id = :id",
        "sessions": "SELECT count(*) FROM sessions WHERE user_id = :id",
        "chats": "SELECT count(*) FROM chats WHERE owner_id = :id",
        "messages": "SELECT count(*) FROM messages m JOIN chats c ON c.id = m.chat_id "
        "WHERE c.owner_id = :id",
        "reply_jobs": "SELECT count(*) FROM reply_jobs WHERE owner_id = :id",
        "rate_limit_buckets": "SELECT count(*) FROM rate_limit_buckets "
        "WHERE key IN ('chat:' || :id, 'reply:' || :id)",
    }
    engine = create_engine(db_api.database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return {
                table: int(connection.scalar(text(query), {"id": user_id}) or 0)
                for table, query in counts.items()
            }
    finally:
        engine.dispose()


# A new password


def test_a_wrong_current_password_changes_nothing(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    tokens = [start(db_api_client, user["id"]) for _ in range(2)]
    refused = change_password(db_api_client, user["id"], "not my password", tokens[0])
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Wrong password"}
    assert signs_in(db_api_client, user["username"], DEFAULT_PASSWORD)
    assert not signs_in(db_api_client, user["username"], NEW_PASSWORD)
    assert all(alive(db_api_client, token) for token in tokens)


def test_a_new_password_ends_the_other_sessions_and_keeps_this_one(
    db_api_client: httpx.Client,
) -> None:
    user, other = create_user(db_api_client), create_user(db_api_client)
    this, *others = (start(db_api_client, user["id"]) for _ in range(3))
    bystander = start(db_api_client, other["id"])
    changed = change_password(db_api_client, user["id"], DEFAULT_PASSWORD, this)
    assert changed.status_code == 204, changed.text
    assert alive(db_api_client, this)
    assert not any(alive(db_api_client, token) for token in others)
    assert alive(db_api_client, bystander)
    assert not signs_in(db_api_client, user["username"], DEFAULT_PASSWORD)
    assert signs_in(db_api_client, user["username"], NEW_PASSWORD)
    assert signs_in(db_api_client, other["username"], DEFAULT_PASSWORD)


def test_a_new_password_without_a_session_ends_every_session(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    token = start(db_api_client, user["id"])
    assert change_password(db_api_client, user["id"], DEFAULT_PASSWORD).status_code == 204
    assert not alive(db_api_client, token)


def test_a_new_password_is_checked_like_one_at_sign_up(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    headers = user_headers(user["id"])
    for body in (
        {"current_password": DEFAULT_PASSWORD, "new_password": "short"},
        {"current_password": DEFAULT_PASSWORD, "new_password": "x" * 129},
        {"current_password": DEFAULT_PASSWORD, "new_password": "nul\x00inside"},
        {"current_password": "", "new_password": NEW_PASSWORD},
        {"current_password": DEFAULT_PASSWORD},
        {"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD, "extra": 1},
    ):
        response = db_api_client.post("/users/me/password", json=body, headers=headers)
        assert response.status_code == 422, body
    assert signs_in(db_api_client, user["username"], DEFAULT_PASSWORD)


def test_wrong_current_passwords_are_throttled_like_sign_ins(db_api_client: httpx.Client) -> None:
    """LOGIN_MAX_FAILURES (5 by default) from one address lock the account for that address."""
    user = create_user(db_api_client)
    address = {"client_ip": "192.0.2.55"}
    for _ in range(5):
        wrong = change_password(db_api_client, user["id"], "a guess", **address)
        assert wrong.status_code == 403
    locked = change_password(db_api_client, user["id"], DEFAULT_PASSWORD, **address)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    # The same counts as at sign-in: that address cannot sign in to the account either.
    sign_in = db_api_client.post(
        "/users/verify",
        json={"username": user["username"], "password": DEFAULT_PASSWORD, **address},
    )
    assert sign_in.status_code == 429
    refused_delete = db_api_client.request(
        "DELETE",
        "/users/me",
        json={"password": DEFAULT_PASSWORD, **address},
        headers=user_headers(user["id"]),
    )
    assert refused_delete.status_code == 429
    # From elsewhere the owner still can.
    assert signs_in(db_api_client, user["username"], DEFAULT_PASSWORD)


# Deleting the account


def user_with_everything(client: httpx.Client) -> dict[str, Any]:
    """A user with chats, messages, a reply being written, rate-limit buckets, sessions."""
    user = create_user(client)
    chat_ids = []
    for title in ("One", "Two"):
        chat = create_chat(client, user_id=user["id"], title=title)
        add_message(client, user_id=user["id"], chat_id=chat["id"], content=f"{title} words")
        chat_ids.append(chat["id"])
    create_turn(client, user_id=user["id"], chat_id=chat_ids[0], content="Still writing?")
    start(client, user["id"])
    return user


def test_a_wrong_password_deletes_nothing(db_api_client: httpx.Client, db_api: DbApiServer) -> None:
    user = user_with_everything(db_api_client)
    before = rows_of(db_api, user["id"])
    refused = delete_account(db_api_client, user["id"], "not my password")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Wrong password"}
    assert rows_of(db_api, user["id"]) == before
    assert all(count > 0 for count in before.values()), before


def test_deleting_the_account_removes_everything_that_is_its(
    db_api_client: httpx.Client, db_api: DbApiServer
) -> None:
    user = user_with_everything(db_api_client)
    bystander = user_with_everything(db_api_client)
    bystander_rows = rows_of(db_api, bystander["id"])
    assert delete_account(db_api_client, user["id"], DEFAULT_PASSWORD).status_code == 204
    assert rows_of(db_api, user["id"]) == dict.fromkeys(bystander_rows, 0)
    assert rows_of(db_api, bystander["id"]) == bystander_rows
    me = db_api_client.get("/users/me", headers=user_headers(user["id"]))
    assert me.status_code == 404
    assert delete_account(db_api_client, user["id"], DEFAULT_PASSWORD).status_code == 404
    # The name is free again.
    create_user(db_api_client, username=user["username"])
