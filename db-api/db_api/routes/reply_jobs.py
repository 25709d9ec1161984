"""Replies waiting for a model slot whose writer is gone, taken over by another process."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from db_api.database import WriteSession
from db_api.deps import ServiceAuth
from db_api.queries import reply_jobs
from db_api.schemas import AdoptedReply, ErrorDetail

router = APIRouter(
    prefix="/reply-jobs",
    tags=["messages"],
    dependencies=[ServiceAuth],
    responses={401: {"model": ErrorDetail, "description": "Missing or invalid service token"}},
)


@router.post(
    "/adopt",
    summary="Take over a waiting reply whose writer is gone",
    description="Every chat-ui process calls this every few seconds. A reply that was "
    "waiting for a model slot when the process writing it died (its lease lapsed before "
    "it got a slot) has written nothing yet: the caller becomes its writer, with a fresh "
    "lease and the reply's place in the queue, and writes it as it would its own. The "
    "longest-waiting such reply comes first; 204 when there is none.",
    response_model=AdoptedReply,
    responses={204: {"description": "No reply is waiting without a writer"}},
)
async def adopt(db: WriteSession) -> Response | AdoptedReply:
    job = await reply_jobs.adopt(db)
    if job is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return AdoptedReply(message_id=job.message_id, chat_id=job.chat_id, owner_id=job.owner_id)
