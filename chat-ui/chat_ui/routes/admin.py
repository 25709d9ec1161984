"""The admin pages: accounts, invites, the run-time settings and the audit log.

Only an active admin sees them; for everyone else, signed out included, they answer
the normal 404 (deps.AdminUser), and db-api checks the role again on every request.
No page here shows a chat: db-api's admin routes answer how much each account stores,
never what.
"""

from __future__ import annotations

import math
import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from chat_ui.db_client import DbClient
from chat_ui.deps import AdminUser, DbDep, get_admin
from chat_ui.errors import AdminChangeRefused, ChatUiError, InvalidInput, PageNotFound
from chat_ui.forms import FormRouter, FormText
from chat_ui.pages import NO_REFERRER, render, see_other
from chat_ui.runtime_settings import refresh_settings
from chat_ui.schemas import AuditEvent
from chat_ui.sessions import SessionUser, pop_flash, set_flash
from chat_ui.views import FailurePage, failure_page

router = FormRouter(tags=["admin"])

ADMIN_FLASH = "admin"
USERS_PER_PAGE = 50
AUDIT_PER_PAGE = 50
STATUS_FILTERS = {
    "": "Everyone",
    "pending": "Waiting for approval",
    "active": "Active",
    "disabled": "Disabled",
}
INVITE_VALIDITY_HOURS = {"24": "1 day", "72": "3 days", "168": "7 days", "720": "30 days"}
# The audit log's actions in words (db-api's names are for programs).
AUDIT_ACTIONS = {
    "signed_up": "Signed up",
    "sign_in_failed": "Wrong password",
    "sign_in_locked": "Sign-ins locked",
    "sign_in_refused_disabled": "Disabled account tried to sign in",
    "approved": "Approved",
    "disabled": "Disabled",
    "enabled": "Enabled",
    "made_admin": "Made admin",
    "admin_revoked": "Admin revoked",
    "deleted_user": "Deleted account",
    "deleted_own_account": "Deleted own account",
    "password_reset_link_created": "Password-reset link made",
    "password_reset": "Password reset with a link",
    "invite_created": "Invite made",
    "invite_revoked": "Invite revoked",
    "settings_changed": "Settings changed",
    "admin_created_from_cli": "Admin created (command line)",
    "password_reset_from_cli": "Password reset (command line)",
}
# The settings an audit entry names (db-api lists their field names), in words.
SETTING_NAMES = {
    "signup_mode": "sign-up policy",
    "replies_per_minute": "replies per minute",
    "reply_burst": "replies in a burst",
    "chats_per_minute": "new chats per minute",
    "chat_burst": "new chats in a burst",
    "max_message_chars": "longest message",
    "system_prompt": "system prompt",
}
SETTING_FIELDS = (
    "replies_per_minute",
    "reply_burst",
    "chats_per_minute",
    "chat_burst",
    "max_message_chars",
)
SIGNUP_MODES = {
    "open": "Open: anyone who reaches this server can create an account and chat",
    "approval": "Approval: new accounts wait until an admin approves them",
    "closed": "Closed: only people with an invite link can create an account",
}


def users_url(*, search: str = "", status: str = "", page: int = 1) -> str:
    query = {key: value for key, value in (("q", search), ("status", status)) if value}
    if page > 1:
        query["page"] = str(page)
    return "/admin/users" + (f"?{urlencode(query)}" if query else "")


def safe_return(back: str) -> str:
    """Where an action's form came from: a page of the users list, never anywhere else."""
    if back.startswith("/admin/users") and not back.startswith("/admin/users/"):
        return back if "//" not in back and "\\" not in back else "/admin/users"
    return "/admin/users"


def storage_in_words(size: int) -> str:
    for unit, factor in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"


def target_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise PageNotFound() from None


@router.get("/admin", summary="Admin pages")
async def admin_home(admin: AdminUser) -> Response:
    return see_other("/admin/users")


