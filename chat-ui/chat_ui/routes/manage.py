"""Managing chats: rename, delete (after a confirmation page), search and export."""

from __future__ import annotations

import re
import uuid

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup, escape

from chat_ui.deps import ChatPagesDep, CurrentUser, DbDep
from chat_ui.errors import ChatUiError, InvalidInput
from chat_ui.export import attachment_disposition, chat_as_json, chat_as_markdown
from chat_ui.forms import FormRouter, FormText
from chat_ui.markdown import plain_fragment
from chat_ui.pages import json_error, render, see_other, wants_json
from chat_ui.schemas import SearchHit
from chat_ui.sessions import set_flash
from chat_ui.views import CHAT_LIST_FLASH, rename_flash_key

router = FormRouter(tags=["manage"])

TITLE_MAX_CHARS = 200
SEARCH_MAX_CHARS = 200
SEARCH_RESULTS = 20
# db-api marks the matched words of a snippet with these control characters.
_MATCH = re.compile("\u0002(.*?)\u0003", re.DOTALL)
_MARKERS = re.compile("[\u0002\u0003]")


def validate_title(title: str) -> str:
    """The title as stored: trimmed, 1 to 200 characters (db-api's limits)."""
    title = title.strip()
    if not title:
        raise InvalidInput("Give the chat a title.")
    if len(title) > TITLE_MAX_CHARS:
        raise InvalidInput(f"Titles are at most {TITLE_MAX_CHARS} characters.")
    return title


def highlight_snippet(snippet: str) -> Markup:
    """The snippet as plain text (no markdown), then HTML: escaped first, so only our own
    <mark> tags are markup."""
    escaped = str(escape(" ".join(plain_fragment(snippet).split())))
    marked = _MATCH.sub(lambda match: f"<mark>{match.group(1)}</mark>", escaped)
    return Markup(_MARKERS.sub("", marked))  # noqa: S704 - built from escaped text


@router.post("/chats/{chat_id}/rename", summary="Rename a chat")
async def rename_chat(
    request: Request,
    chat_id: uuid.UUID,
    user: CurrentUser,
    db: DbDep,
    title: FormText = "",
) -> Response:
    try:
        await db.rename_chat(user.id, chat_id, title=validate_title(title))
    except InvalidInput as error:
        # Someone else's chat must answer 404 here too, not reveal itself via the form.
        await db.get_chat(user.id, chat_id)
        set_flash(request, rename_flash_key(chat_id), error=error.message, title=title)
    return see_other(f"/chats/{chat_id}")


@router.get("/chats/{chat_id}/delete", response_class=HTMLResponse, summary="Confirm deleting")
async def confirm_delete(
    request: Request, chat_id: uuid.UUID, user: CurrentUser, db: DbDep
) -> Response:
    chat = await db.get_chat(user.id, chat_id)
    return render(request, "delete.html", {"chat": chat})


@router.post("/chats/{chat_id}/delete", summary="Delete a chat and its messages")
async def delete_chat(
    request: Request, chat_id: uuid.UUID, user: CurrentUser, db: DbDep
) -> Response:
    await db.delete_chat(user.id, chat_id)
    set_flash(request, CHAT_LIST_FLASH, notice="Chat deleted.")
    return see_other("/chats")


@router.get("/search", response_class=HTMLResponse, summary="Search your chats")
async def search(
    request: Request, user: CurrentUser, db: DbDep, pages: ChatPagesDep, q: str = ""
) -> Response:
    query = q.strip()
    view = await pages.load(None)  # for the sidebar
    context = {
        **pages.sidebar_context(view.chats),
        "chat": None,
        "query": query,
        "results": None,
        "search_page": True,
    }
    if not query:
        return render(request, "search.html", context)
    try:
        if len(query) > SEARCH_MAX_CHARS:
            raise InvalidInput(f"Search for at most {SEARCH_MAX_CHARS} characters.")
        hits = await db.search_chats(user.id, query, limit=SEARCH_RESULTS)
    except ChatUiError as error:
        if wants_json(request):
            return json_error(error)
        context["error"] = error.message
        return render(request, "search.html", context, status_code=error.status_code)
    results = [SearchResult(hit) for hit in hits]
    if wants_json(request):
        # The sidebar's results as you type (app.js): the same words as the page.
        return JSONResponse(
            {
                "summary": search_summary(len(results), query),
                "results": [
                    {"title": r.chat.title, "url": r.url, "snippet_html": str(r.snippet)}
                    for r in results
                ],
            }
        )
    context["results"] = results
    context["summary"] = search_summary(len(results), query)
    return render(request, "search.html", context)


class SearchResult:
    """A hit as the pages show it: the chat, where to open it, the highlighted snippet."""

    def __init__(self, hit: SearchHit) -> None:
        self.chat = hit.chat
        # Opens the chat at the matching message (marked by style.css).
        anchor = "" if hit.message_id is None else f"#message-{hit.message_id}"
        self.url = f"/chats/{hit.chat.id}{anchor}"
        self.snippet = highlight_snippet(hit.snippet)


def search_summary(count: int, query: str) -> str:
    if count == 0:
        return f"No chats match “{query}”. Try other words."
    return f"{count} {'chat matches' if count == 1 else 'chats match'} “{query}”."


@router.get("/chats/{chat_id}/export.md", summary="Download a chat as Markdown")
async def export_markdown(chat_id: uuid.UUID, user: CurrentUser, db: DbDep) -> Response:
    chat = await db.get_chat(user.id, chat_id)
    return Response(
        chat_as_markdown(chat),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": attachment_disposition(chat.title, "md")},
    )


@router.get("/chats/{chat_id}/export.json", summary="Download a chat as JSON")
async def export_json(chat_id: uuid.UUID, user: CurrentUser, db: DbDep) -> Response:
    chat = await db.get_chat(user.id, chat_id)
    return Response(
        chat_as_json(chat),
        media_type="application/json",
        headers={"Content-Disposition": attachment_disposition(chat.title, "json")},
    )
