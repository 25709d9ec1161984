"""Server-side sign-in sessions: start, resolve, expire, end, end everywhere; only a hash
stored; the user's own listed with their browser and address, and ended one by one."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from harness.db_api import DbApiServer
from harness.factories import create_user, user_headers

DAY = 24 * 3600
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def start(client: httpx.Client, user_id: str, max_age: int = DAY, **details: str) -> dict[str, Any]:
    new = {"user_id": user_id, "max_age_seconds": max_age, **details}
    response = client.post("/sessions", json=new)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def resolve(client: httpx.Client, token: str) -> httpx.Response:
    return client.get("/sessions/current", headers={"X-Session-Token": token})


def alive(client: httpx.Client, token: str) -> bool:
    status = resolve(client, token).status_code
    assert status in (200, 404)
    return status == 200


def sessions(client: httpx.Client, user_id: str, token: str | None = None) -> list[dict[str, Any]]:
    headers = user_headers(user_id) | ({"X-Session-Token": token} if token else {})
    response = client.get("/sessions", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def run_sql(db_api: DbApiServer, statement: str, **values: object) -> list[Any]:
    engine = create_engine(db_api.database_url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(statement), values)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()


def test_a_session_resolves_to_its_user(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    started = start(db_api_client, user["id"])
    assert started["user"] == user
    assert len(started["token"]) >= 43
    resolved = resolve(db_api_client, started["token"])
    assert resolved.status_code == 200
    assert resolved.json()["user"] == user
    assert resolved.json()["expires_at"] == started["expires_at"]


def test_only_a_hash_of_the_token_is_stored(
    db_api_client: httpx.Client, db_api: DbApiServer
) -> None:
    user = create_user(db_api_client)
    token = start(db_api_client, user["id"])["token"]
    rows = run_sql(
        db_api, "SELECT token_hash FROM sessions WHERE user_id = :user_id", user_id=user["id"]
    )
    assert [row.token_hash for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    dump = run_sql(db_api, "SELECT s::text AS row FROM sessions s")
    assert not any(token in row.row for row in dump)


def test_sign_out_ends_the_session_and_is_idempotent(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    token = start(db_api_client, user["id"])["token"]
    other = start(db_api_client, user["id"])["token"]
    for _ in range(2):
        ended = db_api_client.delete("/sessions/current", headers={"X-Session-Token": token})
        assert ended.status_code == 204
    gone = resolve(db_api_client, token)
    assert gone.status_code == 404
    assert gone.json() == {"detail": "Session expired or signed out"}
    # The same user's other browser stays signed in.
    assert resolve(db_api_client, other).status_code == 200


def test_sign_out_everywhere_ends_only_that_users_sessions(db_api_client: httpx.Client) -> None:
    alice, bob = create_user(db_api_client), create_user(db_api_client)
    alice_tokens = [start(db_api_client, alice["id"])["token"] for _ in range(3)]
    bob_token = start(db_api_client, bob["id"])["token"]
    response = db_api_client.delete("/sessions", headers=user_headers(alice["id"]))
    assert response.status_code == 204
    assert [resolve(db_api_client, token).status_code for token in alice_tokens] == [404] * 3
    assert resolve(db_api_client, bob_token).status_code == 200


def test_sessions_list_the_browser_address_and_last_seen(db_api_client: httpx.Client) -> None:
    user, other = create_user(db_api_client), create_user(db_api_client)
    laptop = start(db_api_client, user["id"], user_agent=f" {FIREFOX}\n", client_ip="203.0.113.7")
    phone = start(db_api_client, user["id"], user_agent="x" * 500, client_ip="::ffff:198.51.100.2")
    start(db_api_client, other["id"], user_agent="Bob's browser", client_ip="192.0.2.1")
    listed = sessions(db_api_client, user["id"], token=laptop["token"])
    assert len(listed) == 2
    by_address = {item["client_ip"]: item for item in listed}
    assert set(by_address) == {"203.0.113.7", "198.51.100.2"}
    assert by_address["203.0.113.7"]["user_agent"] == FIREFOX
    assert by_address["203.0.113.7"]["current"] is True
    assert by_address["198.51.100.2"]["user_agent"] == "x" * 200
    assert by_address["198.51.100.2"]["current"] is False
    for item in listed:
        assert set(item) == {
            "id",
            "created_at",
            "last_seen_at",
            "expires_at",
            "user_agent",
            "client_ip",
            "current",
        }
        assert laptop["token"] not in str(item) and phone["token"] not in str(item)
    # Without a token nothing is current; a session started without details lists as such.
    start(db_api_client, user["id"])
    listed = sessions(db_api_client, user["id"])
    assert [item["current"] for item in listed] == [False] * 3
    assert {(item["user_agent"], item["client_ip"]) for item in listed} >= {(None, None)}


def test_ending_one_session_signs_out_that_browser_only(db_api_client: httpx.Client) -> None:
    alice, bob = create_user(db_api_client), create_user(db_api_client)
    laptop, phone = (start(db_api_client, alice["id"])["token"] for _ in range(2))
    phone_id = next(
        item["id"] for item in sessions(db_api_client, alice["id"], phone) if item["current"]
    )
    # Bob names Alice's session: as missing as an unknown one, and it stays.
    as_bob = db_api_client.delete(f"/sessions/{phone_id}", headers=user_headers(bob["id"]))
    unknown = db_api_client.delete(f"/sessions/{uuid.uuid4()}", headers=user_headers(bob["id"]))
    assert as_bob.status_code == unknown.status_code == 404
    assert as_bob.json() == unknown.json() == {"detail": "Session expired or signed out"}
    assert alive(db_api_client, phone)

    ended = db_api_client.delete(f"/sessions/{phone_id}", headers=user_headers(alice["id"]))
    assert ended.status_code == 204
    assert not alive(db_api_client, phone)
    assert alive(db_api_client, laptop)
    again = db_api_client.delete(f"/sessions/{phone_id}", headers=user_headers(alice["id"]))
    assert again.status_code == 404


def test_an_expired_session_is_not_found_and_later_cleaned_up(
    db_api_client: httpx.Client, db_api: DbApiServer
) -> None:
    user = create_user(db_api_client)
    token = start(db_api_client, user["id"])["token"]
    run_sql(
        db_api,
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = :user_id",
        user_id=user["id"],
    )
    assert resolve(db_api_client, token).status_code == 404
    start(db_api_client, user["id"])  # starting a new one forgets the expired ones
    rows = run_sql(
        db_api, "SELECT count(*) AS n FROM sessions WHERE user_id = :user_id", user_id=user["id"]
    )
    assert rows[0].n == 1


def test_deleting_the_account_ends_its_sessions(
    db_api_client: httpx.Client, db_api: DbApiServer
) -> None:
    user = create_user(db_api_client)
    token = start(db_api_client, user["id"])["token"]
    run_sql(db_api, "DELETE FROM users WHERE id = :user_id", user_id=user["id"])
    assert resolve(db_api_client, token).status_code == 404


def test_bad_requests_are_refused_clearly(db_api_client: httpx.Client) -> None:
    user = create_user(db_api_client)
    unknown = db_api_client.post(
        "/sessions",
        json={"user_id": "00000000-0000-4000-8000-000000000000", "max_age_seconds": DAY},
    )
    assert unknown.status_code == 404
    for body in (
        {"user_id": user["id"], "max_age_seconds": 1},
        {"user_id": user["id"]},
        {"user_id": user["id"], "max_age_seconds": DAY, "extra": 1},
    ):
        assert db_api_client.post("/sessions", json=body).status_code == 422
    assert db_api_client.get("/sessions/current").status_code == 422
    for token in ("", "x", "not-a-token-at-all-0123456789", "x" * 201):
        response = db_api_client.get("/sessions/current", headers={"X-Session-Token": token})
        assert response.status_code in (404, 422), response.text


def test_session_routes_need_the_service_token(db_api: DbApiServer) -> None:
    with httpx.Client(base_url=db_api.url) as anonymous:
        for method, path in (
            ("POST", "/sessions"),
            ("GET", "/sessions/current"),
            ("DELETE", "/sessions/current"),
            ("DELETE", "/sessions"),
        ):
            assert anonymous.request(method, path).status_code == 401
