"""The account page through the real chat-ui and db-api on PostgreSQL, start to end:
sign-ins listed, a new password, every chat exported, the account deleted.

The pages' own logic (each refusal, CSRF, escaping) is tested in-process on the fakes:
tests/inprocess/test_account.py; db-api's rules in tests/db_api/test_account.py.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import httpx

from harness.chat_ui import ChatUiServer
from harness.db_api import DbApiServer
from harness.factories import add_message, create_chat, user_headers
from harness.forms import Browser, user_id_of

SESSION = re.compile(r'<li class="session">(.*?)</li>', re.DOTALL)
NEW_PASSWORD = "a brand new passphrase"


def sign_in_elsewhere(chat_ui: ChatUiServer, user: Browser, user_agent: str) -> Browser:
    other = Browser(chat_ui.url)
    other.http.headers["User-Agent"] = user_agent
    other.username, other.password = user.username, user.password
    response = other.submit(
        "/login", {"username": user.username, "password": user.password}, form_page="/login"
    )
    assert response.url.path == "/chats", response.text
    return other


def test_an_account_from_sign_in_to_deletion(
    chat_ui: ChatUiServer, db_api: DbApiServer, db_api_client: httpx.Client, signed_in: Browser
) -> None:
    phone = sign_in_elsewhere(chat_ui, signed_in, "Mozilla/5.0 (Android 14) Firefox/128.0")
    user_id = user_id_of(db_api, signed_in)
    try:
        # Both sign-ins, with their browser and the address chat-ui saw, this one marked.
        sessions = SESSION.findall(signed_in.get("/account").text)
        assert len(sessions) == 2
        assert all("From 127.0.0.1" in session for session in sessions)
        phone_row = next(session for session in sessions if "Firefox on Android" in session)
        assert "This browser" not in phone_row and "Sign out this one" in phone_row

        refused = signed_in.submit(
            "/account/password",
            {
                "current_password": "not my password",
                "new_password": NEW_PASSWORD,
                "new_password_confirm": NEW_PASSWORD,
            },
            form_page="/account",
        )
        assert refused.status_code == 403
        assert "That is not your current password." in refused.text
        assert phone.get("/chats").url.path == "/chats"

        changed = signed_in.submit(
            "/account/password",
            {
                "current_password": signed_in.password,
                "new_password": NEW_PASSWORD,
                "new_password_confirm": NEW_PASSWORD,
            },
            form_page="/account",
        )
        assert "Your password was changed." in changed.text
        assert phone.get("/chats").url.path == "/login"
        assert signed_in.get("/chats").url.path == "/chats"
        old = db_api_client.post(
            "/users/verify", json={"username": signed_in.username, "password": signed_in.password}
        )
        assert old.status_code == 401
        signed_in.password = NEW_PASSWORD

        for title in ("Lisbon", "Lisbon", "Porto"):
            chat = create_chat(db_api_client, user_id=user_id, title=title)
            add_message(db_api_client, user_id=user_id, chat_id=chat["id"], content=f"Go {title}")
        download = signed_in.get("/account/export")
        assert download.status_code == 200
        with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
            names = archive.namelist()
            chats = [json.loads(archive.read(n)) for n in names if n.endswith(".json")]
        assert len(names) == 7  # two files a chat, and the index
        assert sorted(chat["chat"]["title"] for chat in chats) == ["Lisbon", "Lisbon", "Porto"]
        assert all(chat["messages"][-1]["content"].startswith("Go ") for chat in chats)

        wrong = signed_in.submit(
            "/account/delete", {"password": "not my password"}, form_page="/account/delete"
        )
        assert wrong.status_code == 403
        deleted = signed_in.submit(
            "/account/delete", {"password": NEW_PASSWORD}, form_page="/account/delete"
        )
        assert deleted.url.path == "/login"
        assert "Your account was deleted" in deleted.text
        me = db_api_client.get("/users/me", headers=user_headers(user_id))
        assert me.status_code == 404
        for chat in chats:
            gone = db_api_client.get(f"/chats/{chat['chat']['id']}", headers=user_headers(user_id))
            assert gone.status_code == 404
        assert signed_in.get("/chats").url.path == "/login"
    finally:
        phone.close()
