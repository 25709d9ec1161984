"""The fields of the app's forms, and the check every submitted form passes first.

Every chat-ui router is a `FormRouter`: each of its routes that changes state (any
method but GET, HEAD and OPTIONS) depends on `verify_form`, so a new route cannot
forget the CSRF check. The check runs after the route's own `dependencies` (its
failure page, see views.failure_page) and before its parameters' (the user, db-api):
a failed check is raised like any other failure and shown on the route's failure
page, with what was typed.

Our forms hold text only, so a file part (where text belongs, or anywhere) means the
form is not ours. Failing it while FastAPI reads the fields would answer before the
route could show the form again; instead it reads as no text, and `verify_form`
refuses the whole form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute
from pydantic import BeforeValidator
from starlette.datastructures import UploadFile

from chat_ui.errors import CsrfFailed, MalformedForm
from chat_ui.security import csrf_tokens_match
from chat_ui.sessions import expected_csrf_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _file_as_no_text(value: object) -> object:
    return "" if isinstance(value, UploadFile) else value


# One text field of a form; an absent field is "" by each route's default.
FormText = Annotated[str, Form(), BeforeValidator(_file_as_no_text)]

# What a form held, field by field, as text (a file part is left out): for showing it again.
SubmittedForm = Mapping[str, str]


async def verify_form(request: Request, csrf_token: FormText = "") -> None:
    """Raise MalformedForm for a part that is not text, CsrfFailed for another session's token.

    Every state-changing route depends on it (`CsrfCheckedRoute`); routes never call it.
    """
    # FastAPI parsed the body already; this is the same, cached, form.
    form = await request.form()
    if any(not isinstance(value, str) for _name, value in form.multi_items()):
        raise MalformedForm()
    if not csrf_tokens_match(expected_csrf_token(request), csrf_token):
        raise CsrfFailed()


async def submitted_form(request: Request) -> SubmittedForm:
    """The text fields of the request's form (the last value of each, as FastAPI reads them).

    For a state-changing route, whose form FastAPI has parsed (`verify_form` reads one):
    this is the same, cached, form.
    """
    if request.method in SAFE_METHODS:
        return {}
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


class CsrfCheckedRoute(APIRoute):
    """A route that, for any method that changes state, depends on `verify_form`.

    After the route's own `dependencies` (its failure page, needed to show the check's
    failure; they only make it) and before the function's parameters' dependencies.
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: set[str] | list[str] | None = None,
        dependencies: Sequence[DependsParam] | None = None,
        **kwargs: Any,
    ) -> None:
        changes_state = bool({method.upper() for method in methods or ("GET",)} - SAFE_METHODS)
        checks = [Depends(verify_form)] if changes_state else []
        super().__init__(
            path,
            endpoint,
            methods=methods,
            dependencies=[*(dependencies or ()), *checks],
            **kwargs,
        )


class FormRouter(APIRouter):
    """chat-ui's router: every route on it that changes state checks its form."""

    def __init__(self, *, prefix: str = "", tags: list[str | Enum] | None = None) -> None:
        super().__init__(prefix=prefix, tags=tags, route_class=CsrfCheckedRoute)
