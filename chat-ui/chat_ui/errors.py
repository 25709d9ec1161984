"""Every failure a user can act on: one exception type each, with its status and human message.

Routes (and their form check) raise these; one exception handler shows each on the
page the route declared for its failures, the form again for instance, or else on the
friendly error page (views.show_route_failure, registered in `main`). The wording
lives here only, including what db-api's validation problems mean to a person
(`db_api_problem_message`).
"""

# ruff: noqa: N818
# The names say what happened to the user (DatabaseUnavailable, WrongCredentials), not
# that they are exceptions; the contract names MessageTooLongForContext the same way.

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any

SESSION_EXPIRED_MESSAGE = "Your session expired. Please sign in again."


class ChatUiError(Exception):
    """Base class: a failure with an HTTP status and a message meant for the user."""

    status_code = 500
    message = "Something went wrong on our side. Please try again."

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class SignInRequired(ChatUiError):
    """No signed-in user; the handler redirects to the sign-in page."""

    status_code = 401
    message = "Please sign in."

    def __init__(self, *, expired: bool = False, next_path: str | None = None) -> None:
        self.expired = expired
        self.next_path = next_path
        super().__init__(SESSION_EXPIRED_MESSAGE if expired else None)


class CsrfFailed(ChatUiError):
    status_code = 403
    message = "Your session expired or the form is stale. Reload and try again."


class PageNotFound(ChatUiError):
    status_code = 404
    message = "We could not find that page."


class ChatNotFound(PageNotFound):
    # Someone else's chat answers exactly like a missing one.
    message = "We could not find that chat. It may have been deleted."


class InvalidInput(ChatUiError):
    """A form value we (or db-api) reject; the message says what to change.

    `field` names the form field to fix, when it is one: the page ties the message to it.
    """

    status_code = 422
    message = "Please check what you entered."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class MalformedForm(ChatUiError):
    """A form body none of our pages sends: a file where text belongs, or unreadable."""

    status_code = 400
    message = "We could not read that form. Please fill it in and send it again."


class MessageTooLongForContext(InvalidInput):
    message = (
        "This message is too long for the model's context window. "
        "Shorten it or split it into parts and try again."
    )


class RequestTooLarge(ChatUiError):
    status_code = 413
    message = "That was too much text to send at once. Shorten it and try again."


class WrongCredentials(ChatUiError):
    status_code = 401
    message = "Wrong username or password."


class WrongPassword(ChatUiError):
    """The password asked again before changing or deleting the account did not match."""

    status_code = 403
    message = "That is not your current password."


class SignInNotFound(PageNotFound):
    # Someone else's sign-in answers exactly like one that has ended.
    message = "That sign-in has ended already."


class AccountPending(ChatUiError):
    """Signed up under the approval policy; chats wait for an admin's approval."""

    status_code = 403
    message = (
        "Your account is waiting for an administrator's approval. You can chat as soon as "
        "it is approved."
    )


class AccountDisabled(ChatUiError):
    status_code = 403
    message = "This account has been disabled. Ask the person who runs this server."


class SignUpClosed(ChatUiError):
    status_code = 403
    message = "Sign-up is closed on this server. Ask its administrator for an invite link."


class LinkInvalid(ChatUiError):
    """An invite or password-reset link that is unknown, used or expired."""

    status_code = 404
    message = "This link has expired or was already used. Ask the administrator for a new one."


class AdminChangeRefused(ChatUiError):
    """An admin action db-api refuses: on one's own account, or the last admin."""

    status_code = 409
    message = "Change your own account on the account page."


class LastAdmin(AdminChangeRefused):
    message = "This server needs at least one active admin: make someone else admin first."


class AccountNotActive(AdminChangeRefused):
    message = "Approve or enable the account before making it an admin."


class UsernameTaken(ChatUiError):
    status_code = 409
    message = "That username is taken. Please choose another one."


class TooManyAttempts(ChatUiError):
    """Refused for going too fast (sign-in attempts); the answer says when to try again."""

    status_code = 429
    too_fast = "Too many attempts."

    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(f"{self.too_fast} Try again in {wait_in_words(retry_after_seconds)}.")


class SendingTooFast(TooManyAttempts):
    """db-api's per-user limit on starting replies (send, retry, regenerate, edit)."""

    too_fast = "You're asking for replies faster than this server allows."


class StartingChatsTooFast(TooManyAttempts):
    """db-api's per-user limit on creating chats."""

    too_fast = "You've started a lot of chats in a short time."


class SigningUpTooFast(TooManyAttempts):
    """db-api's per-address limit on sign-ups."""

    too_fast = "Too many accounts were created from your address recently."


def wait_in_words(seconds: int) -> str:
    """ "1 second", "45 seconds"; from two minutes on, whole minutes (rounded up)."""
    if seconds < 120:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


class DatabaseUnavailable(ChatUiError):
    status_code = 503
    message = "The database is not reachable right now. Please try again in a moment."


