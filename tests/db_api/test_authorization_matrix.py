"""Every db-api route, taken from the app's route table, acted on by Bob with Alice's ids.

Each route either has a case below that proves Bob gets 404 (or only his own data) and
nothing of Alice's changes, or an entry in SERVICE_LEVEL saying why it names no user.
A route added to db-api without either fails `test_every_route_is_in_the_matrix`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from db_api.main import app
from harness.db_api import DbApiServer
from harness.factories import (
    DEFAULT_PASSWORD,
    add_message,
    create_chat,
    create_turn,
    create_user,
    user_headers,
)
from tests.support.routes import route_table

SECRET = "alice-secret-words"


@dataclass(frozen=True)
class World:
    client: httpx.Client
    alice: dict[str, Any]
    bob: dict[str, Any]
    chat: dict[str, Any]
    reply: dict[str, Any]
    alice_token: str

    def as_bob(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {**user_headers(self.bob["id"]), **(headers or {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def alice_view(self) -> Any:
        chat = self.client.get(f"/chats/{self.chat['id']}", headers=user_headers(self.alice["id"]))
        chats = self.client.get("/chats", headers=user_headers(self.alice["id"]))
        return chat.json(), chats.json()


@pytest.fixture
def world(db_api_client: httpx.Client) -> World:
    alice, bob = create_user(db_api_client), create_user(db_api_client)
    chat = create_chat(db_api_client, user_id=alice["id"], title=f"Alice {SECRET}")
    add_message(db_api_client, user_id=alice["id"], chat_id=chat["id"], content=SECRET)
    turn = create_turn(db_api_client, user_id=alice["id"], chat_id=chat["id"], content=SECRET)
    session = db_api_client.post(
        "/sessions", json={"user_id": alice["id"], "max_age_seconds": 3600}
    ).json()
    return World(db_api_client, alice, bob, chat, turn["reply"], session["token"])


def chat_route(
    method: str, suffix: str, body: dict[str, Any] | None = None
) -> Callable[[World], None]:
    """Bob names Alice's chat (and her reply): 404 exactly like a missing chat."""

    def case(world: World) -> None:
        path = f"/chats/{{chat}}{suffix}".replace("{message}", str(world.reply["id"]))
        as_bob = world.as_bob(method, path.format(chat=world.chat["id"]), json=body)
        missing = world.as_bob(method, path.format(chat=uuid.uuid4()), json=body)
        assert as_bob.status_code == missing.status_code == 404, as_bob.text
        assert as_bob.json() == missing.json()
        assert SECRET not in as_bob.text

    return case


def list_chats(world: World) -> None:
    response = world.as_bob("GET", "/chats")
    assert response.status_code == 200
    assert response.json()["total"] == 0 and SECRET not in response.text


def search_chats(world: World) -> None:
    response = world.as_bob("GET", "/chats/search", params={"q": SECRET})
    assert response.status_code == 200
    assert response.json()["items"] == []


def create_chat_as_bob(world: World) -> None:
    response = world.as_bob("POST", "/chats", json={"title": "Bob's"})
    assert response.status_code == 201
    assert SECRET not in response.text


def me(world: World) -> None:
    response = world.as_bob("GET", "/users/me")
    assert response.status_code == 200
    assert response.json()["id"] == world.bob["id"]


def near_miss(token: str) -> str:
    """The token with its last character changed (never to itself: it may already be "A")."""
    return token[:-1] + ("B" if token.endswith("A") else "A")


def resolve_session(world: World) -> None:
    # The token is the credential: Bob's X-User-Id does not turn a guess into Alice's.
    guessed = world.client.get(
        "/sessions/current",
        headers={**user_headers(world.bob["id"]), "X-Session-Token": near_miss(world.alice_token)},
    )
    assert guessed.status_code == 404 and world.alice["username"] not in guessed.text


def page_view(world: World) -> None:
    # Bob's own session naming Alice's chat: her chat is as missing as no chat.
    bob_token = world.client.post(
        "/sessions", json={"user_id": world.bob["id"], "max_age_seconds": 3600}
    ).json()["token"]
    headers = {"X-Session-Token": bob_token}
    path = "/sessions/current/page"
    as_bob = world.client.get(path, params={"chat_id": world.chat["id"]}, headers=headers)
    missing = world.client.get(path, params={"chat_id": str(uuid.uuid4())}, headers=headers)
    assert as_bob.status_code == missing.status_code == 200
    assert as_bob.json()["chat"] is None and as_bob.json()["chats"] == []
    assert SECRET not in as_bob.text
    # Alice's ETag (as If-None-Match) does not turn Bob's request into a 304 of her page.
    alice_page = world.client.get(path, headers={"X-Session-Token": world.alice_token})
    replayed = world.client.get(
        path, headers={**headers, "If-None-Match": alice_page.headers["ETag"]}
    )
    assert replayed.status_code == 200 and SECRET not in replayed.text
    guessed = world.client.get(path, headers={"X-Session-Token": near_miss(world.alice_token)})
    assert guessed.status_code == 404 and world.alice["username"] not in guessed.text


