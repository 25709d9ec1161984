"""chat-ui's route table, route by route: Bob with Alice's ids, and CSRF on every change.

Routes come from the app itself, so a new route that is in neither table below makes
`test_every_route_is_classified` fail until someone decides how it is protected.
db-api's own scoping (every query by its owner) is checked against PostgreSQL in
tests/db_api/test_authorization_matrix.py; this is chat-ui's half: that it asks for
Bob, answers 404 without a word of Alice's, and changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chat_ui.main import app
from harness.forms import Browser
from tests.support.inprocess import InProcessApp
from tests.support.routes import route_table

SECRET = "alice-private-words"

# Routes that name a chat: Bob gets Alice's ids. `{message_id}` is Alice's reply.
CHAT_ROUTES: dict[tuple[str, str], dict[str, str] | None] = {
    ("GET", "/chats/{chat_id}"): None,
    ("POST", "/chats/{chat_id}/messages"): {"content": "mine now"},
    ("GET", "/chats/{chat_id}/messages/{message_id}/stream"): None,
    ("POST", "/chats/{chat_id}/stop"): {},
    ("POST", "/chats/{chat_id}/retry"): {},
    ("POST", "/chats/{chat_id}/regenerate"): {},
    ("POST", "/chats/{chat_id}/edit"): {"content": "mine now"},
    ("POST", "/chats/{chat_id}/rename"): {"title": "mine now"},
    ("GET", "/chats/{chat_id}/delete"): None,
    ("POST", "/chats/{chat_id}/delete"): {},
    ("GET", "/chats/{chat_id}/export.md"): None,
    ("GET", "/chats/{chat_id}/export.json"): None,
}
# Routes that name no chat: what Bob sees is his own, or nobody's.
OWN_OR_PUBLIC = {
    ("GET", "/"): "redirects only",
    ("GET", "/chats"): "Bob's own list (checked below)",
    ("POST", "/chats"): "creates Bob's own chat",
    ("GET", "/search"): "searches Bob's own chats (checked below)",
    ("GET", "/login"): "public form",
    ("POST", "/login"): "public form",
    ("GET", "/signup"): "public form",
    ("POST", "/signup"): "public form",
    ("POST", "/logout"): "ends the caller's own session",
    ("GET", "/account"): "lists Bob's own sign-ins (tests/inprocess/test_account.py)",
    ("POST", "/account/password"): "changes Bob's own password",
    ("POST", "/account/sessions/end"): "Alice's sign-in is not found for Bob (checked below)",
    ("GET", "/account/sign-out-everywhere"): "a confirmation page",
    ("GET", "/account/export"): "exports Bob's own chats (tests/inprocess/test_account.py)",
    ("GET", "/account/delete"): "a confirmation page",
    ("POST", "/account/delete"): "deletes Bob's own account",
    ("GET", "/reset-password"): "public form; the link's token is the credential",
    ("POST", "/reset-password"): "public form; the link's token is the credential",
    ("GET", "/health"): "no data",
    ("GET", "/health/ready"): "no data",
}
# The admin pages: a 404 for everyone but an active admin, as db-api checks too. The
# role matrix (user, admin, pending, disabled, signed out) runs against the real db-api
# in tests/chat_ui/test_admin.py; this tier checks their CSRF protection.
ADMIN_ROUTES = {
    ("GET", "/admin"),
    ("GET", "/admin/users"),
    ("POST", "/admin/users/{user_id}/status"),
    ("POST", "/admin/users/{user_id}/role"),
    ("GET", "/admin/users/{user_id}/delete"),
    ("POST", "/admin/users/{user_id}/delete"),
    ("POST", "/admin/users/{user_id}/password-reset"),
    ("GET", "/admin/invites"),
    ("POST", "/admin/invites"),
    ("POST", "/admin/invites/{invite_id}/delete"),
    ("GET", "/admin/settings"),
    ("POST", "/admin/settings"),
    ("GET", "/admin/audit"),
}
STATE_CHANGING = {route for route in route_table(app) if route[0] not in ("GET", "HEAD")}


@pytest.fixture
def alice_and_bob(inprocess: InProcessApp) -> dict[str, Any]:
    alice, bob = inprocess.browser(), inprocess.browser()
    alice.sign_up()
    bob.sign_up()
    alice_id = inprocess.user_id(alice)
    chat_id = alice.new_chat()
    db = inprocess.db
    inprocess.call(db.add_message, alice_id, chat_id, content=SECRET)
    turn = inprocess.call(db.start_turn, alice_id, chat_id, content=SECRET)
    alice_session_id = next(s.id for s in db.sessions.values() if s.user_id == alice_id)
    return {
        "alice": alice,
        "bob": bob,
        "alice_id": alice_id,
        "alice_session_id": str(alice_session_id),
        "chat_id": chat_id,
        "reply_id": turn["reply"]["id"],
        "app": inprocess,
    }


def alice_chat(world: dict[str, Any]) -> Any:
    inprocess: InProcessApp = world["app"]
    return inprocess.stored_chat(world["alice"], world["chat_id"])


def test_every_route_is_classified() -> None:
    table = route_table(app)
    assert table == CHAT_ROUTES.keys() | OWN_OR_PUBLIC.keys() | ADMIN_ROUTES
    print(
        f"chat-ui route table: {len(table)} routes; {len(CHAT_ROUTES)} name a chat; "
        f"{len(STATE_CHANGING)} change state"
    )


@pytest.mark.parametrize("route", sorted(CHAT_ROUTES), ids=" ".join)
def test_bob_gets_not_found_for_alices_chat(
    alice_and_bob: dict[str, Any], route: tuple[str, str]
) -> None:
    world, (method, template) = alice_and_bob, route
    bob: Browser = world["bob"]
    before = alice_chat(world)
    path = template.format(chat_id=world["chat_id"], message_id=world["reply_id"])
    form = CHAT_ROUTES[route]
    if form is None:
        response = bob.http.request(method, path)
    else:
        response = bob.http.post(path, data={"csrf_token": bob.csrf_token(), **form})
    assert response.status_code == 404, (route, response.status_code)
    assert SECRET not in response.text
    assert alice_chat(world) == before


def test_bobs_own_pages_show_nothing_of_alices(alice_and_bob: dict[str, Any]) -> None:
    bob: Browser = alice_and_bob["bob"]
    for path in ("/chats", f"/search?q={SECRET}", "/"):
        response = bob.get(path)
        assert response.status_code == 200
        assert alice_and_bob["chat_id"] not in response.text
        assert 'class="search-result"' not in response.text


def test_bob_cannot_sign_out_alices_browser(alice_and_bob: dict[str, Any]) -> None:
    bob: Browser = alice_and_bob["bob"]
    for session_id in (alice_and_bob["alice_session_id"], str(uuid.uuid4()), "not-an-id"):
        response = bob.submit("/account/sessions/end", {"session_id": session_id})
        assert response.status_code == 404, session_id
        assert "That sign-in has ended already." in response.text
    assert alice_and_bob["alice"].get("/chats").url.path == "/chats"  # still signed in


@pytest.mark.parametrize("route", sorted(STATE_CHANGING), ids=" ".join)
@pytest.mark.parametrize("token", ["missing", "wrong", "another session's"])
def test_every_state_change_needs_this_sessions_csrf_token(
    alice_and_bob: dict[str, Any], route: tuple[str, str], token: str
) -> None:
    alice: Browser = alice_and_bob["alice"]
    method, template = route
    path = template.format(
        chat_id=alice_and_bob["chat_id"], user_id=alice_and_bob["alice_id"], invite_id=uuid.uuid4()
    )
    form = dict(CHAT_ROUTES.get(route) or {})
    # Every field a route reads, so a check that let the form through would change something.
    form |= {
        "username": alice.username,
        "password": alice.password,
        "password_confirm": alice.password,
        "content": "hi",
        "title": "changed",
        "current_password": alice.password,
        "new_password": "a changed password",
        "new_password_confirm": "a changed password",
        "session_id": alice_and_bob["alice_session_id"],
        "status": "disabled",
        "role": "user",
        "signup_mode": "closed",
        "valid_hours": "24",
        "token": "a-reset-link-token",
    }
    if token == "wrong":
        form["csrf_token"] = "x" * 43
    elif token == "another session's":
        form["csrf_token"] = alice_and_bob["bob"].csrf_token()
    before = alice_chat(alice_and_bob)
    response = alice.http.request(method, path, data=form)
    # Refused outright (403), or, for the chat's own buttons without JavaScript, sent
    # back to the chat with the same explanation; either way nothing happened.
    redirected_to_chat = [r.status_code for r in response.history] == [303] and (
        response.url.path == f"/chats/{alice_and_bob['chat_id']}"
    )
    assert response.status_code == 403 or redirected_to_chat, (route, token, response.status_code)
    assert "Your session expired or the form is stale" in response.text
    assert alice_chat(alice_and_bob) == before
    assert alice.get("/chats").url.path == "/chats"  # still signed in
    inprocess: InProcessApp = alice_and_bob["app"]
    assert inprocess.call(inprocess.db.accepts_password, alice.username, alice.password)
