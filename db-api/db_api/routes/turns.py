"""A turn: the user's next message and the assistant's empty reply, written together."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from db_api.database import WriteSession
from db_api.deps import CurrentUserId, ServiceAuth, SettingsDep
from db_api.queries import messages
from db_api.routes import rate_limited
from db_api.schemas import (
    ChatPublic,
    ErrorDetail,
    MessagePublic,
    ReplyInOtherChat,
    TurnCreate,
    TurnPublic,
)

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
    "Fill the reply in with `PATCH /chats/{chat_id}/messages/{reply.id}`. "
    "A chat has at most one reply being written: while one is `generating`, the answer is "
    "409; so does a user: while one of their other chats has a reply being written (saved "
    "within the last 60 s), the answer is 409 with that chat's id. Each turn takes one of "
    "the user's replies (`REPLY_BURST` at once, then `REPLIES_PER_MINUTE`); beyond, the "
    "answer is 429 with `Retry-After` and nothing is written. With a `request_id` "
    "already sent in this chat, nothing is written and the answer is 200 with that turn "
    "(the user's message and the reply after it, as they are now), and no reply is "
    "counted.",
    responses={
        200: {"model": TurnPublic, "description": "Already sent with this `request_id`"},
        409: {
            "model": ErrorDetail | ReplyInOtherChat,
            "description": "Another reply in this chat is still being written (or the "
            "`request_id` was sent before and that turn's reply has since been deleted); "
            "or one in another of the user's chats (`busy_chat_id`)",
        },
        429: rate_limited("The user started too many replies in a short time"),
    },
)
async def start_turn(
    chat_id: ChatId,
    body: TurnCreate,
    user_id: CurrentUserId,
    db: WriteSession,
    settings: SettingsDep,
    response: Response,
) -> TurnPublic:
    turn = await messages.start_turn(
        db,
        owner_id=user_id,
        chat_id=chat_id,
        content=body.content,
        title=body.title,
        reply_limit=settings.reply_limit,
        request_id=body.request_id,
        replace_after_id=body.replace_after_id,
        slots=body.slots,
    )
    if not turn.created:
        response.status_code = status.HTTP_200_OK
    return TurnPublic(
        chat=ChatPublic.model_validate(turn.chat),
        user_message=MessagePublic.model_validate(turn.user_message),
        reply=MessagePublic.model_validate(turn.reply),
        slot=turn.slot,
    )