class UpstreamMisbehaved(ChatUiError):
    """db-api answered something the contract does not allow (a bug or a misconfiguration)."""

    status_code = 502
    message = "Something went wrong on our side. Please try again."


class ModelError(ChatUiError):
    """Base class for failures of the language model server."""

    status_code = 503
    message = "The language model could not answer this time. Your message was saved; try again."


class ModelUnavailable(ModelError):
    message = (
        "The language model is not reachable right now. "
        "Your message was saved; try again in a moment."
    )


class ModelLoading(ModelError):
    message = "The model is starting, try again in a few seconds."


class GenerationInProgress(ChatUiError):
    """A reply is still being written in this chat; one at a time keeps the history linear."""

    status_code = 409
    message = "Wait for the current reply to finish or stop it first."


class ReplyInOtherChat(GenerationInProgress):
    """The user's reply in another chat is still being written: one at a time per user.

    Everyone on the install shares the model's few slots, so one user's replies take
    turns rather than taking every slot at once.
    """

    message = (
        "Your reply in another chat is still being written. Wait for it to finish, or stop "
        "it there, then send this again."
    )

    def __init__(self, busy_chat_id: uuid.UUID | None = None) -> None:
        self.busy_chat_id = busy_chat_id
        super().__init__()


class MessageStatusChanged(ChatUiError):
    """db-api refused a conditional update: the message left the status we expected.

    Generation uses it to notice that someone stopped the reply elsewhere.
    """

    status_code = 409
    message = "That reply has already finished or been stopped."

    def __init__(self, current_status: str | None = None) -> None:
        self.current_status = current_status
        super().__init__()


# db-api answers a value it refuses with FastAPI's 422 `detail` list: each problem names
# the field (last of `loc`) and the constraint (`type`); `{...}` is filled from its `ctx`.
# "nul_character" is ours: the value holds a NUL, which PostgreSQL cannot store (db-api
# refuses it as a `value_error`, or for usernames by their pattern).
DB_API_PROBLEMS: Mapping[tuple[str, str], str] = {
    ("username", "string_too_short"): "Usernames need at least {min_length} characters.",
    ("username", "string_too_long"): "Usernames can be at most {max_length} characters.",
    ("username", "string_pattern_mismatch"): (
        "Usernames can only contain letters, digits, dots, dashes and underscores."
    ),
    ("username", "nul_character"): "Usernames can't contain control characters.",
    ("password", "string_too_short"): "Passwords need at least {min_length} characters.",
    ("password", "string_too_long"): "Passwords can be at most {max_length} characters.",
    ("password", "nul_character"): "Passwords can't contain NUL characters.",
    ("new_password", "string_too_short"): "Passwords need at least {min_length} characters.",
    ("new_password", "string_too_long"): "Passwords can be at most {max_length} characters.",
    ("new_password", "nul_character"): "Passwords can't contain NUL characters.",
    ("title", "string_too_short"): "Give the chat a title.",
    ("title", "string_too_long"): "Chat titles can be at most {max_length} characters.",
    ("title", "nul_character"): "Chat titles can't contain NUL characters.",
    # The length is checked after the NUL check there, so pydantic's generic type.
    ("content", "too_short"): "Type a message before sending.",
    # db-api's only other content check: a finished message must have text.
    ("content", "value_error"): "Type a message before sending.",
    ("content", "string_too_long"): "Messages can be at most {max_length:,} characters.",
    ("content", "nul_character"): "Messages can't contain NUL characters.",
    ("q", "string_too_short"): "Type something to search for.",
    ("q", "string_too_long"): "Search for at most {max_length} characters.",
    ("q", "nul_character"): "Searches can't contain NUL characters.",
}
_NUL_REFUSED_AS = frozenset({"string_pattern_mismatch", "value_error"})


def db_api_problem_message(detail: object) -> str:
    """What db-api's 422 `detail` asks the person to change, in our words.

    The first problem we have words for; any other shape gets InvalidInput's general
    message. db-api's own `msg` is written for programmers and is never shown.
    """
    problems = detail if isinstance(detail, list) else []
    for problem in problems:
        if isinstance(problem, Mapping) and (message := _problem_message(problem)) is not None:
            return message
    return InvalidInput.message


def _problem_message(problem: Mapping[str, Any]) -> str | None:
    loc, kind, ctx, value = (problem.get(key) for key in ("loc", "type", "ctx", "input"))
    fields = [part for part in loc if isinstance(part, str)] if isinstance(loc, list) else []
    if not fields or not isinstance(kind, str):
        return None
    if kind in _NUL_REFUSED_AS and isinstance(value, str) and "\x00" in value:
        kind = "nul_character"
    template = DB_API_PROBLEMS.get((fields[-1], kind))
    if template is None:
        return None
    try:
        return template.format(**(ctx if isinstance(ctx, Mapping) else {}))
    except (KeyError, TypeError, ValueError):
        return None  # a limit missing or not a number: better the general message
