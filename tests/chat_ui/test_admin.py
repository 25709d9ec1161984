"""The admin pages and the sign-up policy, through chat-ui on a real db-api and model.

A db-api of its own (a fresh database, `SIGNUP_MODE=approval` as shipped), so this
module's first sign-up is the install's first account: the admin.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from harness.chat_ui import ChatUiServer, running_chat_ui
from harness.db_api import DbApiServer, running_db_api
from harness.factories import DEFAULT_PASSWORD, auth_headers, unique_username
from harness.forms import Browser, chat_id_of, user_id_of
from harness.llama import LlamaServer
from harness.postgres import PostgresCluster

SECRET = "a-word-only-its-owner-may-read"
LINK = re.compile(r'value="(/(?:signup|reset-password)\?[^"]+)"')


@pytest.fixture(scope="module")
def approval_db_api(postgres: PostgresCluster) -> Iterator[DbApiServer]:
    with running_db_api(postgres, extra_env={"SIGNUP_MODE": "approval"}) as server:
        yield server


@pytest.fixture(scope="module")
def app(approval_db_api: DbApiServer, llama_server: LlamaServer) -> Iterator[ChatUiServer]:
    with running_chat_ui(approval_db_api, llama_server.url) as server:
        yield server


@pytest.fixture(scope="module")
def admin(app: ChatUiServer) -> Iterator[Browser]:
    """The first account: the admin."""
    browser = Browser(app.url)
    browser.sign_up(unique_username("admin"))
    yield browser
    browser.close()


@pytest.fixture
def people(app: ChatUiServer, admin: Browser) -> Iterator[Callable[[], Browser]]:
    opened: list[Browser] = []

    def open_browser() -> Browser:
        opened.append(Browser(app.url))
        return opened[-1]

    yield open_browser
    for browser in opened:
        browser.close()


def sign_up_waiting(browser: Browser) -> httpx.Response:
    browser.username, browser.password = unique_username("new"), DEFAULT_PASSWORD
    return browser.submit(
        "/signup",
        {
            "username": browser.username,
            "password": DEFAULT_PASSWORD,
            "password_confirm": DEFAULT_PASSWORD,
        },
        form_page="/login",
    )


def account_id(db_api: DbApiServer, browser: Browser) -> str:
    return user_id_of(db_api, browser)


def act(admin: Browser, path: str, **fields: str) -> httpx.Response:
    return admin.submit(path, fields, form_page="/admin/users")


def approved(admin: Browser, db_api: DbApiServer, browser: Browser) -> Browser:
    assert sign_up_waiting(browser).status_code == 403
    answer = act(admin, f"/admin/users/{account_id(db_api, browser)}/status", status="active")
    assert answer.status_code == 200 and "is approved" in answer.text
    return browser


def test_the_first_account_is_the_admin_and_sees_the_admin_pages(admin: Browser) -> None:
    chats = admin.get("/chats")
    assert 'href="/admin/users">Admin</a>' in chats.text
    users = admin.get("/admin/users")
    assert users.status_code == 200
    assert admin.username in users.text
    assert "never what" in users.text  # the page says admins cannot read chats
    for page in ("/admin/invites", "/admin/settings", "/admin/audit"):
        assert admin.get(page).status_code == 200, page
    assert admin.get("/admin").url.path == "/admin/users"


def test_a_new_account_waits_for_approval_then_chats(
    admin: Browser, approval_db_api: DbApiServer, people: Callable[[], Browser]
) -> None:
    newcomer = people()
    signup_page = newcomer.get("/signup")
    assert "An administrator approves new accounts" in signup_page.text
    waiting = sign_up_waiting(newcomer)
    assert waiting.status_code == 403 and waiting.url.path == "/chats"
    assert "waiting for an administrator" in waiting.text
    assert 'href="/admin/users"' not in waiting.text
    # Sending anyway is refused with the same words, and nothing is stored.
    sent = newcomer.submit("/chats", {"content": "Hello?"}, form_page="/account")
    assert sent.status_code == 403 and "waiting for an administrator" in sent.text
    # The admin sees the account first in the list, waiting.
    listed = admin.get("/admin/users?status=pending")
    assert newcomer.username in listed.text and "Waiting for approval" in listed.text
    user_id = account_id(approval_db_api, newcomer)
    answer = act(admin, f"/admin/users/{user_id}/status", status="active", back="/admin/users")
    assert f"{newcomer.username} is approved" in answer.text
    chat = newcomer.submit("/chats", {"content": "Reply with one word: hello."})
    assert chat.status_code == 200
    assert chat_id_of(chat)


def test_disabling_signs_the_account_out_and_keeps_it_out(
    admin: Browser, approval_db_api: DbApiServer, people: Callable[[], Browser]
) -> None:
    user = approved(admin, approval_db_api, people())
    user_id = account_id(approval_db_api, user)
    answer = act(admin, f"/admin/users/{user_id}/status", status="disabled")
    assert "signed out everywhere" in answer.text
    assert user.get("/chats").url.path == "/login"
    again = user.submit(
        "/login", {"username": user.username, "password": DEFAULT_PASSWORD}, form_page="/login"
    )
    assert again.status_code == 403 and "This account has been disabled" in again.text
    act(admin, f"/admin/users/{user_id}/status", status="active")
    back = user.submit(
        "/login", {"username": user.username, "password": DEFAULT_PASSWORD}, form_page="/login"
    )
    assert back.url.path == "/chats" and back.status_code == 200


def test_the_list_shows_usage_never_content(
    admin: Browser, approval_db_api: DbApiServer, people: Callable[[], Browser]
) -> None:
    user = approved(admin, approval_db_api, people())
    response = user.submit("/chats", {"content": f"Say one word about {SECRET}."})
    assert response.status_code == 200
    listed = admin.get(f"/admin/users?q={user.username}")
    assert SECRET not in listed.text
    counts = re.search(r"<td>(\d+)</td>\s*<td>(\d+)</td>", listed.text)
    assert counts is not None and counts[1] == "1" and int(counts[2]) >= 2, "a chat, its messages"


def test_an_admin_changes_their_own_account_on_the_account_page(
    admin: Browser, approval_db_api: DbApiServer
) -> None:
    admin_id = account_id(approval_db_api, admin)
    users = admin.get("/admin/users")
    assert f"/admin/users/{admin_id}/status" not in users.text
    assert 'href="/account">Your account</a>' in users.text
    own = act(admin, f"/admin/users/{admin_id}/status", status="disabled")
    assert "Change your own account on the account page" in own.text
    assert admin.get("/admin/users").status_code == 200


def test_making_an_admin_and_revoking(
    admin: Browser, approval_db_api: DbApiServer, people: Callable[[], Browser]
) -> None:
    user = approved(admin, approval_db_api, people())
    user_id = account_id(approval_db_api, user)
    assert user.get("/admin/users").status_code == 404
    assert "is an admin now" in act(admin, f"/admin/users/{user_id}/role", role="admin").text
    assert user.get("/admin/users").status_code == 200
    assert 'href="/admin/users">Admin</a>' in user.get("/chats").text
    act(admin, f"/admin/users/{user_id}/role", role="user")
    assert user.get("/admin/users").status_code == 404


def test_deleting_an_account_is_confirmed_first(
    admin: Browser, approval_db_api: DbApiServer, people: Callable[[], Browser]
) -> None:
    user = approved(admin, approval_db_api, people())
    user_id = account_id(approval_db_api, user)
    confirm = admin.get(f"/admin/users/{user_id}/delete")
    assert f"Delete {user.username}?" in confirm.text and "cannot be undone" in confirm.text
    deleted = act(admin, f"/admin/users/{user_id}/delete")
    assert "was deleted, with all of their chats" in deleted.text
    assert user.get("/chats").url.path == "/login"


def test_closed_sign_up_and_an_invite_link(admin: Browser, people: Callable[[], Browser]) -> None:
    saved = admin.submit("/admin/settings", {"signup_mode": "closed"}, form_page="/admin/settings")
    assert "Settings saved" in saved.text
    try:
        stranger = people()
        assert "Sign-up is closed on this server" in stranger.get("/signup").text
        refused = sign_up_waiting(stranger)
        assert refused.status_code == 403 and "Sign-up is closed" in refused.text
        made = admin.submit("/admin/invites", {"valid_hours": "24"}, form_page="/admin/invites")
        found = LINK.search(made.text)
        assert found is not None, made.text
        invite_path = html.unescape(found.group(1))
        invited = people()
        page = invited.get(invite_path)
        assert "You were invited" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        token = invite_path.split("invite=", 1)[1]
        invited.username = unique_username("invited")
        created = invited.http.post(
            "/signup",
            data={
                "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1],  # type: ignore[index]
                "username": invited.username,
                "password": DEFAULT_PASSWORD,
                "password_confirm": DEFAULT_PASSWORD,
                "invite": token,
            },
        )
        assert created.status_code == 200 and created.url.path == "/chats"
        again = people().get(invite_path)
        assert "expired or was already used" in again.text
    finally:
        admin.submit("/admin/settings", {"signup_mode": ""}, form_page="/admin/settings")
    assert "An administrator approves" in people().get("/signup").text


def test_a_password_reset_link(
    admin: Browser, approval_db_api: DbApiServer, people: Callable[[], Browser]
) -> None:
    user = approved(admin, approval_db_api, people())
    made = act(admin, f"/admin/users/{account_id(approval_db_api, user)}/password-reset")
    found = LINK.search(made.text)
    assert found is not None and "Password-reset link for" in made.text
    reset_path = html.unescape(found.group(1))
    holder = people()
    page = holder.get(reset_path)
    assert user.username in page.text
    short = holder.submit(
        "/reset-password",
        {
            "token": reset_path.split("token=", 1)[1],
            "new_password": "short",
            "new_password_confirm": "short",
        },
        form_page=reset_path,
    )
    assert short.status_code == 422 and 'name="token"' in short.text  # the form again
    done = holder.submit(
        "/reset-password",
        {
            "token": reset_path.split("token=", 1)[1],
            "new_password": "a new passphrase",
            "new_password_confirm": "a new passphrase",
        },
        form_page=reset_path,
    )
    assert done.url.path == "/login" and "Your new password is set" in done.text
    assert user.get("/chats").url.path == "/login"  # signed out everywhere
    assert "expired or was already used" in people().get(reset_path).text


def test_settings_apply_without_a_restart(
    admin: Browser, approval_db_api: DbApiServer, people: Callable[[], Browser]
) -> None:
    user = approved(admin, approval_db_api, people())
    bad = admin.submit("/admin/settings", {"reply_burst": "many"}, form_page="/admin/settings")
    assert bad.status_code == 422 and "as a number" in bad.text
    admin.submit("/admin/settings", {"max_message_chars": "40"}, form_page="/admin/settings")
    try:
        assert 'maxlength="40"' in user.get("/chats").text
        refused = user.submit("/chats", {"content": "x" * 60})
        assert refused.status_code == 422 and "the limit is 40" in refused.text
    finally:
        admin.submit("/admin/settings", {}, form_page="/admin/settings")
    assert 'maxlength="40"' not in user.get("/chats").text


def test_the_audit_log_shows_what_happened(admin: Browser) -> None:
    log = admin.get("/admin/audit")
    for words in ("Signed up", "Approved", "Settings changed"):
        assert words in log.text
    # A settings change names what changed in the settings page's words.
    assert "signup_mode" not in log.text and "sign-up policy" in log.text
    assert "while sign-up needed approval; waiting for approval" in log.text


# Every admin page and action, as a form or link would send it.
ADMIN_REQUESTS = [
    ("GET", "/admin", None),
    ("GET", "/admin/users", None),
    ("POST", "/admin/users/{user}/status", {"status": "disabled"}),
    ("POST", "/admin/users/{user}/role", {"role": "admin"}),
    ("GET", "/admin/users/{user}/delete", None),
    ("POST", "/admin/users/{user}/delete", {}),
    ("POST", "/admin/users/{user}/password-reset", {}),
    ("GET", "/admin/invites", None),
    ("POST", "/admin/invites", {"valid_hours": "24"}),
    ("POST", "/admin/invites/{invite}/delete", {}),
    ("GET", "/admin/settings", None),
    ("POST", "/admin/settings", {"signup_mode": "open"}),
    ("GET", "/admin/audit", None),
]


@pytest.mark.parametrize("who", ["signed out", "user", "pending", "disabled", "revoked admin"])
@pytest.mark.parametrize(("method", "path", "form"), ADMIN_REQUESTS, ids=lambda v: str(v))
def test_only_an_active_admin_finds_the_admin_pages(
    admin: Browser,
    approval_db_api: DbApiServer,
    people: Callable[[], Browser],
    who: str,
    method: str,
    path: str,
    form: dict[str, str] | None,
) -> None:
    target = approved(admin, approval_db_api, people())
    target_id = account_id(approval_db_api, target)
    visitor = people()
    if who == "pending":
        sign_up_waiting(visitor)
    elif who != "signed out":
        approved(admin, approval_db_api, visitor)
        visitor_id = account_id(approval_db_api, visitor)
        if who == "revoked admin":
            act(admin, f"/admin/users/{visitor_id}/role", role="admin")
            act(admin, f"/admin/users/{visitor_id}/role", role="user")
        if who == "disabled":
            act(admin, f"/admin/users/{visitor_id}/status", status="disabled")
    before = admin.get(f"/admin/users?q={target.username}").text
    concrete = path.format(user=target_id, invite=uuid.uuid4())
    if form is None:
        answer = visitor.http.get(concrete)
    else:
        answer = visitor.http.post(concrete, data={"csrf_token": visitor.csrf_token(), **form})
    assert answer.status_code == 404, (who, method, path, answer.status_code)
    assert "We could not find that page." in answer.text
    assert target.username not in answer.text
    assert admin.get(f"/admin/users?q={target.username}").text == before
    assert "An administrator approves" in people().get("/signup").text


def test_the_admin_api_refuses_a_forged_user_header(approval_db_api: DbApiServer) -> None:
    """chat-ui is not the only check: db-api itself refuses a non-admin's X-User-Id."""
    headers = auth_headers(approval_db_api.service_token, uuid.uuid4())
    answer = httpx.get(f"{approval_db_api.url}/admin/users", headers=headers)
    assert answer.status_code == 403
