"""Sign-up, sign-in and sign-out pages. db-api hashes and checks passwords; we never keep them.

A sign-in is a server-side session in db-api: the cookie carries only its token, so
signing out (here, or everywhere) ends every copy of the cookie.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chat_ui.db_client import DbClient
from chat_ui.deps import DbDep, OptionalUser, SettingsDep, client_ip
from chat_ui.errors import (
    SESSION_EXPIRED_MESSAGE,
    ChatUiError,
    InvalidInput,
    LinkInvalid,
    SignUpClosed,
    UsernameTaken,
)
from chat_ui.forms import FormRouter, FormText
from chat_ui.pages import NO_REFERRER, render, see_other
from chat_ui.schemas import PublicSettings, UserPublic
from chat_ui.security import safe_next_path
from chat_ui.sessions import pop_flash, session_token, set_flash, sign_in, sign_out
from chat_ui.views import SIGN_IN_FLASH, FailurePage, failure_page, form_again

router = FormRouter(tags=["auth"])

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
SIGNED_OUT = "You are signed out."
SIGNED_OUT_EVERYWHERE = "You are signed out on every browser and device."


def validate_signup(username: str, password: str, password_confirm: str) -> None:
    """The same limits as db-api, checked here so the page can say what to fix."""
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidInput(
            "Usernames are 3 to 32 characters: letters, digits, dot, dash or underscore.",
            field="username",
        )
    validate_new_password(password, password_confirm)


def validate_new_password(password: str, password_confirm: str) -> None:
    """db-api's limits on a password (at sign-up, or a new one), in words to act on."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput(
            f"Passwords are {PASSWORD_MIN} to {PASSWORD_MAX} characters long.", field="password"
        )
    if password != password_confirm:
        raise InvalidInput("The two passwords do not match.", field="password_confirm")


async def start_session(
    request: Request, db: DbDep, settings: SettingsDep, user: UserPublic
) -> None:
    """A new server-side session, so no cookie from before sign-in (fixation) stays valid.

    It carries the browser's name and address, for the account page's list of sign-ins.
    """
    started = await db.start_session(
        user.id,
        max_age_seconds=settings.session_max_age_seconds,
        user_agent=request.headers.get("user-agent"),
        client_ip=client_ip(request),
    )
    sign_in(request, user, token=started.token)


def signup_mode(request: Request) -> str:
    """The sign-up policy as last read from db-api (runtime_settings); db-api decides."""
    public: PublicSettings | None = request.app.state.public_settings
    return "approval" if public is None else public.signup_mode


async def signup_context(request: Request, db: DbClient, invite: str) -> dict[str, Any]:
    """What the sign-up page says: the policy, and whether the invite (if any) still works."""
    context: dict[str, Any] = {"username": "", "signup_mode": signup_mode(request), "invite": ""}
    if invite:
        try:
            link = await db.lookup_link(invite)
        except LinkInvalid as invalid:
            context["error"] = invalid.message
        else:
            if link.kind == "invite":
                context["invite"] = invite
            else:
                context["error"] = LinkInvalid.message
    context["closed"] = context["signup_mode"] == "closed" and not context["invite"]
    return context


@router.get("/signup", response_class=HTMLResponse, summary="Sign-up page")
async def signup_page(
    request: Request, user: OptionalUser, db: DbDep, invite: str = ""
) -> Response:
    if user is not None:
        return see_other("/chats")
    context = await signup_context(request, db, invite[:200])
    return render(request, "signup.html", context, headers=NO_REFERRER)


async def signup_again(request: Request, db: DbDep) -> FailurePage:
    """The form again with the name kept and the policy (and invite) still in force."""
    form = await request.form()
    invite = form.get("invite")
    username = form.get("username")

    async def page(error: ChatUiError) -> Response:
        context = await signup_context(request, db, invite if isinstance(invite, str) else "")
        field = "username" if isinstance(error, UsernameTaken) else getattr(error, "field", None)
        context.update(
            username=username.strip() if isinstance(username, str) else "",
            error=error.message,
            error_field=field,
        )

        if isinstance(error, SignUpClosed):  # closed since the page was shown
            context["closed"] = True
        return render(request, "signup.html", context, status_code=error.status_code)

    return page


@router.post(
    "/signup",
    response_class=HTMLResponse,
    summary="Create an account",
    dependencies=[failure_page(signup_again)],
)
async def sign_up(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    username: FormText = "",
    password: FormText = "",
    password_confirm: FormText = "",
    invite: FormText = "",
) -> Response:
    username = username.strip()
    validate_signup(username, password, password_confirm)
    user = await db.create_user(
        username=username, password=password, client_ip=client_ip(request), invite=invite[:200]
    )
    await start_session(request, db, settings, user)
    return see_other("/chats")


