"""Rendering pages: the Jinja2 environment (autoescaped), its filters and the shared context.

Templates never change the session: one-shot values are taken before rendering (see
views) and passed in as values.

Also the JSON answer to the page's script, which asks for it (see `wants_json`).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.templating import Jinja2Templates

from chat_ui.config import Settings, get_settings
from chat_ui.errors import ChatUiError
from chat_ui.markdown import render_markdown_cached
from chat_ui.sessions import csrf_token, session_user
from chat_ui.user_agents import describe_browser

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def short_date(moment: datetime, now: datetime | None = None) -> str:
    """ "14:05" today, "Mon" this week, "3 Mar" this year, else "3 Mar 2024" (UTC)."""
    now = now or datetime.now(UTC)
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    age = now - moment
    if moment.date() == now.date():
        return moment.strftime("%H:%M")
    if age.days < 7:
        return moment.strftime("%a")
    if moment.year == now.year:
        return f"{moment.day} {moment.strftime('%b')}"
    return f"{moment.day} {moment.strftime('%b %Y')}"


@functools.cache
def static_url(name: str) -> str:
    """The address of static file `name`, versioned by its content.

    nginx caches versioned addresses for a year, so a new release's CSS and script
    reach every browser at once under their new digest.
    """
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


def _shared_context(request: Request) -> dict[str, Any]:
    if "session" not in request.scope:
        # The last-resort 500 handler runs outside the session middleware.
        return {"csrf_token": "", "current_user": None, "max_message_chars": 0, "greeting": ""}
    settings = _settings(request)
    return {
        "csrf_token": csrf_token(request),
        "current_user": session_user(request),
        "max_message_chars": settings.max_message_chars,
        "greeting": settings.opening_message,
    }


def _settings(request: Request) -> Settings:
    """The app's settings with the admin's laid over (runtime_settings), if it started."""
    settings = getattr(request.app.state, "settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters["short_date"] = short_date
_environment.filters["markdown"] = render_markdown_cached
_environment.filters["browser"] = describe_browser
_environment.globals["static_url"] = static_url
templates = Jinja2Templates(env=_environment, context_processors=[_shared_context])


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, template, context or {}, status_code=status_code, headers=headers
    )


# For a page whose address holds a one-time link's token: the requests it makes for
# styles and scripts must not carry the token along in their Referer.
NO_REFERRER = {"Referrer-Policy": "no-referrer"}


def render_html(request: Request, template: str, context: dict[str, Any]) -> str:
    """The page as text, for keeping; unlike `render`, `context` overrides the shared values."""
    full = {"request": request, **_shared_context(request), **context}
    return _environment.get_template(template).render(full)


def see_other(path: str) -> RedirectResponse:
    """Redirect after a POST (or to sign in); always a relative URL, so proxies need no care."""
    return RedirectResponse(path, status_code=303)


def wants_json(request: Request) -> bool:
    """The page's script asks for JSON; a plain form submission never does."""
    return "application/json" in request.headers.get("accept", "")


def json_error(error: ChatUiError) -> JSONResponse:
    return JSONResponse({"error": error.message}, status_code=error.status_code)
