"""Roles, the sign-up policy, one-time links, the admin's routes and the audit log.

On a db-api of its own (a fresh database, `SIGNUP_MODE=approval` as shipped), so the
module's first sign-up is the install's first account and becomes its admin.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from harness.db_api import DbApiServer, db_api_env, running_db_api
from harness.factories import (
    DEFAULT_PASSWORD,
    auth_headers,
    create_chat,
    create_turn,
    unique_username,
    user_headers,
)
from harness.postgres import PostgresCluster
from harness.processes import REPO_ROOT

SECRET = "a-private-title-word"
LOGIN_MAX_FAILURES = 3


@pytest.fixture(scope="module")
def server(postgres: PostgresCluster) -> Iterator[DbApiServer]:
    env = {"SIGNUP_MODE": "approval", "LOGIN_MAX_FAILURES": str(LOGIN_MAX_FAILURES)}
    with running_db_api(postgres, extra_env=env) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: DbApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=auth_headers(server.service_token)) as client:
        yield client


@pytest.fixture(scope="module")
def admin(api: httpx.Client) -> dict[str, Any]:
    """The install's first account (this module's db-api starts with none)."""
    first = sign_up(api)
    assert first.status_code == 201, first.text
    return dict(first.json())


def sign_up(api: httpx.Client, *, invite: str | None = None, name: str | None = None) -> Any:
    body = {"username": name or unique_username(), "password": DEFAULT_PASSWORD}
    if invite is not None:
        body["invite"] = invite
    return api.post("/users", json=body)


def as_user(user: dict[str, Any]) -> dict[str, str]:
    return user_headers(user["id"])


def pending_user(api: httpx.Client, admin: dict[str, Any]) -> dict[str, Any]:
    created = sign_up(api)
    assert created.status_code == 201 and created.json()["status"] == "pending", created.text
    return dict(created.json())


def active_user(api: httpx.Client, admin: dict[str, Any]) -> dict[str, Any]:
    user = pending_user(api, admin)
    approve = api.put(
        f"/admin/users/{user['id']}/status", json={"status": "active"}, headers=as_user(admin)
    )
    assert approve.status_code == 204, approve.text
    return {**user, "status": "active"}


def session_of(api: httpx.Client, user: dict[str, Any]) -> str:
    started = api.post("/sessions", json={"user_id": user["id"], "max_age_seconds": 3600})
    assert started.status_code == 201
    return str(started.json()["token"])


def resolves(api: httpx.Client, token: str) -> int:
    return api.get("/sessions/current", headers={"X-Session-Token": token}).status_code


def verify(api: httpx.Client, user: dict[str, Any], password: str = DEFAULT_PASSWORD) -> Any:
    return api.post(
        "/users/verify",
        json={"username": user["username"], "password": password, "client_ip": "198.51.100.9"},
    )


def audit_actions(api: httpx.Client, admin: dict[str, Any], target: str) -> list[str]:
    events = api.get("/admin/audit", params={"limit": 200}, headers=as_user(admin)).json()
    return [event["action"] for event in events["items"] if event["target_name"] == target]


@contextmanager
def settings(api: httpx.Client, admin: dict[str, Any], **values: Any) -> Iterator[None]:
    """The admin's settings changed for the block, then back to the configuration."""
    changed = api.put("/admin/settings", json=values, headers=as_user(admin))
    assert changed.status_code == 200, changed.text
    try:
        yield
    finally:
        assert api.put("/admin/settings", json={}, headers=as_user(admin)).status_code == 200


def test_the_first_account_is_the_admin_and_later_ones_wait_for_approval(
    api: httpx.Client, admin: dict[str, Any]
) -> None:
    assert (admin["role"], admin["status"]) == ("admin", "active")
    waiting = pending_user(api, admin)
    assert waiting["role"] == "user"
    # A pending account signs in and its session resolves, saying it is pending...
    assert verify(api, waiting).status_code == 200
    session = api.get("/sessions/current", headers={"X-Session-Token": session_of(api, waiting)})
    assert session.json()["user"]["status"] == "pending"
    # ...but it may not chat: no chat, no reply, and nothing is stored.
    refused = api.post("/chats", json={"title": "Mine"}, headers=as_user(waiting))
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Account waiting for approval"}
    assert api.get("/chats", headers=as_user(waiting)).json()["total"] == 0
    assert audit_actions(api, admin, waiting["username"]) == ["signed_up"]


