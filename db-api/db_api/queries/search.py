"""Full-text search over the acting user's chat titles and message contents.

Both tables carry a generated `search_vector` (the 'simple' configuration: lowercased
words, no stemming, no stop words), so a query matches the same words in any language.
See `models._search_vector` for how case folding depends on the database locale.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, Text, cast, func, literal, select
from sqlalchemy.dialects.postgresql import REGCONFIG, TSQUERY, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from db_api.models import Chat, Message

# The same configuration as the generated columns, or the lexemes would not line up.
SEARCH_CONFIG = cast(literal("simple"), REGCONFIG)
MATCH_START = "\u0002"
MATCH_END = "\u0003"
# Two short fragments: enough context to recognise a conversation, short enough for a list.
HEADLINE_OPTIONS = (
    f"StartSel={MATCH_START}, StopSel={MATCH_END}, MaxFragments=2, MaxWords=18, MinWords=6"
)


def _without_markers(text: ColumnElement[str]) -> ColumnElement[str]:
    # Stored text may itself contain the marker characters; dropping them keeps every
    # highlight in the snippet balanced, so a caller can turn them into tags safely.
    return func.translate(text, MATCH_START + MATCH_END, "")


async def search_chats(
    db: AsyncSession, *, owner_id: uuid.UUID, query: str, limit: int
) -> list[tuple[Chat, str, int | None]]:
    """The owner's chats whose title or any message matches, best first, with a snippet.

    A chat ranks by its best match, title or message; ties go to the most recently
    active chat. The snippet comes from the best matching message (whose id is answered
    too), else from the title (no id).
    A query without any words (only punctuation) matches nothing.
    """
    # A constant expression, so PostgreSQL parses the query once per statement.
    tsquery = func.websearch_to_tsquery(SEARCH_CONFIG, query, type_=TSQUERY)

    best_message = (
        select(
            Message.chat_id,
            Message.id.label("message_id"),
            func.ts_rank(Message.search_vector, tsquery).label("rank"),
        )
        .join(Chat, Chat.id == Message.chat_id)
        .where(Chat.owner_id == owner_id, Message.search_vector.bool_op("@@")(tsquery))
        # DISTINCT ON keeps, per chat, the first row in this order: its best message.
        .ext(distinct_on(Message.chat_id))
        .order_by(
            Message.chat_id,
            func.ts_rank(Message.search_vector, tsquery).desc(),
            Message.id.desc(),
        )
        .subquery("best_message")
    )
    title_matches = Chat.search_vector.bool_op("@@")(tsquery)
    rank = func.greatest(
        func.ts_rank(Chat.search_vector, tsquery), func.coalesce(best_message.c.rank, 0)
    ).label("rank")
    # Rank and cut to `limit` first; ts_headline re-parses the text, so it runs on few rows.
    top = (
        select(Chat.id.label("chat_id"), best_message.c.message_id, rank, Chat.updated_at)
        .outerjoin(best_message, best_message.c.chat_id == Chat.id)
        .where(Chat.owner_id == owner_id, title_matches | best_message.c.chat_id.is_not(None))
        .order_by(rank.desc(), Chat.updated_at.desc(), Chat.id)
        .limit(limit)
        .subquery("top")
    )
    snippet_source = func.coalesce(Message.content, Chat.title)
    snippet = func.ts_headline(
        SEARCH_CONFIG, _without_markers(snippet_source), tsquery, HEADLINE_OPTIONS, type_=Text
    ).label("snippet")
    rows = await db.execute(
        select(Chat, snippet, top.c.message_id)
        .join(top, top.c.chat_id == Chat.id)
        .outerjoin(Message, Message.id == top.c.message_id)
        .order_by(top.c.rank.desc(), top.c.updated_at.desc(), Chat.id)
    )
    return [(chat, text, message_id) for chat, text, message_id in rows]
