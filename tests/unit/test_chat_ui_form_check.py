"""CSRF by construction: a route on chat-ui's router checks its form without asking to.

A throwaway route, written with no CSRF code at all, is refused without this session's
token, and every state-changing route of the real app depends on the check.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.middleware.sessions import SessionMiddleware

from chat_ui.errors import ChatUiError, CsrfFailed, MalformedForm
from chat_ui.forms import SAFE_METHODS, FormRouter, FormText, verify_form
from chat_ui.main import app as chat_ui_app
from chat_ui.sessions import SESSION_COOKIE, csrf_token
from chat_ui.views import FailurePage, failure_page

STALE = CsrfFailed.message
CHANGING_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


@pytest.fixture
def throwaway() -> Iterator[tuple[TestClient, list[str]]]:
    """An app with chat-ui's exception handlers and throwaway routes on a FormRouter.

    The routes record what they were sent; none of them mentions a CSRF token.
    """
    done: list[str] = []
    router = FormRouter(tags=["throwaway"])

    @router.get("/token")
    async def token(request: Request) -> Response:
        return PlainTextResponse(csrf_token(request))

    @router.api_route("/change", methods=CHANGING_METHODS)
    async def change(request: Request, note: FormText = "") -> Response:
        done.append(f"{request.method} {note}")
        return PlainTextResponse("changed")

    async def note_again(request: Request, note: FormText = "") -> FailurePage:
        async def page(error: ChatUiError) -> Response:
            return PlainTextResponse(f"{error.message} | kept: {note}", error.status_code)

        return page

    @router.post("/change-with-page", dependencies=[failure_page(note_again)])
    async def change_with_page(note: FormText = "") -> Response:
        done.append(note)
        return PlainTextResponse("changed")

    app = FastAPI()
    for failure, handler in chat_ui_app.exception_handlers.items():
        app.add_exception_handler(failure, handler)
    app.add_middleware(SessionMiddleware, secret_key="x" * 32, session_cookie=SESSION_COOKIE)
    app.include_router(router)
    with TestClient(app) as client:
        yield client, done


@pytest.mark.parametrize("method", CHANGING_METHODS)
@pytest.mark.parametrize("token", ["missing", "wrong"])
def test_a_route_without_csrf_code_is_refused_without_the_token(
    throwaway: tuple[TestClient, list[str]], method: str, token: str
) -> None:
    client, done = throwaway
    client.get("/token")  # a session with a token, which the form does not carry
    form = {"note": "hi"} | ({"csrf_token": "x" * 43} if token == "wrong" else {})
    response = client.request(method, "/change", data=form)
    assert response.status_code == 403
    assert STALE in response.text  # the app's error page
    assert done == []


@pytest.mark.parametrize("method", CHANGING_METHODS)
def test_the_same_route_with_the_sessions_token_goes_through(
    throwaway: tuple[TestClient, list[str]], method: str
) -> None:
    client, done = throwaway
    token = client.get("/token").text
    response = client.request(method, "/change", data={"csrf_token": token, "note": "hi"})
    assert response.status_code == 200
    assert done == [f"{method} hi"]


def test_a_file_part_refuses_the_form(throwaway: tuple[TestClient, list[str]]) -> None:
    client, done = throwaway
    token = client.get("/token").text
    files = {"note": ("note.txt", b"a file", "text/plain")}
    response = client.post("/change", data={"csrf_token": token}, files=files)
    assert response.status_code == 400
    assert MalformedForm.message in response.text
    assert done == []


def test_a_refused_form_shows_on_the_routes_failure_page(
    throwaway: tuple[TestClient, list[str]],
) -> None:
    client, done = throwaway
    response = client.post("/change-with-page", data={"note": "typed"})
    assert response.status_code == 403
    assert response.text == f"{STALE} | kept: typed"
    json = client.post("/change-with-page", data={}, headers={"Accept": "application/json"})
    assert json.status_code == 403
    assert json.json() == {"error": STALE}
    assert done == []


def test_every_state_changing_route_of_the_app_checks_its_form() -> None:
    unchecked, checked = [], []
    for route in iter_route_contexts(chat_ui_app.routes):
        if route.path is None or route.methods is None:
            continue  # the static files' mount
        calls = [dependency.call for dependency in route.dependant.dependencies]
        if set(route.methods) <= SAFE_METHODS:
            assert verify_form not in calls, route.path  # a GET reads no form
        elif verify_form in calls:
            checked.append(route.path)
        else:
            unchecked.append(route.path)
    assert checked
    assert not unchecked, f"state-changing routes without the form check: {unchecked}"