def test_an_approved_account_chats(api: httpx.Client, admin: dict[str, Any]) -> None:
    user = active_user(api, admin)
    chat = create_chat(api, user_id=user["id"])
    create_turn(api, user_id=user["id"], chat_id=chat["id"])
    assert audit_actions(api, admin, user["username"]) == ["approved", "signed_up"]


def test_a_disabled_account_is_signed_out_and_cannot_sign_in_until_enabled(
    api: httpx.Client, admin: dict[str, Any]
) -> None:
    user = active_user(api, admin)
    token = session_of(api, user)
    path = f"/admin/users/{user['id']}/status"
    assert api.put(path, json={"status": "disabled"}, headers=as_user(admin)).status_code == 204
    assert resolves(api, token) == 404
    refused = verify(api, user)
    assert refused.status_code == 403 and refused.json() == {"detail": "Account disabled"}
    # A wrong password still says only that: the account's state is for its owner.
    assert verify(api, user, "not the password").status_code == 401
    assert api.post("/chats", json={}, headers=as_user(user)).status_code == 403
    assert api.put(path, json={"status": "active"}, headers=as_user(admin)).status_code == 204
    assert verify(api, user).status_code == 200
    actions = audit_actions(api, admin, user["username"])
    assert actions[:4] == ["enabled", "sign_in_failed", "sign_in_refused_disabled", "disabled"]


def test_closed_sign_up_needs_an_invite_that_works_once(
    api: httpx.Client, admin: dict[str, Any]
) -> None:
    with settings(api, admin, signup_mode="closed"):
        assert api.get("/settings").json()["signup_mode"] == "closed"
        closed = sign_up(api)
        assert closed.status_code == 403
        assert closed.json() == {"detail": "Sign-up is closed; an invite link is needed"}
        made = api.post("/admin/invites", json={"valid_hours": 1}, headers=as_user(admin))
        assert made.status_code == 201
        token = made.json()["token"]
        looked_up = api.post("/links/lookup", json={"token": token})
        assert looked_up.status_code == 200 and looked_up.json()["kind"] == "invite"
        listed = api.get("/admin/invites", headers=as_user(admin)).json()["items"]
        assert [invite["created_by"] for invite in listed] == [admin["username"]]
        invited = sign_up(api, invite=token)
        assert invited.status_code == 201 and invited.json()["status"] == "active"
        assert sign_up(api, invite=token).status_code == 404  # used up
        assert api.post("/links/lookup", json={"token": token}).status_code == 404
        revoked = api.post("/admin/invites", json={"valid_hours": 1}, headers=as_user(admin))
        invite_id = api.get("/admin/invites", headers=as_user(admin)).json()["items"][0]["id"]
        path = f"/admin/invites/{invite_id}"
        assert api.delete(path, headers=as_user(admin)).status_code == 204
        assert sign_up(api, invite=revoked.json()["token"]).status_code == 404
        assert api.delete(path, headers=as_user(admin)).status_code == 404
    assert api.get("/settings").json()["signup_mode"] == "approval"


def test_an_invite_expires(api: httpx.Client, admin: dict[str, Any]) -> None:
    made = api.post("/admin/invites", json={"valid_hours": 0.0002}, headers=as_user(admin))
    time.sleep(1.0)  # 0.72 s of validity
    assert sign_up(api, invite=made.json()["token"]).status_code == 404


def test_a_password_reset_link_sets_a_new_password_once_and_signs_out_everywhere(
    api: httpx.Client, admin: dict[str, Any]
) -> None:
    user = active_user(api, admin)
    token = session_of(api, user)
    made = api.post(f"/admin/users/{user['id']}/password-reset", headers=as_user(admin))
    assert made.status_code == 201
    link = made.json()["token"]
    looked_up = api.post("/links/lookup", json={"token": link}).json()
    assert (looked_up["kind"], looked_up["username"]) == ("password_reset", user["username"])
    # An invite's token is not a reset's, and a reset's is not an invite.
    assert sign_up(api, invite=link).status_code == 404
    reset = {"token": link, "new_password": "a brand new passphrase"}
    assert api.post("/password-resets", json=reset).status_code == 204
    assert resolves(api, token) == 404
    assert verify(api, user).status_code == 401
    assert verify(api, user, "a brand new passphrase").status_code == 200
    assert api.post("/password-resets", json=reset).status_code == 404
    actions = audit_actions(api, admin, user["username"])  # newest first
    assert actions.index("password_reset") < actions.index("password_reset_link_created")


