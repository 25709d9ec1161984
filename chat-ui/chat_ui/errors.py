"""Every failure a user can act on: one exception type each, with its status and human message.

Routes raise these; forms catch the ones they can show inline, and the exception
handlers in `main` render the rest as a friendly page. The wording lives here only.
"""

# ruff: noqa: N818
# The names say what happened to the user (DatabaseUnavailable, WrongCredentials), not
# that they are exceptions; the contract names MessageTooLongForContext the same way.

from __future__ import annotations

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
    """A form value we (or db-api) reject; the message says what to change."""

    status_code = 422
    message = "Please check what you entered."


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


class UsernameTaken(ChatUiError):
    status_code = 409
    message = "That username is taken. Please choose another one."


class TooManyAttempts(ChatUiError):
    status_code = 429

    def __init__(self, retry_after_seconds: int) -> None:
        self.retry_after_seconds = retry_after_seconds
        super().__init__(f"Too many attempts. Try again in {retry_after_seconds} seconds.")


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


class MessageStatusChanged(ChatUiError):
    """db-api refused a conditional update: the message left the status we expected.

    Generation uses it to notice that someone stopped the reply elsewhere.
    """

    status_code = 409
    message = "That reply has already finished or been stopped."

    def __init__(self, current_status: str | None = None) -> None:
        self.current_status = current_status
        super().__init__()