def end_session(world: World) -> None:
    guessed = world.as_bob("DELETE", "/sessions/current", headers={"X-Session-Token": "guess"})
    assert guessed.status_code in (204, 422)
    alive = world.client.get("/sessions/current", headers={"X-Session-Token": world.alice_token})
    assert alive.status_code == 200


def end_all_sessions(world: World) -> None:
    assert world.as_bob("DELETE", "/sessions").status_code == 204
    alive = world.client.get("/sessions/current", headers={"X-Session-Token": world.alice_token})
    assert alive.status_code == 200


def alices_sessions_alive(world: World) -> bool:
    live = world.client.get("/sessions/current", headers={"X-Session-Token": world.alice_token})
    return live.status_code == 200


def list_sessions(world: World) -> None:
    # Alice's token does not make her sessions Bob's to list, nor mark one as his.
    listed = world.as_bob("GET", "/sessions", headers={"X-Session-Token": world.alice_token})
    assert listed.status_code == 200
    assert listed.json()["items"] == []


def end_one_session(world: World) -> None:
    listed = world.client.get("/sessions", headers=user_headers(world.alice["id"]))
    alice_session = listed.json()["items"][0]["id"]
    as_bob = world.as_bob("DELETE", f"/sessions/{alice_session}")
    missing = world.as_bob("DELETE", f"/sessions/{uuid.uuid4()}")
    assert as_bob.status_code == missing.status_code == 404
    assert as_bob.json() == missing.json()
    assert alices_sessions_alive(world)


def alice_still_signs_in(world: World) -> None:
    answer = world.client.post(
        "/users/verify", json={"username": world.alice["username"], "password": DEFAULT_PASSWORD}
    )
    assert answer.status_code == 200
    assert alices_sessions_alive(world)


def change_password(world: World) -> None:
    # Every test user has the same password: Bob's change is his own, never Alice's.
    body = {"current_password": DEFAULT_PASSWORD, "new_password": "Bob's new password"}
    assert world.as_bob("POST", "/users/me/password", json=body).status_code == 204
    alice_still_signs_in(world)


def delete_account(world: World) -> None:
    deleted = world.as_bob("DELETE", "/users/me", json={"password": DEFAULT_PASSWORD})
    assert deleted.status_code == 204
    alice_still_signs_in(world)


def export_chats(world: World) -> None:
    response = world.as_bob("GET", "/chats/export")
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_after": None}


def admin_route(
    method: str, path: str, body: dict[str, Any] | None = None
) -> Callable[[World], None]:
    """Bob is no admin: refused before anything is read, Alice's account included.

    Every role and status (pending, disabled, a revoked admin) is in tests/db_api/test_admin.py.
    """

    def case(world: World) -> None:
        concrete = path.format(user=world.alice["id"], invite=uuid.uuid4())
        refused = world.as_bob(method, concrete, json=body)
        assert refused.status_code == 403 and refused.json() == {"detail": "Admins only"}
        alice_still_signs_in(world)

    return case