def test_a_second_reset_link_replaces_the_first(api: httpx.Client, admin: dict[str, Any]) -> None:
    user = active_user(api, admin)
    path = f"/admin/users/{user['id']}/password-reset"
    first = api.post(path, headers=as_user(admin)).json()["token"]
    api.post(path, headers=as_user(admin))
    assert api.post("/links/lookup", json={"token": first}).status_code == 404


def test_the_admin_list_counts_usage_and_never_shows_content(
    api: httpx.Client, admin: dict[str, Any]
) -> None:
    user = active_user(api, admin)
    chat = create_chat(api, user_id=user["id"], title=f"About {SECRET}")
    create_turn(api, user_id=user["id"], chat_id=chat["id"], content=f"{SECRET} " * 10)
    listed = api.get(
        "/admin/users", params={"search": user["username"].upper()}, headers=as_user(admin)
    )
    assert listed.status_code == 200 and SECRET not in listed.text
    [row] = listed.json()["items"]
    assert (row["chats"], row["messages"]) == (1, 2)  # the question and its reply
    assert row["storage_bytes"] == len(f"About {SECRET}") + len(f"{SECRET} " * 10)
    one = api.get(f"/admin/users/{user['id']}", headers=as_user(admin))
    assert one.json() == row
    pending = api.get("/admin/users", params={"status": "pending"}, headers=as_user(admin))
    assert all(item["status"] == "pending" for item in pending.json()["items"])
    page = api.get("/admin/users", params={"limit": 1, "offset": 1}, headers=as_user(admin))
    assert len(page.json()["items"]) == 1 and page.json()["total"] >= 3


def test_making_and_revoking_admins(api: httpx.Client, admin: dict[str, Any]) -> None:
    user = active_user(api, admin)
    assert api.get("/admin/users", headers=as_user(user)).status_code == 403
    path = f"/admin/users/{user['id']}/role"
    assert api.put(path, json={"role": "admin"}, headers=as_user(admin)).status_code == 204
    assert api.get("/admin/users", headers=as_user(user)).status_code == 200
    assert api.put(path, json={"role": "user"}, headers=as_user(admin)).status_code == 204
    assert api.get("/admin/users", headers=as_user(user)).status_code == 403
    pending = pending_user(api, admin)
    refused = api.put(
        f"/admin/users/{pending['id']}/role", json={"role": "admin"}, headers=as_user(admin)
    )
    assert refused.status_code == 409
    assert audit_actions(api, admin, user["username"])[:2] == ["admin_revoked", "made_admin"]


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PUT", "/status", {"status": "disabled"}),
        ("PUT", "/role", {"role": "user"}),
        ("DELETE", "", None),
    ],
)
def test_an_admin_changes_their_own_account_on_the_account_page(
    api: httpx.Client, admin: dict[str, Any], method: str, suffix: str, body: Any
) -> None:
    own = api.request(
        method, f"/admin/users/{admin['id']}{suffix}", json=body, headers=as_user(admin)
    )
    assert own.status_code == 409
    assert own.json() == {"detail": "Use the account page to change your own account"}
    assert api.get("/admin/users", headers=as_user(admin)).status_code == 200


def test_deleting_an_account_takes_its_data(api: httpx.Client, admin: dict[str, Any]) -> None:
    user = active_user(api, admin)
    chat = create_chat(api, user_id=user["id"])
    create_turn(api, user_id=user["id"], chat_id=chat["id"])
    path = f"/admin/users/{user['id']}"
    assert api.delete(path, headers=as_user(admin)).status_code == 204
    assert api.get(path, headers=as_user(admin)).status_code == 404
    assert api.get(f"/chats/{chat['id']}", headers=as_user(user)).status_code == 404
    assert verify(api, user).status_code == 401
    assert audit_actions(api, admin, user["username"])[0] == "deleted_user"


