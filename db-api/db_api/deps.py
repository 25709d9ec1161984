"""Dependencies routes declare by type: settings, the calling service and the acting user.

The database sessions (`WriteSession`, `ReadSession`) are in `database`.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Annotated

from fastapi import Depends, Header
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from db_api.config import Settings, get_settings
from db_api.errors import InvalidServiceTokenError


async def current_settings() -> Settings:
    # async: FastAPI runs a plain `def` dependency in the thread pool, a hop per request.
    return get_settings()


SettingsDep = Annotated[Settings, Depends(current_settings)]

# auto_error=False: a missing header must answer 401 like a wrong one, not FastAPI's 403.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ServiceToken",
    description="The shared `SERVICE_TOKEN`, sent as `Authorization: Bearer <token>`.",
)


async def require_service_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None:
        raise InvalidServiceTokenError()
    expected = settings.service_token.get_secret_value().encode()
    # Constant-time comparison, on bytes so non-ASCII input cannot raise.
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise InvalidServiceTokenError()


ServiceAuth = Depends(require_service_token)

CurrentUserId = Annotated[
    uuid.UUID,
    Header(
        alias="X-User-Id",
        description="The acting user; every chat query is limited to this user's data.",
    ),
]

# For routes that only mark or keep the caller's own session (`routes/sessions.py`
# resolves sessions with a required one).
OptionalSessionToken = Annotated[
    str | None,
    Header(
        alias="X-Session-Token",
        max_length=200,
        description="The caller's own session token, if it has one; never put it in a URL.",
    ),
]