@router.get("/admin/users", response_class=HTMLResponse, summary="Accounts")
async def users_page(
    request: Request, admin: AdminUser, db: DbDep, q: str = "", status: str = "", page: int = 1
) -> Response:
    search = q.strip()[:32]
    status = status if status in STATUS_FILTERS else ""
    page = max(1, min(page, 100_000))
    found = await db.admin_users(
        admin.id,
        search=search,
        status=status,
        offset=(page - 1) * USERS_PER_PAGE,
        limit=USERS_PER_PAGE,
    )
    pages = max(1, math.ceil(found.total / USERS_PER_PAGE))
    context: dict[str, Any] = {
        "section": "users",
        "users": found.items,
        "total": found.total,
        "search": search,
        "status": status,
        "status_filters": {key: users_url(search=search, status=key) for key in STATUS_FILTERS},
        "status_names": STATUS_FILTERS,
        "page": page,
        "previous_url": users_url(search=search, status=status, page=page - 1)
        if page > 1
        else None,
        "next_url": users_url(search=search, status=status, page=page + 1)
        if page < pages
        else None,
        "back": users_url(search=search, status=status, page=page),
        "storage": storage_in_words,
        "notice": pop_flash(request, ADMIN_FLASH).get("notice"),
        "error": pop_flash(request, ADMIN_FLASH + "-error").get("notice"),
    }
    return render(request, "admin_users.html", context)


def back_to_users(request: Request, back: str = "") -> FailurePage:
    """A refused action (the last admin, one's own account) is said on the list it came from."""

    async def page(error: ChatUiError) -> Response:
        if not isinstance(error, AdminChangeRefused | InvalidInput):
            raise error  # the error page: not found, a stale form, db-api down
        set_flash(request, ADMIN_FLASH + "-error", notice=error.message)
        return see_other(safe_return(back))

    return page


async def _back_from_form(request: Request) -> FailurePage:
    form = await request.form()
    back = form.get("back")
    return back_to_users(request, back if isinstance(back, str) else "")


@router.post(
    "/admin/users/{user_id}/status",
    summary="Approve, disable or enable an account",
    dependencies=[failure_page(_back_from_form)],
)
async def change_status(
    request: Request,
    user_id: str,
    admin: AdminUser,
    db: DbDep,
    status: FormText = "",
    back: FormText = "",
) -> Response:
    target = await db.admin_user(admin.id, target_id(user_id))
    if status not in ("active", "disabled"):
        raise InvalidInput("Choose approve, enable or disable.")
    await db.admin_set_status(admin.id, target.id, status)
    if status == "disabled":
        done = f"{target.username} is disabled and was signed out everywhere."
    elif target.status == "pending":
        done = f"{target.username} is approved and can chat now."
    else:
        done = f"{target.username} is enabled again."
    set_flash(request, ADMIN_FLASH, notice=done)
    return see_other(safe_return(back))


@router.post(
    "/admin/users/{user_id}/role",
    summary="Make an account admin, or revoke",
    dependencies=[failure_page(_back_from_form)],
)
async def change_role(
    request: Request,
    user_id: str,
    admin: AdminUser,
    db: DbDep,
    role: FormText = "",
    back: FormText = "",
) -> Response:
    target = await db.admin_user(admin.id, target_id(user_id))
    if role not in ("admin", "user"):
        raise InvalidInput("Choose make admin or revoke admin.")
    await db.admin_set_role(admin.id, target.id, role)
    done = (
        f"{target.username} is an admin now."
        if role == "admin"
        else (f"{target.username} is no longer an admin.")
    )
    set_flash(request, ADMIN_FLASH, notice=done)
    return see_other(safe_return(back))


@router.get(
    "/admin/users/{user_id}/delete", response_class=HTMLResponse, summary="Confirm deleting"
)
async def confirm_delete(request: Request, user_id: str, admin: AdminUser, db: DbDep) -> Response:
    target = await db.admin_user(admin.id, target_id(user_id))
    context = {"section": "users", "target": target, "storage": storage_in_words}
    return render(request, "admin_user_delete.html", context)