@router.get("/reset-password", response_class=HTMLResponse, summary="Choose a new password")
async def reset_password_page(request: Request, db: DbDep, token: str = "") -> Response:
    context: dict[str, Any] = {"token": "", "username": ""}
    try:
        link = await db.lookup_link(token[:200]) if token else None
    except LinkInvalid as invalid:
        link, context["error"] = None, invalid.message
    if link is not None and link.kind == "password_reset":
        context.update(token=token, username=link.username or "")
    elif "error" not in context:
        context["error"] = LinkInvalid.message
    status = 200 if context["token"] else LinkInvalid.status_code
    return render(request, "reset_password.html", context, status_code=status, headers=NO_REFERRER)


async def reset_again(request: Request, db: DbDep) -> FailurePage:
    form = await request.form()
    token = form.get("token")

    async def page(error: ChatUiError) -> Response:
        if not isinstance(error, InvalidInput | LinkInvalid):
            raise error  # the error page: a stale form, db-api down
        context: dict[str, Any] = {"token": "", "username": "", "error": error.message}
        if isinstance(token, str) and isinstance(error, InvalidInput):
            # The link still works: the form again, to choose a better password.
            try:
                link = await db.lookup_link(token)
            except LinkInvalid:
                pass
            else:
                context.update(token=token, username=link.username or "")
        return render(request, "reset_password.html", context, status_code=error.status_code)

    return page


@router.post(
    "/reset-password",
    response_class=HTMLResponse,
    summary="Set a new password with a reset link",
    dependencies=[failure_page(reset_again)],
)
async def reset_password(
    request: Request,
    db: DbDep,
    token: FormText = "",
    new_password: FormText = "",
    new_password_confirm: FormText = "",
) -> Response:
    if not token:
        raise LinkInvalid()
    validate_new_password(new_password, new_password_confirm)
    await db.reset_password(token=token[:200], new_password=new_password)
    if (signed_in := session_token(request)) is not None:
        # Whoever set the password signs in with it next, not as whoever was signed in here.
        await db.end_session(signed_in)
    sign_out(request)
    set_flash(request, SIGN_IN_FLASH, notice="Your new password is set. Sign in with it.")
    return see_other("/login")


@router.get("/login", response_class=HTMLResponse, summary="Sign-in page")
async def login_page(
    request: Request, user: OptionalUser, next: str = "", reason: str = ""
) -> Response:
    if user is not None:
        return see_other(safe_next_path(next))
    signed_out = pop_flash(request, SIGN_IN_FLASH).get("notice")
    context = {
        "username": "",
        "next": safe_next_path(next) if next else "",
        "notice": signed_out or (SESSION_EXPIRED_MESSAGE if reason == "expired" else None),
    }
    return render(request, "login.html", context)


@router.post(
    "/login",
    response_class=HTMLResponse,
    summary="Sign in",
    dependencies=[failure_page(form_again("login.html", keep=("username", "next")))],
)
async def log_in(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    username: FormText = "",
    password: FormText = "",
    next: FormText = "",
) -> Response:
    username = username.strip()
    if not username or not password:
        raise InvalidInput("Enter your username and password.")
    user = await db.verify_user(username=username, password=password, client_ip=client_ip(request))
    await start_session(request, db, settings, user)
    return see_other(safe_next_path(next))


def sign_in_page_when_signed_out(request: Request) -> FailurePage:
    """Someone already signed out (or expired) has nothing to protect; just show sign-in.

    A signed-in session's failure (a stale form, db-api down) gets the error page, and
    the cookie stays, so the person can try again.
    """

    async def page(error: ChatUiError) -> Response:
        if session_token(request) is not None:
            raise error
        sign_out(request)
        return see_other("/login")

    return page


@router.post(
    "/logout",
    summary="Sign out (this browser, or with `everywhere` every device)",
    dependencies=[failure_page(sign_in_page_when_signed_out)],
)
async def log_out(
    request: Request, db: DbDep, user: OptionalUser, everywhere: FormText = ""
) -> RedirectResponse:
    token = session_token(request)
    ended_everywhere = bool(everywhere) and user is not None
    if token is not None:
        if everywhere and user is not None:
            await db.end_all_sessions(user.id)
        # Ended in db-api before the cookie is dropped: if db-api is down the error page
        # shows and the cookie stays, so the person can try again.
        await db.end_session(token)
    sign_out(request)
    if token is not None:
        notice = SIGNED_OUT_EVERYWHERE if ended_everywhere else SIGNED_OUT
        set_flash(request, SIGN_IN_FLASH, notice=notice)
    return see_other("/login")
