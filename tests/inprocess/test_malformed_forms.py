"""Forms none of our pages send: a file part where text belongs, or a body that does not parse.

Each gets a 400 in the app's words (JSON for the page's script), keeps what was typed
where the form is shown again, and changes nothing. Routes and their fields come from
the app, so a new form route or field is covered as soon as it exists.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chat_ui.errors import MalformedForm
from chat_ui.main import app
from harness.factories import DEFAULT_PASSWORD, unique_username
from harness.forms import Browser, textarea_text
from tests.support.inprocess import InProcessApp
from tests.support.routes import body_fields, route_table
from tests.support.sse import JSON

FORM_ROUTES = sorted(route for route in route_table(app) if route[0] not in ("GET", "HEAD"))
FIELDS = body_fields(app)
FILE_IN_FIELD = [
    pytest.param(route, field, id=f"{route[0]} {route[1]} {field}")
    for route in FORM_ROUTES
    for field in sorted(FIELDS[route])
]
# What a person would have typed; a username nobody has, so a sign-up that went
# through would show as a new account.
TYPED = {
    "username": unique_username("typed"),
    "password": DEFAULT_PASSWORD,
    "password_confirm": DEFAULT_PASSWORD,
    "next": "/chats",
    "content": "Words typed into the message box",
    "title": "A title typed in",
    "everywhere": "1",
    "current_password": DEFAULT_PASSWORD,
    "new_password": "A new password typed in",
    "new_password_confirm": "A new password typed in",
    "session_id": str(uuid.uuid4()),
    "invite": "an-invite-token",
    "token": "a-reset-link-token",
    "status": "disabled",
    "role": "admin",
    "back": "/admin/users",
    "valid_hours": "24",
    "signup_mode": "open",
    "replies_per_minute": "3",
    "reply_burst": "5",
    "chats_per_minute": "1",
    "chat_burst": "5",
    "max_message_chars": "100",
    "system_prompt": "Be brief.",
}
A_FILE = ("notes.txt", b"what a file holds", "text/plain")
HUMAN_WORDS = MalformedForm.message


@pytest.fixture
def alice(inprocess: InProcessApp) -> dict[str, Any]:
    """A signed-in user with a chat that every chat route could change."""
    browser = inprocess.browser()
    browser.sign_up()
    user_id = inprocess.user_id(browser)
    chat_id = browser.new_chat()
    db = inprocess.db
    inprocess.call(db.add_message, user_id, chat_id, content="A question")
    inprocess.call(db.add_message, user_id, chat_id, content="An answer", role="assistant")
    return {"browser": browser, "user_id": user_id, "chat_id": chat_id, "app": inprocess}


def everything_stored(world: dict[str, Any]) -> Any:
    """The user's chats with all their messages, as db-api has them."""
    inprocess: InProcessApp = world["app"]
    return inprocess.everything_stored(world["browser"])


def account_exists(inprocess: InProcessApp, username: str) -> bool:
    return inprocess.call(
        lambda: any(user.username == username for user in inprocess.db.users.values())
    )


def test_every_form_field_has_a_typed_value() -> None:
    every_field = {field for fields in FIELDS.values() for field in fields}
    unknown = every_field - {*TYPED, "csrf_token", "request_id"}
    assert not unknown, f"give these form fields a value in TYPED: {unknown}"


@pytest.mark.parametrize("caller", ["form", "script"])
@pytest.mark.parametrize(("route", "field"), FILE_IN_FIELD)
def test_a_file_part_in_any_form_field_is_refused(
    alice: dict[str, Any], route: tuple[str, str], field: str, caller: str
) -> None:
    browser: Browser = alice["browser"]
    method, template = route
    values = {**TYPED, "csrf_token": browser.csrf_token(), "request_id": str(uuid.uuid4())}
    form = {name: values[name] for name in FIELDS[route] if name != field}
    before = everything_stored(alice)
    response = browser.http.request(
        method,
        template.format(chat_id=alice["chat_id"], user_id=uuid.uuid4(), invite_id=uuid.uuid4()),
        data=form,
        files={field: A_FILE},
        headers=JSON if caller == "script" else {},
        follow_redirects=False,
    )
    assert response.status_code == 400, (route, field, response.status_code)
    if caller == "script":
        assert response.json() == {"error": HUMAN_WORDS}
    else:
        assert response.headers["content-type"].startswith("text/html")
        assert HUMAN_WORDS in response.text
    assert everything_stored(alice) == before
    assert not account_exists(alice["app"], TYPED["username"])
    assert browser.http.get("/chats", follow_redirects=False).status_code == 200


def test_a_refused_sign_up_keeps_the_username(browser: Browser) -> None:
    username = unique_username("kept")
    form = {"csrf_token": browser.csrf_token("/signup"), "username": username}
    response = browser.http.post(
        "/signup", data={**form, "password_confirm": DEFAULT_PASSWORD}, files={"password": A_FILE}
    )
    assert response.status_code == 400
    assert HUMAN_WORDS in response.text
    assert f'value="{username}"' in response.text
    assert DEFAULT_PASSWORD not in response.text


def test_a_refused_sign_in_keeps_the_username(browser: Browser) -> None:
    form = {"csrf_token": browser.csrf_token(), "username": "somebody", "next": "/search"}
    response = browser.http.post("/login", data=form, files={"password": A_FILE})
    assert response.status_code == 400
    assert HUMAN_WORDS in response.text
    assert 'value="somebody"' in response.text
    assert 'name="next" value="/search"' in response.text


@pytest.mark.parametrize("where", ["new chat", "chat"])
def test_a_refused_message_stays_in_the_message_box(alice: dict[str, Any], where: str) -> None:
    browser: Browser = alice["browser"]
    path = "/chats" if where == "new chat" else f"/chats/{alice['chat_id']}/messages"
    request_id = str(uuid.uuid4())
    form = {"content": TYPED["content"], "request_id": request_id}
    before = everything_stored(alice)
    response = browser.http.post(path, data=form, files={"csrf_token": A_FILE})
    assert response.status_code == 400
    assert HUMAN_WORDS in response.text
    assert textarea_text(response.text) == TYPED["content"]
    # The same form id goes back, as after any failed send.
    assert f'name="request_id" value="{request_id}"' in response.text
    assert everything_stored(alice) == before


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"--x\r\nnot a part", "multipart/form-data"),
        (b"not multipart at all", "multipart/form-data; boundary=x"),
        (b"--x\r\nno colon here\r\n\r\nvalue\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    ],
    ids=["no boundary", "no parts", "broken part header"],
)
@pytest.mark.parametrize("caller", ["form", "script"])
def test_a_body_that_does_not_parse_gets_a_400_in_our_words(
    alice: dict[str, Any], body: bytes, content_type: str, caller: str
) -> None:
    browser: Browser = alice["browser"]
    before = everything_stored(alice)
    headers = {"Content-Type": content_type, **(JSON if caller == "script" else {})}
    for path in ("/login", "/chats", f"/chats/{alice['chat_id']}/messages"):
        response = browser.http.post(path, content=body, headers=headers)
        assert response.status_code == 400, (path, response.status_code)
        if caller == "script":
            assert response.json() == {"error": HUMAN_WORDS}
        else:
            assert HUMAN_WORDS in response.text
    assert everything_stored(alice) == before