@router.post(
    "/admin/users/{user_id}/delete",
    summary="Delete an account with all its chats",
    dependencies=[failure_page(_back_from_form)],
)
async def delete_user(request: Request, user_id: str, admin: AdminUser, db: DbDep) -> Response:
    target = await db.admin_user(admin.id, target_id(user_id))
    await db.admin_delete_user(admin.id, target.id)
    set_flash(
        request, ADMIN_FLASH, notice=f"{target.username} was deleted, with all of their chats."
    )
    return see_other("/admin/users")


@router.post(
    "/admin/users/{user_id}/password-reset",
    response_class=HTMLResponse,
    summary="Make a one-time password-reset link",
    dependencies=[failure_page(_back_from_form)],
)
async def password_reset_link(
    request: Request, user_id: str, admin: AdminUser, db: DbDep, back: FormText = ""
) -> Response:
    target = await db.admin_user(admin.id, target_id(user_id))
    link = await db.admin_password_reset(admin.id, target.id)
    context = {
        "section": "users",
        "title": f"Password-reset link for {target.username}",
        "explanation": f"Give this link to {target.username}. It works once, until the time "
        "below; whoever opens it chooses a new password, and every browser signed in to "
        "the account is signed out. An earlier reset link for the account no longer works.",
        "path": "/reset-password?" + urlencode({"token": link.token}),
        "expires_at": link.expires_at,
        "back": safe_return(back),
    }
    return render(request, "admin_link.html", context, headers=NO_REFERRER)


@router.get("/admin/invites", response_class=HTMLResponse, summary="Invite links")
async def invites_page(request: Request, admin: AdminUser, db: DbDep) -> Response:
    invites = await db.admin_invites(admin.id)
    context = {
        "section": "invites",
        "invites": invites.items,
        "validity": INVITE_VALIDITY_HOURS,
        "notice": pop_flash(request, ADMIN_FLASH).get("notice"),
    }
    return render(request, "admin_invites.html", context)


@router.post("/admin/invites", response_class=HTMLResponse, summary="Make an invite link")
async def create_invite(
    request: Request, admin: AdminUser, db: DbDep, valid_hours: FormText = "72"
) -> Response:
    hours = valid_hours if valid_hours in INVITE_VALIDITY_HOURS else "72"
    link = await db.admin_create_invite(admin.id, valid_hours=float(hours))
    context = {
        "section": "invites",
        "title": "Invite link",
        "explanation": "Give this link to the person you invite. It creates one account, "
        "active at once whatever the sign-up policy, and works until the time below.",
        "path": "/signup?" + urlencode({"invite": link.token}),
        "expires_at": link.expires_at,
        "back": "/admin/invites",
    }
    return render(request, "admin_link.html", context, headers=NO_REFERRER)


@router.post("/admin/invites/{invite_id}/delete", summary="Revoke an invite link")
async def revoke_invite(request: Request, invite_id: str, admin: AdminUser, db: DbDep) -> Response:
    await db.admin_revoke_invite(admin.id, target_id(invite_id))
    set_flash(request, ADMIN_FLASH, notice="The invite link no longer works.")
    return see_other("/admin/invites")


async def settings_context(request: Request, admin: SessionUser, db: DbClient) -> dict[str, Any]:
    stored = await db.admin_settings(admin.id)
    configured = request.app.state.configured_settings
    return {
        "section": "settings",
        "stored": stored,
        "defaults": stored.defaults,
        "modes": SIGNUP_MODES,
        "configured_max_message_chars": configured.max_message_chars,
        "configured_system_prompt": configured.system_prompt,
        "notice": pop_flash(request, ADMIN_FLASH).get("notice"),
    }


@router.get("/admin/settings", response_class=HTMLResponse, summary="Settings")
async def settings_page(request: Request, admin: AdminUser, db: DbDep) -> Response:
    return render(request, "admin_settings.html", await settings_context(request, admin, db))


