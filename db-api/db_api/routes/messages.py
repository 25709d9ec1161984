"""Messages inside one of the acting user's chats: append, and edit while a reply streams."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, status

from db_api import crud
from db_api.deps import CurrentUserId, ServiceAuth, SessionDep
from db_api.schemas import ErrorDetail, MessageCreate, MessagePublic, MessageUpdate

router = APIRouter(
    prefix="/chats/{chat_id}/messages",
    tags=["messages"],
    dependencies=[ServiceAuth],
    responses={
        401: {"model": ErrorDetail, "description": "Missing or invalid service token"},
        404: {"model": ErrorDetail, "description": "No such chat or message for this user"},
    },
)

ChatId = Annotated[uuid.UUID, Path(description="The chat's id.")]
# Ids are PostgreSQL bigints; anything outside that range cannot exist and is a 422.
MessageId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The message's id.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Append a message",
    description="Adds a message after the chat's last one and moves the chat to the top of "
    "the list. An assistant reply can start empty with `status: generating`.",
)
def add_message(
    chat_id: ChatId, body: MessageCreate, user_id: CurrentUserId, session: SessionDep
) -> MessagePublic:
    message = crud.add_message(
        session,
        owner_id=user_id,
        chat_id=chat_id,
        role=body.role,
        content=body.content,
        status=body.status,
    )
    return MessagePublic.model_validate(message)


@router.patch(
    "/{message_id}",
    summary="Edit a message",
    description="Replaces the content and/or the status, e.g. as a reply streams in and "
    "finishes. Also moves the chat to the top of the list.",
)
def update_message(
    chat_id: ChatId,
    message_id: MessageId,
    body: MessageUpdate,
    user_id: CurrentUserId,
    session: SessionDep,
) -> MessagePublic:
    message = crud.update_message(
        session,
        owner_id=user_id,
        chat_id=chat_id,
        message_id=message_id,
        content=body.content,
        status=body.status,
    )
    return MessagePublic.model_validate(message)
