"""What chat-ui keeps in the signed session cookie, and the helpers that change it.

The cookie (Starlette's SessionMiddleware, itsdangerous-signed) holds the token of a
server-side session in db-api, the user's id and name as a hint for the page chrome,
the CSRF token, and at most one one-shot notice for the next page. The signature alone
proves nothing about being signed in: every signed-in route resolves the token in
db-api (deps.get_current_user), so signing out or expiring ends a copied cookie too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import Scope

from chat_ui.config import get_settings
from chat_ui.errors import SignInRequired
from chat_ui.schemas import UserPublic
from chat_ui.security import new_csrf_token

SESSION_COOKIE = "chat_session"
# The name over HTTPS. Browsers keep a `__Host-` cookie only if it is Secure, has
# `Path=/` and no `Domain`, so no plain-HTTP page and no other subdomain can plant
# or replace it. Over plain HTTP (a LAN address, native mode) they refuse it.
SECURE_SESSION_COOKIE = f"__Host-{SESSION_COOKIE}"
_SERVER_SESSION = "session_token"
_USER_ID = "user_id"
_USERNAME = "username"
# A hint for the page chrome (the "Admin" link); the admin pages ask db-api every time.
_ROLE = "role"
_CSRF = "csrf_token"
_NOTICE = "notice"


@dataclass(frozen=True)
class SessionUser:
    id: uuid.UUID
    username: str
    role: str = "user"
    status: str = "active"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and self.status == "active"


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (also for signed-out visitors)."""
    token = request.session.get(_CSRF)
    if not isinstance(token, str) or not token:
        token = new_csrf_token()
        request.session[_CSRF] = token
    return token


def expected_csrf_token(request: Request) -> str | None:
    token = request.session.get(_CSRF)
    return token if isinstance(token, str) else None


def session_user(request: Request) -> SessionUser | None:
    """Who the cookie says is signed in; a hint only (db-api has not been asked)."""
    user_id, username = request.session.get(_USER_ID), request.session.get(_USERNAME)
    if session_token(request) is None:
        return None
    if not isinstance(user_id, str) or not isinstance(username, str):
        return None
    role = request.session.get(_ROLE)
    try:
        return SessionUser(
            id=uuid.UUID(user_id),
            username=username,
            role=role if isinstance(role, str) else "user",
        )
    except ValueError:
        return None


def session_token(request: Request) -> str | None:
    token = request.session.get(_SERVER_SESSION)
    return token if isinstance(token, str) and token else None


def session_cookie_name(scope: Scope, *, always_secure: bool) -> str:
    """The session cookie this request reads and sets: prefixed when it rides on HTTPS.

    `scope`'s scheme is the one nginx reports (uvicorn's proxy headers); COOKIE_SECURE
    (`always_secure`) says HTTPS ends at a proxy in front, which nginx cannot see.
    """
    https = always_secure or scope.get("scheme") in ("https", "wss")
    return SECURE_SESSION_COOKIE if https else SESSION_COOKIE


def session_expired(request: Request) -> bool:
    """A cookie came in but carried no valid session: too old or signed with another key."""
    name = session_cookie_name(request.scope, always_secure=get_settings().cookie_secure)
    return name in request.cookies and not request.session


def _next_path(request: Request) -> str | None:
    return request.url.path if request.method == "GET" else None


def claimed_session(request: Request) -> tuple[str, SessionUser]:
    """The cookie's session token and the user it names, not yet checked with db-api.

    Raises SignInRequired when the cookie carries no session.
    """
    token = session_token(request)
    claimed = session_user(request)
    if token is None or claimed is None:
        raise SignInRequired(expired=session_expired(request), next_path=_next_path(request))
    return token, claimed


def session_ended(request: Request) -> SignInRequired:
    """Forget a cookie whose session db-api no longer knows; answers the error to raise."""
    # Signed out elsewhere, expired, or the account is gone.
    sign_out(request)
    return SignInRequired(expired=True, next_path=_next_path(request))


def sign_in(request: Request, user: UserPublic, *, token: str) -> None:
    """Start a fresh session so nothing from before sign-in (e.g. its CSRF token) survives."""
    request.session.clear()
    request.session[_SERVER_SESSION] = token
    request.session[_USER_ID] = str(user.id)
    request.session[_USERNAME] = user.username
    request.session[_ROLE] = user.role
    request.session[_CSRF] = new_csrf_token()


def remember_role(request: Request, role: str) -> None:
    """Keep the cookie's role hint as db-api last said (made admin, or revoked)."""
    if request.session.get(_ROLE, "user") != role:
        request.session[_ROLE] = role


def sign_out(request: Request) -> None:
    request.session.clear()


def set_notice(request: Request, *, chat_id: uuid.UUID, message: str) -> None:
    """A message for the next view of one chat (after the POST-redirect-GET)."""
    request.session[_NOTICE] = {"chat_id": str(chat_id), "message": message}


def pop_notice(request: Request, *, chat_id: uuid.UUID) -> str | None:
    notice = request.session.get(_NOTICE)
    if not isinstance(notice, dict) or notice.get("chat_id") != str(chat_id):
        return None
    request.session.pop(_NOTICE)
    message = notice.get("message")
    return message if isinstance(message, str) else None


_FLASH = "flash"
# A one-shot value rides in the signed cookie (about 4 KB in all), so kept text is capped.
FLASH_VALUE_MAX_CHARS = 500


def set_flash(request: Request, key: str, **values: str) -> None:
    """Values for the next page that asks for `key`: a form error and the text the user typed,
    or a notice such as "Chat deleted.", carried across the POST-redirect-GET."""
    flash = {name: value[:FLASH_VALUE_MAX_CHARS] for name, value in values.items()}
    request.session[_FLASH] = {"key": key, "values": flash}


def pop_flash(request: Request, key: str) -> dict[str, str]:
    """The values set for `key` (then forgotten), or {} when there are none."""
    flash = request.session.get(_FLASH)
    if not isinstance(flash, dict) or flash.get("key") != key:
        return {}
    request.session.pop(_FLASH)
    values = flash.get("values")
    if not isinstance(values, dict):
        return {}
    return {name: value for name, value in values.items() if isinstance(value, str)}


def has_one_shot_values(request: Request) -> bool:
    """Whether a notice or flash waits for the next page (which must then be rendered)."""
    return _NOTICE in request.session or _FLASH in request.session
