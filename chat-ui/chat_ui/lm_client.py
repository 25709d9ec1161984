"""Async client for the llama.cpp server: chat completions, exact token counts, context size.

Failures become `errors.ModelUnavailable` (connection refused, timeout) or
`errors.ModelLoading` (the server is up but still loading the model).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import httpx

from chat_ui.context import ChatMessage
from chat_ui.errors import ModelError, ModelLoading, ModelUnavailable

logger = logging.getLogger(__name__)

ModelHealth = Literal["ok", "loading", "unreachable"]

# Counting tokens and reading props are cheap; only generation may take long.
QUICK_TIMEOUT = httpx.Timeout(15.0, connect=3.0)


class LmClient:
    """The llama.cpp server, as seen by chat-ui."""

    def __init__(self, base_url: str, *, timeout_seconds: float) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_seconds, connect=3.0),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )
        self._context_tokens: int | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def context_tokens(self) -> int:
        """Context size of one slot (what one request may use), read once from /props."""
        if self._context_tokens is None:
            props = await self._call("GET", "/props", time_limit=QUICK_TIMEOUT)
            try:
                self._context_tokens = int(props["default_generation_settings"]["n_ctx"])
            except (KeyError, TypeError, ValueError) as error:
                logger.error("llama.cpp /props has no n_ctx: %r", props)
                raise ModelError() from error
        return self._context_tokens

    async def count_tokens(self, messages: list[ChatMessage]) -> int:
        """Exact prompt length: the server's chat template, then its tokenizer."""
        templated = await self._call(
            "POST", "/apply-template", json={"messages": messages}, time_limit=QUICK_TIMEOUT
        )
        # add_special matches how the server tokenizes a completion prompt (BOS if any).
        tokenized = await self._call(
            "POST",
            "/tokenize",
            json={"content": _prompt_of(templated), "add_special": True},
            time_limit=QUICK_TIMEOUT,
        )
        try:
            return len(tokenized["tokens"])
        except (KeyError, TypeError) as error:
            logger.error("llama.cpp /tokenize answered an unexpected shape: %r", tokenized)
            raise ModelError() from error

    async def complete_chat(self, messages: list[ChatMessage], *, max_tokens: int) -> str:
        """One whole reply (non-streaming)."""
        answer = await self._call(
            "POST",
            "/v1/chat/completions",
            json={"messages": messages, "max_tokens": max_tokens, "stream": False},
        )
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as error:
            logger.error("llama.cpp answered an unexpected completion: %r", answer)
            raise ModelError() from error
        return str(content or "").strip()

    async def health(self) -> ModelHealth:
        try:
            response = await self._http.get("/health", timeout=QUICK_TIMEOUT)
        except httpx.HTTPError:
            return "unreachable"
        if response.status_code == httpx.codes.OK:
            return "ok"
        if response.status_code == httpx.codes.SERVICE_UNAVAILABLE:
            return "loading"
        return "unreachable"

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        time_limit: httpx.Timeout | None = None,
    ) -> Any:
        try:
            if time_limit is None:
                response = await self._http.request(method, path, json=json)
            else:
                response = await self._http.request(method, path, json=json, timeout=time_limit)
        except httpx.TransportError as error:
            logger.warning("llama.cpp unreachable: %s %s: %r", method, path, error)
            raise ModelUnavailable() from error
        if response.status_code == httpx.codes.SERVICE_UNAVAILABLE:
            raise ModelLoading()
        if not response.is_success:
            logger.error(
                "llama.cpp answered %s to %s %s: %s",
                response.status_code,
                method,
                path,
                response.text[:500],
            )
            raise ModelError()
        try:
            return response.json()
        except ValueError as error:
            raise ModelError() from error


def _prompt_of(templated: Any) -> str:
    try:
        return str(templated["prompt"])
    except (KeyError, TypeError) as error:
        logger.error("llama.cpp /apply-template answered an unexpected shape: %r", templated)
        raise ModelError() from error