def test_settings_apply_at_once_and_fall_back_to_the_configuration(
    api: httpx.Client, admin: dict[str, Any]
) -> None:
    user = active_user(api, admin)
    with settings(api, admin, reply_burst=1, replies_per_minute=0.5, system_prompt="Be brief."):
        view = api.get("/admin/settings", headers=as_user(admin)).json()
        assert (view["reply_burst"], view["defaults"]["reply_burst"]) == (1, 20)
        assert api.get("/settings").json()["system_prompt"] == "Be brief."
        chat = create_chat(api, user_id=user["id"])
        first = create_turn(api, user_id=user["id"], chat_id=chat["id"])
        stopped = {"status": "stopped", "if_status": "generating"}
        api.patch(
            f"/chats/{chat['id']}/messages/{first['reply']['id']}",
            json=stopped,
            headers=as_user(user),
        )
        second = api.post(
            f"/chats/{chat['id']}/turns", json={"content": "again"}, headers=as_user(user)
        )
        assert second.status_code == 429, second.text
    view = api.get("/admin/settings", headers=as_user(admin)).json()
    assert view["reply_burst"] is None and view["system_prompt"] is None
    events = api.get("/admin/audit", headers=as_user(admin)).json()["items"]
    changes = [e["detail"] for e in events if e["action"] == "settings_changed"]
    assert changes[0] == "replies_per_minute, reply_burst, system_prompt"


def test_wrong_passwords_and_lockouts_reach_the_audit_log(
    api: httpx.Client, admin: dict[str, Any]
) -> None:
    user = active_user(api, admin)
    for _ in range(LOGIN_MAX_FAILURES):
        assert verify(api, user, "a wrong guess").status_code == 401
    actions = audit_actions(api, admin, user["username"])
    assert actions[:2] == ["sign_in_locked", "sign_in_failed"]
    assert actions.count("sign_in_failed") == LOGIN_MAX_FAILURES
    # Unknown names are not recorded: nobody to protect, only noise.
    ghost = unique_username("ghost")
    verify(api, {"username": ghost}, "a wrong guess")
    assert audit_actions(api, admin, ghost) == []


def test_the_audit_log_pages_back(api: httpx.Client, admin: dict[str, Any]) -> None:
    newest = api.get("/admin/audit", params={"limit": 2}, headers=as_user(admin)).json()
    assert len(newest["items"]) == 2 and newest["next_before_id"] is not None
    older = api.get(
        "/admin/audit",
        params={"limit": 2, "before_id": newest["next_before_id"]},
        headers=as_user(admin),
    ).json()
    assert all(e["id"] < newest["items"][-1]["id"] for e in older["items"])


# Every admin route, with a request that would change something if it were let through.
ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/admin/users", None),
    ("GET", "/admin/users/{target}", None),
    ("PUT", "/admin/users/{target}/status", {"status": "disabled"}),
    ("PUT", "/admin/users/{target}/role", {"role": "admin"}),
    ("DELETE", "/admin/users/{target}", None),
    ("POST", "/admin/users/{target}/password-reset", None),
    ("GET", "/admin/invites", None),
    ("POST", "/admin/invites", {"valid_hours": 1}),
    ("DELETE", "/admin/invites/{invite}", None),
    ("GET", "/admin/settings", None),
    ("PUT", "/admin/settings", {"signup_mode": "open"}),
    ("GET", "/admin/audit", None),
]


