"""A turn: the user's next message and the assistant's empty reply, written together."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, status

from db_api import crud
from db_api.deps import CurrentUserId, ServiceAuth, SessionDep
from db_api.schemas import ChatPublic, ErrorDetail, MessagePublic, TurnCreate, TurnPublic

router = APIRouter(
    prefix="/chats/{chat_id}/turns",
    tags=["messages"],
    dependencies=[ServiceAuth],
    responses={
        401: {"model": ErrorDetail, "description": "Missing or invalid service token"},
        404: {"model": ErrorDetail, "description": "No such chat for this user"},
    },
)

ChatId = Annotated[uuid.UUID, Path(description="The chat's id.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Send a message and start the reply",
    description="In one transaction: appends the user's message (`complete`) and an empty "
    "assistant reply (`generating`) right after it, and moves the chat to the top of the "
    "list. When `title` is given and the chat has no user message yet, the chat is renamed "
    "to it (a chat is named after its first question); otherwise `title` is ignored. "
    "Fill the reply in with `PATCH /chats/{chat_id}/messages/{reply.id}`.",
)
def start_turn(
    chat_id: ChatId, body: TurnCreate, user_id: CurrentUserId, session: SessionDep
) -> TurnPublic:
    chat, user_message, reply = crud.start_turn(
        session, owner_id=user_id, chat_id=chat_id, content=body.content, title=body.title
    )
    return TurnPublic(
        chat=ChatPublic.model_validate(chat),
        user_message=MessagePublic.model_validate(user_message),
        reply=MessagePublic.model_validate(reply),
    )
