"""The admin's routes: accounts, invites, run-time settings and the audit log.

Every route checks in PostgreSQL that the acting user (`X-User-Id`) is an active admin
(403 otherwise; chat-ui answers its normal 404). Nothing here reads a chat's title or a
message's text: an admin sees how much each user stores, never what.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from db_api import security
from db_api.config import Settings
from db_api.database import ReadSession, WriteSession
from db_api.deps import CurrentUserId, ServiceAuth, SettingsDep
from db_api.errors import LinkNotFoundError, UserNotFoundError
from db_api.models import AppSettings, User
from db_api.queries import admin, app_settings, audit, links
from db_api.schemas import (
    AdminUser,
    AdminUserList,
    AppSettingsUpdate,
    AppSettingsView,
    AuditEventPublic,
    AuditPage,
    ConfiguredDefaults,
    ErrorDetail,
    InviteCreate,
    InviteList,
    InvitePublic,
    LinkCreated,
    RoleChange,
    StatusChange,
)

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[ServiceAuth],
    responses={
        401: {"model": ErrorDetail, "description": "Missing or invalid service token"},
        403: {"model": ErrorDetail, "description": "The acting user is not an active admin"},
    },
)

UserIdPath = Annotated[uuid.UUID, Path(description="The account's id.")]
TARGET: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "Unknown user"},
    409: {
        "model": ErrorDetail,
        "description": "The admin's own account, the last admin, or an account not active",
    },
}
STATUS_ACTIONS: dict[tuple[str, str], audit.AuditAction] = {
    ("pending", "active"): "approved",
    ("disabled", "active"): "enabled",
    ("active", "disabled"): "disabled",
    ("pending", "disabled"): "disabled",
}


@router.get(
    "/users",
    summary="List accounts",
    description="Pending accounts first, then newest first; `search` matches part of the "
    "name regardless of case. Each with its usage: chats, messages and their stored size.",
)
async def list_users(
    user_id: CurrentUserId,
    db: ReadSession,
    search: Annotated[str | None, Query(max_length=32)] = None,
    status_filter: Annotated[
        str | None, Query(alias="status", pattern="^(active|pending|disabled)$")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AdminUserList:
    await admin.require_admin(db, user_id=user_id, for_change=False)
    found, total = await admin.list_users(
        db, search=search, status=status_filter, offset=offset, limit=limit
    )
    return AdminUserList(items=[_admin_user(row) for row in found], total=total)


@router.get(
    "/users/{target_id}",
    summary="One account, as the list shows it",
    description="Its role, status and usage (chats, messages, stored size); never content.",
    responses={404: {"model": ErrorDetail, "description": "Unknown user"}},
)
async def get_user(target_id: UserIdPath, user_id: CurrentUserId, db: ReadSession) -> AdminUser:
    await admin.require_admin(db, user_id=user_id, for_change=False)
    found, _total = await admin.list_users(db, user_id=target_id)
    if not found:
        raise UserNotFoundError()
    return _admin_user(found[0])


def _admin_user(row: admin.UserSummary) -> AdminUser:
    return AdminUser(
        id=row.user.id,
        username=row.user.username,
        role=row.user.role,  # type: ignore[arg-type]
        status=row.user.status,  # type: ignore[arg-type]
        created_at=row.user.created_at,
        last_seen_at=row.user.last_seen_at,
        chats=row.chats,
        messages=row.messages,
        storage_bytes=row.storage_bytes,
    )


@router.put(
    "/users/{target_id}/status",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Approve, disable or enable an account",
    description="`active` approves a pending account or enables a disabled one; `disabled` "
    "also ends every session of the account at once. Not the admin's own account.",
    responses=TARGET,
)
async def change_status(
    target_id: UserIdPath, body: StatusChange, user_id: CurrentUserId, db: WriteSession
) -> Response:
    acting = await admin.require_admin(db, user_id=user_id, for_change=True)
    target = await admin.lock_target(db, admin=acting, user_id=target_id)
    before = await admin.set_status(db, user=target, status=body.status)
    action = STATUS_ACTIONS.get((before, body.status))
    if action is not None:
        audit.record(db, action=action, actor=acting.username, target=target.username)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/users/{target_id}/role",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Make an account admin, or revoke",
    description="Only an active account can be made admin (409 otherwise); the last active "
    "admin cannot be revoked. Not the admin's own account.",
    responses=TARGET,
)
async def change_role(
    target_id: UserIdPath, body: RoleChange, user_id: CurrentUserId, db: WriteSession
) -> Response:
    acting = await admin.require_admin(db, user_id=user_id, for_change=True)
    target = await admin.lock_target(db, admin=acting, user_id=target_id)
    if await admin.set_role(db, user=target, role=body.role) != body.role:
        action: audit.AuditAction = "made_admin" if body.role == "admin" else "admin_revoked"
        audit.record(db, action=action, actor=acting.username, target=target.username)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/users/{target_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an account with all its data",
    description="Its sessions, chats, messages and replies being written go with it.",
    responses=TARGET,
)
async def delete_user(target_id: UserIdPath, user_id: CurrentUserId, db: WriteSession) -> Response:
    acting = await admin.require_admin(db, user_id=user_id, for_change=True)
    target = await admin.lock_target(db, admin=acting, user_id=target_id)
    name = target.username
    await admin.delete_user(db, user=target)
    audit.record(db, action="deleted_user", actor=acting.username, target=name)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{target_id}/password-reset",
    status_code=status.HTTP_201_CREATED,
    summary="Make a one-time password-reset link",
    description="Answers the link's token once (`PASSWORD_RESET_HOURS`); an earlier link "
    "for the account stops working. The admin hands it over; whoever opens it sets a new "
    "password, which ends every session of the account.",
    responses=TARGET,
)
async def create_password_reset(
    target_id: UserIdPath, user_id: CurrentUserId, db: WriteSession, settings: SettingsDep
) -> LinkCreated:
    acting = await admin.require_admin(db, user_id=user_id, for_change=True)
    target = await admin.lock_target(db, admin=acting, user_id=target_id)
    return await _new_link(
        db,
        acting=acting,
        kind="password_reset",
        valid_for=timedelta(hours=settings.password_reset_hours),
        user=target,
    )


@router.get(
    "/invites",
    summary="List the invites not used yet",
    description="Newest first, with who made each; expired ones are deleted on the way.",
)
async def list_invites(user_id: CurrentUserId, db: WriteSession) -> InviteList:
    await admin.require_admin(db, user_id=user_id, for_change=False)
    found = await links.live_invites(db)
    await db.commit()
    return InviteList(
        items=[
            InvitePublic(
                id=link.id, created_at=link.created_at, expires_at=link.expires_at, created_by=name
            )
            for link, name in found
        ]
    )


@router.post(
    "/invites",
    status_code=status.HTTP_201_CREATED,
    summary="Make a one-time invite link",
    description="Answers the token once. Whoever signs up with it gets an active account, "
    "whatever the sign-up policy.",
)
async def create_invite(
    body: InviteCreate, user_id: CurrentUserId, db: WriteSession
) -> LinkCreated:
    acting = await admin.require_admin(db, user_id=user_id, for_change=True)
    return await _new_link(
        db, acting=acting, kind="invite", valid_for=timedelta(hours=body.valid_hours)
    )


@router.delete(
    "/invites/{invite_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an invite",
    description="The link stops working at once.",
    responses={404: {"model": ErrorDetail, "description": "Unknown or already used"}},
)
async def revoke_invite(
    invite_id: Annotated[uuid.UUID, Path()], user_id: CurrentUserId, db: WriteSession
) -> Response:
    acting = await admin.require_admin(db, user_id=user_id, for_change=True)
    if not await links.revoke_invite(db, link_id=invite_id):
        raise LinkNotFoundError()
    audit.record(db, action="invite_revoked", actor=acting.username)
    await db.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/settings",
    summary="The run-time settings",
    description="What an admin set (null: the server's configuration) and db-api's "
    "configured defaults. chat-ui has its own defaults for the message length and the "
    "system prompt.",
)
async def get_app_settings(
    user_id: CurrentUserId, db: ReadSession, settings: SettingsDep
) -> AppSettingsView:
    await admin.require_admin(db, user_id=user_id, for_change=False)
    row = await app_settings.stored(db)
    return _settings_view(row, settings)


@router.put(
    "/settings",
    summary="Change the run-time settings",
    description="Replaces every setting (null: back to the configuration). Applied from "
    "the next request on, on every replica, without a restart.",
)
async def update_app_settings(
    body: AppSettingsUpdate, user_id: CurrentUserId, db: WriteSession, settings: SettingsDep
) -> AppSettingsView:
    acting = await admin.require_admin(db, user_id=user_id, for_change=True)
    row, changed = await app_settings.update(db, values=body.model_dump())
    if changed:
        audit.record(
            db, action="settings_changed", actor=acting.username, detail=", ".join(changed)
        )
    view = _settings_view(row, settings)
    await db.commit()
    return view


@router.get(
    "/audit",
    summary="The audit log, newest first",
    description="Admin actions and security events (sign-ups, failed sign-ins on existing "
    "accounts, lockouts, deletions), `limit` at a time; `next_before_id` pages back.",
)
async def audit_log(
    user_id: CurrentUserId,
    db: ReadSession,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    await admin.require_admin(db, user_id=user_id, for_change=False)
    events = await audit.page(db, before_id=before_id, limit=limit + 1)
    shown = events[:limit]
    return AuditPage(
        items=[AuditEventPublic.model_validate(event) for event in shown],
        next_before_id=shown[-1].id if len(events) > limit else None,
    )


async def _new_link(
    db: WriteSession,
    *,
    acting: User,
    kind: str,
    valid_for: timedelta,
    user: User | None = None,
) -> LinkCreated:
    token = security.new_session_token()
    link = await links.create_link(
        db,
        kind=kind,
        token_hash=security.hash_session_token(token),
        created_by=acting.id,
        valid_for=valid_for,
        user_id=None if user is None else user.id,
    )
    audit.record(
        db,
        action="invite_created" if kind == "invite" else "password_reset_link_created",
        actor=acting.username,
        target=None if user is None else user.username,
    )
    expires_at = link.expires_at
    await db.commit()
    return LinkCreated(token=token, expires_at=expires_at)


def _settings_view(row: AppSettings, settings: Settings) -> AppSettingsView:
    return AppSettingsView(
        **{name: getattr(row, name) for name in app_settings.EDITABLE},
        defaults=ConfiguredDefaults(
            signup_mode=settings.signup_mode,
            replies_per_minute=settings.replies_per_minute,
            reply_burst=settings.reply_burst,
            chats_per_minute=settings.chats_per_minute,
            chat_burst=settings.chat_burst,
        ),
        updated_at=row.updated_at,
    )
