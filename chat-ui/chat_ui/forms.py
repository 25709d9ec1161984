"""The fields of the app's forms, and the check every submitted form passes first.

Our forms hold text only, so a file part (where text belongs, or anywhere) means the
form is not ours. Failing it while FastAPI reads the fields would answer before the
route could show the form again; instead it reads as no text, and `check_form`, the
route's first step, refuses the whole form. The route then answers MalformedForm as
it answers any other problem, keeping what was typed, and does nothing with the form.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from pydantic import BeforeValidator
from starlette.datastructures import UploadFile

from chat_ui.errors import CsrfFailed, MalformedForm
from chat_ui.security import csrf_tokens_match
from chat_ui.sessions import expected_csrf_token


def _file_as_no_text(value: object) -> object:
    return "" if isinstance(value, UploadFile) else value


# One text field of a form; an absent field is "" by each route's default.
FormText = Annotated[str, Form(), BeforeValidator(_file_as_no_text)]


async def check_form(request: Request, csrf_token: str) -> None:
    """Raise MalformedForm for a part that is not text, CsrfFailed for another session's token.

    Every form route calls it before anything else, inside its usual error handling.
    """
    # FastAPI parsed the body already; this is the same, cached, form.
    form = await request.form()
    if any(not isinstance(value, str) for _name, value in form.multi_items()):
        raise MalformedForm()
    if not csrf_tokens_match(expected_csrf_token(request), csrf_token):
        raise CsrfFailed()
