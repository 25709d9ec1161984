"""The account page: a new password, the browsers signed in, every chat in one download,
and deleting the account.

Every route acts as the signed-in user only; db-api scopes each request to them. A new
password and deleting the account ask for the password again (db-api checks it, and
counts wrong ones like failed sign-ins), so a browser left signed in is not enough.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import IO, Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from chat_ui.db_client import DbClient
from chat_ui.deps import CurrentUser, DbDep, client_ip, get_current_user
from chat_ui.errors import ChatUiError, InvalidInput, SignInNotFound
from chat_ui.export import ChatArchive, attachment_disposition
from chat_ui.forms import FormRouter, FormText
from chat_ui.pages import render, see_other
from chat_ui.routes.auth import validate_new_password
from chat_ui.sessions import SessionUser, claimed_session, pop_flash, set_flash, sign_out
from chat_ui.views import SIGN_IN_FLASH, FailurePage, failure_page, form_again

router = FormRouter(tags=["account"])

ACCOUNT_FLASH = "account"
EXPORT_PAGE_CHATS = 20
# An export is kept in memory up to this size, then in a temporary file.
EXPORT_IN_MEMORY_BYTES = 8 * 1024 * 1024
EXPORT_CHUNK_BYTES = 64 * 1024


async def account_context(request: Request, db: DbClient, user: SessionUser) -> dict[str, Any]:
    """What account.html shows: the user's sign-ins and the page's one-shot notice."""
    token, _claimed = claimed_session(request)
    return {
        "sessions": await db.list_sessions(user.id, token=token),
        "notice": pop_flash(request, ACCOUNT_FLASH).get("notice"),
    }


@router.get("/account", response_class=HTMLResponse, summary="Your account")
async def account_page(request: Request, user: CurrentUser, db: DbDep) -> Response:
    return render(request, "account.html", await account_context(request, db, user))


async def account_page_again(request: Request, db: DbDep) -> FailurePage:
    """The account page again, saying what to fix in the password form (never the passwords)."""

    async def page(error: ChatUiError) -> Response:
        # Resolved here too: a stale form may come from a browser signed out since.
        user = await get_current_user(request, db)
        context = {**await account_context(request, db, user), "password_error": error.message}
        return render(request, "account.html", context, status_code=error.status_code)

    return page


@router.post(
    "/account/password",
    response_class=HTMLResponse,
    summary="Change your password (signs out your other browsers)",
    dependencies=[failure_page(account_page_again)],
)
async def change_password(
    request: Request,
    user: CurrentUser,
    db: DbDep,
    current_password: FormText = "",
    new_password: FormText = "",
    new_password_confirm: FormText = "",
) -> Response:
    if not current_password:
        raise InvalidInput("Enter your current password.")
    validate_new_password(new_password, new_password_confirm)
    token, _claimed = claimed_session(request)
    await db.change_password(
        user.id,
        current_password=current_password,
        new_password=new_password,
        keep_token=token,
        client_ip=client_ip(request),
    )
    notice = "Your password was changed. Every other browser was signed out."
    set_flash(request, ACCOUNT_FLASH, notice=notice)
    return see_other("/account")


@router.post("/account/sessions/end", summary="Sign out one of your browsers")
async def end_session(
    request: Request, user: CurrentUser, db: DbDep, session_id: FormText = ""
) -> Response:
    try:
        sign_in_id = uuid.UUID(session_id)
    except ValueError:
        raise SignInNotFound() from None
    await db.end_session_by_id(user.id, sign_in_id)
    set_flash(request, ACCOUNT_FLASH, notice="That browser was signed out.")
    return see_other("/account")


@router.get(
    "/account/sign-out-everywhere",
    response_class=HTMLResponse,
    summary="Confirm ending all sign-ins",
)
async def confirm_sign_out_everywhere(request: Request, user: CurrentUser) -> Response:
    # The form posts to /logout with `everywhere`.
    return render(request, "account_sign_out_everywhere.html")


@router.get("/account/export", summary="Download all your chats (a zip of Markdown and JSON)")
async def export_all_chats(user: CurrentUser, db: DbDep) -> Response:
    now = datetime.now(UTC)
    name = f"chats-{user.username}-{now:%Y-%m-%d}"
    archive = tempfile.SpooledTemporaryFile(max_size=EXPORT_IN_MEMORY_BYTES)  # noqa: SIM115
    try:
        await write_export(db, user.id, ChatArchive(archive, folder=name, exported_at=now))
    except BaseException:
        archive.close()
        raise
    size = archive.tell()
    archive.seek(0)
    return StreamingResponse(
        _read_and_close(archive),
        media_type="application/zip",
        headers={
            "Content-Disposition": attachment_disposition(name, "zip"),
            "Content-Length": str(size),
        },
    )


async def write_export(db: DbClient, user_id: uuid.UUID, archive: ChatArchive) -> None:
    """Every chat of the user into `archive`, a page of chats at a time (then its index)."""
    after = None
    while True:
        page = await db.export_chats(user_id, after=after, limit=EXPORT_PAGE_CHATS)
        # Compressing is CPU work: off the event loop.
        await run_in_threadpool(archive.add, page.items)
        if page.next_after is None:
            break
        after = page.next_after
    await run_in_threadpool(archive.close)


async def _read_and_close(file: IO[bytes]) -> AsyncIterator[bytes]:
    try:
        while chunk := await run_in_threadpool(file.read, EXPORT_CHUNK_BYTES):
            yield chunk
    finally:
        file.close()


@router.get("/account/delete", response_class=HTMLResponse, summary="Confirm deleting your account")
async def confirm_delete_account(request: Request, user: CurrentUser) -> Response:
    return render(request, "account_delete.html")


@router.post(
    "/account/delete",
    response_class=HTMLResponse,
    summary="Delete your account and every chat in it",
    dependencies=[failure_page(form_again("account_delete.html", keep=()))],
)
async def delete_account(
    request: Request, user: CurrentUser, db: DbDep, password: FormText = ""
) -> Response:
    if not password:
        raise InvalidInput("Enter your password to delete your account.")
    await db.delete_account(user.id, password=password, client_ip=client_ip(request))
    # db-api ended every session with the account; this cookie names one of them.
    sign_out(request)
    set_flash(request, SIGN_IN_FLASH, notice="Your account was deleted, with all of its chats.")
    return see_other("/login")