MATRIX: dict[tuple[str, str], Callable[[World], None]] = {
    ("GET", "/admin/users"): admin_route("GET", "/admin/users"),
    ("GET", "/admin/users/{target_id}"): admin_route("GET", "/admin/users/{user}"),
    ("PUT", "/admin/users/{target_id}/status"): admin_route(
        "PUT", "/admin/users/{user}/status", {"status": "disabled"}
    ),
    ("PUT", "/admin/users/{target_id}/role"): admin_route(
        "PUT", "/admin/users/{user}/role", {"role": "admin"}
    ),
    ("DELETE", "/admin/users/{target_id}"): admin_route("DELETE", "/admin/users/{user}"),
    ("POST", "/admin/users/{target_id}/password-reset"): admin_route(
        "POST", "/admin/users/{user}/password-reset"
    ),
    ("GET", "/admin/invites"): admin_route("GET", "/admin/invites"),
    ("POST", "/admin/invites"): admin_route("POST", "/admin/invites", {"valid_hours": 1}),
    ("DELETE", "/admin/invites/{invite_id}"): admin_route("DELETE", "/admin/invites/{invite}"),
    ("GET", "/admin/settings"): admin_route("GET", "/admin/settings"),
    ("PUT", "/admin/settings"): admin_route("PUT", "/admin/settings", {"signup_mode": "open"}),
    ("GET", "/admin/audit"): admin_route("GET", "/admin/audit"),
    ("POST", "/users/me/password"): change_password,
    ("DELETE", "/users/me"): delete_account,
    ("GET", "/sessions"): list_sessions,
    ("DELETE", "/sessions/{session_id}"): end_one_session,
    ("GET", "/chats/export"): export_chats,
    ("GET", "/users/me"): me,
    ("GET", "/sessions/current"): resolve_session,
    ("GET", "/sessions/current/page"): page_view,
    ("DELETE", "/sessions/current"): end_session,
    ("DELETE", "/sessions"): end_all_sessions,
    ("GET", "/chats"): list_chats,
    ("POST", "/chats"): create_chat_as_bob,
    ("GET", "/chats/search"): search_chats,
    ("GET", "/chats/{chat_id}"): chat_route("GET", ""),
    ("PATCH", "/chats/{chat_id}"): chat_route("PATCH", "", {"title": "Mine now"}),
    ("DELETE", "/chats/{chat_id}"): chat_route("DELETE", ""),
    ("POST", "/chats/{chat_id}/messages"): chat_route(
        "POST", "/messages", {"role": "user", "content": "hi"}
    ),
    ("DELETE", "/chats/{chat_id}/messages"): chat_route("DELETE", "/messages?after_id=0"),
    ("POST", "/chats/{chat_id}/turns"): chat_route("POST", "/turns", {"content": "hi"}),
    ("GET", "/chats/{chat_id}/messages/{message_id}"): chat_route("GET", "/messages/{message}"),
    ("PATCH", "/chats/{chat_id}/messages/{message_id}"): chat_route(
        "PATCH", "/messages/{message}", {"status": "stopped", "if_status": "generating"}
    ),
    ("PUT", "/chats/{chat_id}/messages/{message_id}/lease"): chat_route(
        "PUT", "/messages/{message}/lease", {"slots": 4}
    ),
}

# Routes that name no user's data, and why.
SERVICE_LEVEL = {
    ("POST", "/users"): "creates a new account; names nobody else",
    ("POST", "/users/verify"): "a password check; answers only the account whose password matches",
    ("POST", "/sessions"): "called by chat-ui only after a password check; needs the service token",
    ("POST", "/reply-jobs/adopt"): "chat-ui takes over a reply whose writer died; it writes "
    "it for its owner, whom the answer names, and shows it to nobody",
    ("GET", "/settings"): "the install's sign-up policy, message length and system prompt",
    ("POST", "/links/lookup"): "the link's token is the credential; answers only what it is for",
    ("POST", "/password-resets"): "the link's token is the credential; an admin made it for "
    "one account (tests/db_api/test_admin.py)",
    ("GET", "/health/live"): "no data",
    ("GET", "/health/ready"): "no data",
    ("GET", "/openapi.json"): "the API description",
    ("GET", "/docs"): "the API description",
    ("GET", "/docs/oauth2-redirect"): "the API description",
    ("GET", "/redoc"): "the API description",
}


def test_every_route_is_in_the_matrix() -> None:
    table = route_table(app)
    assert not table - MATRIX.keys() - SERVICE_LEVEL.keys(), "add these routes to the matrix"
    assert not MATRIX.keys() - table, "the matrix names routes that no longer exist"
    # The figure for the reliability record.
    print(
        f"db-api authorization matrix: {len(MATRIX)} routes with cases, "
        f"{len(SERVICE_LEVEL)} service-level, {len(table)} in all"
    )


@pytest.mark.parametrize("route", sorted(MATRIX), ids=" ".join)
def test_bob_cannot_reach_alices_data(world: World, route: tuple[str, str]) -> None:
    before = world.alice_view()
    MATRIX[route](world)
    assert world.alice_view() == before, "Alice's chats changed"


def test_every_non_health_route_needs_the_service_token(db_api: DbApiServer) -> None:
    with httpx.Client(base_url=db_api.url) as anonymous:
        for method, path in sorted(
            MATRIX.keys() | {("POST", "/users"), ("POST", "/users/verify"), ("POST", "/sessions")}
        ):
            concrete = (
                path.replace("{chat_id}", str(uuid.uuid4()))
                .replace("{session_id}", str(uuid.uuid4()))
                .replace("{message_id}", "1")
                .replace("{target_id}", str(uuid.uuid4()))
                .replace("{invite_id}", str(uuid.uuid4()))
            )
            assert anonymous.request(method, concrete).status_code == 401, (method, path)
