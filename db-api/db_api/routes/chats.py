"""Chats of the acting user: list, search, export, create, read with messages, rename, delete."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status

from db_api.database import PageConnection, ReadSession, WriteSession
from db_api.deps import CurrentUserId, ServiceAuth, SettingsDep
from db_api.errors import ChatNotFoundError
from db_api.queries import chats, pages, search
from db_api.routes import rate_limited
from db_api.schemas import (
    DEFAULT_CHAT_TITLE,
    ChatCreate,
    ChatDetail,
    ChatExportPage,
    ChatPage,
    ChatPublic,
    ChatUpdate,
    ErrorDetail,
    SearchHit,
    SearchQuery,
    SearchResults,
)

router = APIRouter(
    prefix="/chats",
    tags=["chats"],
    dependencies=[ServiceAuth],
    responses={401: {"model": ErrorDetail, "description": "Missing or invalid service token"}},
)

ChatId = Annotated[uuid.UUID, Path(description="The chat's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDetail, "description": "No such chat for this user"}
}

# PostgreSQL's OFFSET is a bigint; a bound far below it keeps absurd values a 422.
MAX_OFFSET = 1_000_000_000


@router.get(
    "",
    summary="List the acting user's chats",
    description="Most recently active (`updated_at`) first, one page at a time.",
    response_model=ChatPage,
)
async def list_chats(
    user_id: CurrentUserId,
    connection: PageConnection,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, 1 to 100.")] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Chats to skip.")] = 0,
) -> Response:
    total = await chats.chat_count(connection, owner_id=user_id)
    items = await chats.chat_rows(connection, owner_id=user_id, limit=limit, offset=offset)
    return pages.json_response({"items": items, "total": total, "limit": limit, "offset": offset})


# Declared before "/{chat_id}", which would otherwise take "search" for a (malformed) id.
@router.get(
    "/search",
    summary="Search the acting user's chats",
    description="PostgreSQL full-text search (`websearch_to_tsquery('simple', q)`: words, "
    '`"quoted phrases"`, `or`, `-excluded`) over the titles and message contents of the '
    "acting user's chats. Words match exactly, case-insensitively, without stemming, in any "
    "language. Best matches first (the better of title and best message), then most "
    "recently active. Each hit carries a plain-text `snippet` with the matched words "
    "wrapped in U+0002 ... U+0003, and the `message_id` it comes from (null: the title). "
    "A query of only punctuation matches nothing.",
)
async def search_chats(
    user_id: CurrentUserId,
    db: ReadSession,
    q: Annotated[SearchQuery, Query(description="What to look for; 1 to 200 characters, trimmed.")],
    limit: Annotated[int, Query(ge=1, le=50, description="Most hits to answer, 1 to 50.")] = 20,
) -> SearchResults:
    hits = await search.search_chats(db, owner_id=user_id, query=q, limit=limit)
    return SearchResults(
        items=[
            SearchHit(chat=ChatPublic.model_validate(chat), snippet=snippet, message_id=message_id)
            for chat, snippet, message_id in hits
        ],
        query=q,
    )


# Also before "/{chat_id}".
@router.get(
    "/export",
    summary="Export the acting user's chats with their messages",
    description="Every chat of the user with all of its messages, each as "
    "`GET /chats/{chat_id}` answers it, `limit` chats a page. Pages go by chat id, not by "
    "activity, so a chat that changes meanwhile is neither skipped nor repeated: start "
    "without `after`, then send each answer's `next_after` until it is null.",
    response_model=ChatExportPage,
)
async def export_chats(
    user_id: CurrentUserId,
    connection: PageConnection,
    after: Annotated[
        uuid.UUID | None, Query(description="The previous page's `next_after`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=50, description="Chats per page, 1 to 50.")] = 20,
) -> Response:
    ids = await chats.chat_ids_after(connection, owner_id=user_id, after=after, limit=limit)
    items = []
    for chat_id in ids:
        chat = await pages.chat_detail(connection, owner_id=user_id, chat_id=chat_id)
        if chat is not None:  # deleted since its id was read
            items.append(chat)
    next_after = ids[-1] if len(ids) == limit else None
    return pages.json_response({"items": items, "next_after": next_after})


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Start a chat",
    description=f'Creates an empty chat; without a title it is called "{DEFAULT_CHAT_TITLE}". '
    "With a `request_id` the acting user already created a chat with, nothing is written and "
    "the answer is 200 with that chat (as it is now), so sending the same form twice makes "
    "one chat. A user may create `CHAT_BURST` chats at once, then `CHATS_PER_MINUTE`; "
    "beyond, the answer is 429 with `Retry-After` and nothing is written.",
    responses={
        200: {"model": ChatPublic, "description": "Already created with this `request_id`"},
        404: {"model": ErrorDetail, "description": "Unknown user"},
        429: rate_limited("The user created too many chats in a short time"),
    },
)
async def create_chat(
    body: ChatCreate,
    user_id: CurrentUserId,
    db: WriteSession,
    settings: SettingsDep,
    response: Response,
) -> ChatPublic:
    chat, created = await chats.create_chat(
        db,
        owner_id=user_id,
        title=body.title or DEFAULT_CHAT_TITLE,
        chat_limit=settings.chat_limit,
        request_id=body.request_id,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return ChatPublic.model_validate(chat)


@router.get(
    "/{chat_id}",
    summary="Get a chat with its messages",
    description="The chat and all of its messages in the order they were added.",
    response_model=ChatDetail,
    responses=NOT_FOUND,
)
async def get_chat(chat_id: ChatId, user_id: CurrentUserId, connection: PageConnection) -> Response:
    chat = await pages.chat_detail(connection, owner_id=user_id, chat_id=chat_id)
    if chat is None:
        raise ChatNotFoundError()
    return pages.json_response(chat)


@router.patch(
    "/{chat_id}",
    summary="Rename a chat",
    description="Sets a new title (trimmed, 1 to 200 characters).",
    responses=NOT_FOUND,
)
async def rename_chat(
    chat_id: ChatId, body: ChatUpdate, user_id: CurrentUserId, db: WriteSession
) -> ChatPublic:
    chat = await chats.rename_chat(db, owner_id=user_id, chat_id=chat_id, title=body.title)
    return ChatPublic.model_validate(chat)


@router.delete(
    "/{chat_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a chat",
    description="Deletes the chat and all of its messages.",
    responses=NOT_FOUND,
)
async def delete_chat(chat_id: ChatId, user_id: CurrentUserId, db: WriteSession) -> Response:
    await chats.delete_chat(db, owner_id=user_id, chat_id=chat_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