@pytest.mark.parametrize("who", ["user", "pending", "disabled", "revoked admin", "unknown"])
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES, ids=lambda v: str(v))
def test_only_an_active_admin_reaches_the_admin_routes(
    api: httpx.Client,
    admin: dict[str, Any],
    who: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    target = active_user(api, admin)
    invite = api.post("/admin/invites", json={"valid_hours": 1}, headers=as_user(admin))
    invite_id = api.get("/admin/invites", headers=as_user(admin)).json()["items"][0]["id"]
    actor: dict[str, Any]
    if who == "unknown":
        actor = {"id": str(uuid.uuid4())}
    else:
        actor = active_user(api, admin) if who != "pending" else pending_user(api, admin)
        change = {
            "disabled": ("status", {"status": "disabled"}),
            "revoked admin": ("role", {"role": "admin"}),
        }.get(who)
        if change is not None:
            url = f"/admin/users/{actor['id']}/{change[0]}"
            assert api.put(url, json=change[1], headers=as_user(admin)).status_code == 204
        if who == "revoked admin":
            url = f"/admin/users/{actor['id']}/role"
            assert api.put(url, json={"role": "user"}, headers=as_user(admin)).status_code == 204
    before = api.get(f"/admin/users/{target['id']}", headers=as_user(admin)).json()
    concrete = path.format(target=target["id"], invite=invite_id)
    refused = api.request(method, concrete, json=body, headers=as_user(actor))
    assert refused.status_code == 403, (who, method, path, refused.text)
    assert refused.json() == {"detail": "Admins only"}
    assert api.get(f"/admin/users/{target['id']}", headers=as_user(admin)).json() == before
    assert api.post("/links/lookup", json={"token": invite.json()["token"]}).status_code == 200
    assert api.get("/settings").json()["signup_mode"] == "approval"


def test_the_last_admin_cannot_delete_their_own_account(
    api: httpx.Client, admin: dict[str, Any]
) -> None:
    everyone = api.get("/admin/users", params={"limit": 200}, headers=as_user(admin)).json()
    admins = [u["username"] for u in everyone["items"] if u["role"] == "admin"]
    assert admins == [admin["username"]], "this test needs the module's admin to be the only one"
    refused = api.request(
        "DELETE", "/users/me", json={"password": DEFAULT_PASSWORD}, headers=as_user(admin)
    )
    assert refused.status_code == 409
    assert refused.json() == {"detail": "The install needs at least one active admin"}
    assert verify(api, admin).status_code == 200
    # With a second admin, either may leave: here the second does.
    second = active_user(api, admin)
    path = f"/admin/users/{second['id']}/role"
    assert api.put(path, json={"role": "admin"}, headers=as_user(admin)).status_code == 204
    gone = api.request(
        "DELETE", "/users/me", json={"password": DEFAULT_PASSWORD}, headers=as_user(second)
    )
    assert gone.status_code == 204
    assert audit_actions(api, admin, second["username"])[0] == "deleted_own_account"


def test_the_command_line_creates_and_resets_admins(
    server: DbApiServer, postgres: PostgresCluster, api: httpx.Client, admin: dict[str, Any]
) -> None:
    database = server.database_url.rsplit("/", 1)[-1]
    env = db_api_env(postgres=postgres, database=database, service_token=server.service_token)

    def cli(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "db_api.admin", *args],
            input=None if password is None else password + "\n",
            env=env,
            cwd=REPO_ROOT / "db-api",
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    name = unique_username("operator")
    made = cli("create-admin", name, "--password-stdin", password="operator passphrase")
    assert made.returncode == 0, made.stderr
    operator = {"username": name}
    signed_in = verify(api, operator, "operator passphrase")
    assert signed_in.json()["role"] == "admin" and signed_in.json()["status"] == "active"
    again = cli("create-admin", name, "--password-stdin", password="operator passphrase")
    assert again.returncode == 1 and "exists" in again.stderr
    short = cli("reset-password", name, "--password-stdin", password="short")
    assert short.returncode == 1 and "password" in short.stderr
    token = session_of(api, signed_in.json())
    reset = cli("reset-password", name, "--password-stdin", password="another passphrase")
    assert reset.returncode == 0, reset.stderr
    assert resolves(api, token) == 404
    assert verify(api, operator, "another passphrase").status_code == 200
    waiting = pending_user(api, admin)
    assert cli("make-admin", waiting["username"]).returncode == 0
    assert verify(api, waiting).json()["role"] == "admin"
    listed = cli("list-users")
    assert listed.returncode == 0
    rows = {line.split()[0]: line.split()[1:3] for line in listed.stdout.splitlines()[1:]}
    assert rows[name] == ["admin", "active"] and rows[admin["username"]] == ["admin", "active"]
    assert cli("make-admin", unique_username("nobody")).returncode == 1
    actions = audit_actions(api, admin, name)
    assert actions[:2] == ["password_reset_from_cli", "admin_created_from_cli"]