async def settings_again(request: Request, db: DbDep) -> FailurePage:
    """The settings form again, saying what to fix; any other failure is the error page's."""

    async def page(error: ChatUiError) -> Response:
        if not isinstance(error, InvalidInput):
            raise error
        admin = await get_admin(request, db)
        context = {**await settings_context(request, admin, db), "error": error.message}
        return render(request, "admin_settings.html", context, status_code=error.status_code)

    return page


def _number(name: str, text: str, *, whole: bool, ceiling: float) -> float | int | None:
    """A limit from the form: empty is "the server's configuration"."""
    text = text.strip()
    if not text:
        return None
    label = name.replace("_", " ")
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise InvalidInput(f"Write {label} as a number, or leave it empty.") from None
    if not 0 < value <= ceiling or not math.isfinite(value):
        raise InvalidInput(f"{label.capitalize()} must be more than 0 and at most {ceiling:g}.")
    return value


@router.post(
    "/admin/settings",
    response_class=HTMLResponse,
    summary="Save the settings",
    dependencies=[failure_page(settings_again)],
)
async def save_settings(
    request: Request,
    admin: AdminUser,
    db: DbDep,
    signup_mode: FormText = "",
    replies_per_minute: FormText = "",
    reply_burst: FormText = "",
    chats_per_minute: FormText = "",
    chat_burst: FormText = "",
    max_message_chars: FormText = "",
    system_prompt: FormText = "",
) -> Response:
    configured = request.app.state.configured_settings
    values: dict[str, Any] = {
        "signup_mode": signup_mode if signup_mode in SIGNUP_MODES else None,
        "replies_per_minute": _number(
            "replies per minute", replies_per_minute, whole=False, ceiling=10_000
        ),
        "reply_burst": _number("replies at once", reply_burst, whole=True, ceiling=10_000),
        "chats_per_minute": _number(
            "chats per minute", chats_per_minute, whole=False, ceiling=10_000
        ),
        "chat_burst": _number("chats at once", chat_burst, whole=True, ceiling=10_000),
        "max_message_chars": _number(
            "message length", max_message_chars, whole=True, ceiling=configured.max_message_chars
        ),
        "system_prompt": system_prompt.strip() or None,
    }
    await db.admin_update_settings(admin.id, values)
    # This process applies them now; the others within a few seconds.
    await refresh_settings(request.app)
    set_flash(request, ADMIN_FLASH, notice="Settings saved. They apply from now on.")
    return see_other("/admin/settings")


# How a sign-up was let in (db-api's "<how>; <status>"), where that is a policy's name.
SIGNED_UP_UNDER = {
    "open": "while sign-up was open",
    "approval": "while sign-up needed approval",
}


def audit_detail(event: AuditEvent) -> str:
    """An entry's details as the page shows them: settings and policies in words."""
    detail = event.detail or ""
    if event.action == "settings_changed" and detail:
        names = (name.strip() for name in detail.split(","))
        return ", ".join(SETTING_NAMES.get(name, name) for name in names)
    if event.action == "signed_up" and "; " in detail:
        how, status = detail.rsplit("; ", 1)
        status_words = STATUS_FILTERS.get(status, status).lower() if status else ""
        return f"{SIGNED_UP_UNDER.get(how, how)}; {status_words}"
    return detail


@router.get("/admin/audit", response_class=HTMLResponse, summary="Audit log")
async def audit_page(
    request: Request, admin: AdminUser, db: DbDep, before: int | None = None
) -> Response:
    before_id = before if before is not None and before > 0 else None
    found = await db.admin_audit(admin.id, before_id=before_id, limit=AUDIT_PER_PAGE)
    context = {
        "section": "audit",
        "events": found.items,
        "details": {event.id: audit_detail(event) for event in found.items},
        "actions": AUDIT_ACTIONS,
        "older_url": None
        if found.next_before_id is None
        else f"/admin/audit?before={found.next_before_id}",
        "newest_url": "/admin/audit" if before_id is not None else None,
    }
    return render(request, "admin_audit.html", context)
