"""Messages inside one of the acting user's chats: append, read, edit while a reply
streams, and drop the tail of a conversation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from db_api.database import ReadSession, WriteSession
from db_api.deps import CurrentUserId, ServiceAuth, SettingsDep
from db_api.queries import messages, reply_jobs
from db_api.routes import rate_limited
from db_api.schemas import (
    MAX_BIGINT,
    ErrorDetail,
    LeaseRequest,
    MessageCreate,
    MessagePublic,
    MessageState,
    MessageUpdate,
    ReplyInOtherChat,
    ReplyLease,
    StatusConflict,
)

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
MessageId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="The message's id.")]
REPLY_IN_PROGRESS = "Another reply in this chat is still being written"
TOO_MANY_REPLIES = rate_limited("The user started too many replies in a short time")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Append a message",
    description="Adds a message after the chat's last one and moves the chat to the top of "
    "the list. An assistant reply can start empty with `status: generating`; a chat has at "
    "most one such reply at a time (409 while another one is being written), and a user "
    "too (409 with `busy_chat_id` while another of their chats has one). Starting a reply "
    "takes one of the user's replies, as a turn does (429 with `Retry-After` beyond "
    "`REPLY_BURST` and `REPLIES_PER_MINUTE`). To send the user's next message and start "
    "its reply together, use `POST /chats/{chat_id}/turns`.",
    responses={
        409: {
            "model": ErrorDetail | ReplyInOtherChat,
            "description": f"{REPLY_IN_PROGRESS}; or one in another of the user's chats",
        },
        429: TOO_MANY_REPLIES,
    },
)
async def add_message(
    chat_id: ChatId,
    body: MessageCreate,
    user_id: CurrentUserId,
    db: WriteSession,
    settings: SettingsDep,
) -> MessagePublic:
    message = await messages.add_message(
        db,
        owner_id=user_id,
        chat_id=chat_id,
        role=body.role,
        content=body.content,
        status=body.status,
        reply_limit=settings.reply_limit,
    )
    return MessagePublic.model_validate(message)


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete the messages after one",
    description="Deletes every message of the chat whose id is greater than `after_id`, e.g. "
    "the old reply when a message is edited and sent again. `after_id=0` empties the chat. "
    "Deleting nothing is not an error.",
)
async def delete_messages_after(
    chat_id: ChatId,
    user_id: CurrentUserId,
    db: WriteSession,
    after_id: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_BIGINT,
            description="Keep messages up to and including this id; delete the later ones.",
            examples=[41],
        ),
    ],
) -> Response:
    await messages.delete_messages_after(db, owner_id=user_id, chat_id=chat_id, after_id=after_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{message_id}",
    summary="Get a message",
    description="One message of the chat, e.g. to poll a reply that is being generated; "
    "a reply waiting for a model slot also says its place in the queue.",
)
async def get_message(
    chat_id: ChatId, message_id: MessageId, user_id: CurrentUserId, db: ReadSession
) -> MessageState:
    message = await messages.get_message(
        db, owner_id=user_id, chat_id=chat_id, message_id=message_id
    )
    if message.status == "generating" and await reply_jobs.interrupt_lapsed_replies(
        db, chat_id=chat_id
    ):
        # Its writer was gone; it is failed now (an autocommit statement: already stored).
        await db.refresh(message)
    state = MessageState.model_validate(message)
    if state.status == "generating":
        state.queue_position = await reply_jobs.place_in_line(db, message_id=message_id)
    return state


@router.patch(
    "/{message_id}",
    summary="Edit a message",
    description="Replaces the content, the status and/or `context_start_id`, e.g. as a reply "
    "streams in and finishes. Also moves the chat to the top of the list. With `if_status`, "
    "the check and the update are one atomic step: if the message's status is no longer "
    "`if_status`, nothing changes and the answer is 409 with the current `status`, so a "
    "finishing reply cannot overwrite a stop and a late stop cannot overwrite a finished reply. "
    "Setting `status: generating` while another reply of the chat is being written is also a "
    "409 (one reply at a time per chat; `status` is then this message's unchanged status), "
    "and so is setting it while another of the user's chats has one (with `busy_chat_id`). "
    "Setting `status: generating` on a message that is not (a retry) takes one of the "
    "user's replies, as a turn does (429 with `Retry-After` beyond `REPLY_BURST` and "
    "`REPLIES_PER_MINUTE`).",
    responses={
        409: {
            "model": StatusConflict | ReplyInOtherChat,
            "description": f"The status is no longer `if_status`; or {REPLY_IN_PROGRESS.lower()}"
            "; or one in another of the user's chats",
        },
        429: TOO_MANY_REPLIES,
    },
)
async def update_message(
    chat_id: ChatId,
    message_id: MessageId,
    body: MessageUpdate,
    user_id: CurrentUserId,
    db: WriteSession,
    settings: SettingsDep,
) -> MessagePublic:
    message = await messages.update_message(
        db,
        owner_id=user_id,
        chat_id=chat_id,
        message_id=message_id,
        content=body.content,
        status=body.status,
        context_start_id=body.context_start_id if body.sets_context_start else messages.KEEP,
        if_status=body.if_status,
        reply_limit=settings.reply_limit,
    )
    return MessagePublic.model_validate(message)


@router.put(
    "/{message_id}/lease",
    summary="Renew a reply's lease; get its model slot or its place in the queue",
    description="The process writing a `generating` reply calls this every few seconds "
    "while it writes (the lease lapses after `lease_seconds`: 10 s on a slot, 30 s while "
    "waiting), and, while it waits for a slot, the sooner the nearer it is to the front. "
    "The answer is the model server's slot to send the "
    "reply's request to (`id_slot`), or, while every slot is busy or other replies waited "
    "longer, the reply's place in the queue. Slots go to waiting replies in the order they "
    "were started, and a user has at most one reply being written or waiting, so users "
    "take turns. A reply whose writer stops renewing while it holds a slot is marked "
    "`error` (its text kept) by the next read or write of its chat; one still waiting is "
    "taken over by another writer (`POST /reply-jobs/adopt`). 409 with the current "
    "`status` when the reply is no longer being written (finished, stopped, or its lease "
    "lapsed and its slot went to another reply): the writer should stop.",
    responses={
        409: {"model": StatusConflict, "description": "The reply is no longer being written"}
    },
)
async def renew_lease(
    chat_id: ChatId,
    message_id: MessageId,
    body: LeaseRequest,
    user_id: CurrentUserId,
    db: WriteSession,
) -> ReplyLease:
    held = await reply_jobs.hold(
        db, owner_id=user_id, chat_id=chat_id, message_id=message_id, slots=body.slots
    )
    return ReplyLease(
        slot=held.slot,
        position=held.position,
        lease_seconds=(
            reply_jobs.LEASE if held.slot is not None else reply_jobs.WAITING_LEASE
        ).total_seconds(),
    )
