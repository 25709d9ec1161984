"""Async client for the llama.cpp server: streamed chat completions, token counts, context size.

Failures become `errors.ModelUnavailable` (connection refused, timeout),
`errors.ModelLoading` (the server is up but still loading the model) or
`errors.ModelError` (anything else, including a stream that breaks off mid-reply).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any, Literal

import httpx

from chat_ui.context import ChatMessage, PromptSizeBound
from chat_ui.errors import ModelError, ModelLoading, ModelUnavailable

logger = logging.getLogger(__name__)

ModelHealth = Literal["ok", "loading", "unreachable"]

# llama.cpp's server closes the connection after a streamed reply without saying so;
# a request sent on it right away fails (9 times in 40 with a synchronous client,
# measured). So a streamed reply gets a connection of its own.
CLOSE_AFTER_STREAM = {"Connection": "close"}

# Counting tokens and reading props are cheap; only generation may take long.
QUICK_TIMEOUT = httpx.Timeout(15.0, connect=3.0)
# Replies being written at once, per chat-ui process; more wait for a connection.
MAX_STREAMS = 200

MODEL_BROKE_OFF = (
    "The model stopped answering before the reply was finished. The text so far is kept; try again."
)

# Contents used to measure what the chat template adds around messages: plain ASCII,
# one byte per character, so bytes added by the template are easy to tell apart.
_PROBE_CONTENT = "x"


class LmClient:
    """The llama.cpp server, as seen by chat-ui."""

    def __init__(self, base_url: str, *, timeout_seconds: float) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_seconds, connect=3.0),
            # llama.cpp's HTTP server drops idle keep-alive connections after 5 s; reusing
            # one at that moment fails the request, so let idle ones go sooner.
            limits=httpx.Limits(
                max_connections=20, max_keepalive_connections=10, keepalive_expiry=2.0
            ),
        )
        # Streamed replies get a client of their own: many users at once queue them in
        # llama.cpp (which says so), and they must never starve the quick token counts
        # every send needs of connections. Each stream's connection is closed after it.
        self._streams = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_seconds, connect=3.0),
            limits=httpx.Limits(max_connections=MAX_STREAMS, max_keepalive_connections=0),
        )
        self._context_tokens: int | None = None
        self._total_slots: int | None = None
        self._prompt_size_bound: PromptSizeBound | None = None

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._streams.aclose()

    async def context_tokens(self) -> int:
        """Context size of one slot (what one request may use), read once from /props."""
        if self._context_tokens is None:
            await self._read_props()
        assert self._context_tokens is not None
        return self._context_tokens

    async def total_slots(self) -> int:
        """How many replies the server writes at once (its slots), read once from /props."""
        if self._total_slots is None:
            await self._read_props()
        assert self._total_slots is not None
        return self._total_slots

    async def _read_props(self) -> None:
        props = await self._call("GET", "/props", time_limit=QUICK_TIMEOUT)
        try:
            self._context_tokens = int(props["default_generation_settings"]["n_ctx"])
            self._total_slots = max(1, int(props.get("total_slots", 1)))
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            logger.error("llama.cpp /props has no n_ctx or total_slots: %r", props)
            raise ModelError() from error

    async def count_tokens(self, messages: list[ChatMessage]) -> int:
        """Exact prompt length: the server's chat template, then its tokenizer."""
        templated = await self._template(messages)
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

    async def prompt_size_bound(self) -> PromptSizeBound:
        """A cheap safe upper bound of prompt token counts, measured once from /apply-template.

        Measures the templated length of growing probe conversations: the growth per
        message, minus its content, is what the template adds per message.
        """
        if self._prompt_size_bound is None:
            probes: list[ChatMessage] = [
                {"role": "system", "content": _PROBE_CONTENT},
                {"role": "user", "content": _PROBE_CONTENT},
                {"role": "assistant", "content": _PROBE_CONTENT},
                {"role": "user", "content": _PROBE_CONTENT},
            ]
            lengths = [
                len(_prompt_of(await self._template(probes[: count + 1])).encode("utf-8"))
                for count in range(len(probes))
            ]
            self._prompt_size_bound = PromptSizeBound.from_probe_lengths(
                lengths, probe_bytes=len(_PROBE_CONTENT)
            )
        return self._prompt_size_bound

    async def warm_up(self) -> None:
        """Read the context size and the prompt bound now, so the first message need not."""
        try:
            await self.context_tokens()
            await self.prompt_size_bound()
        except ModelError as error:
            # The first message measures them itself; this was only a head start.
            logger.info("Model server not ready for warm-up: %s", error.message)

    async def stream_chat(
        self, messages: list[ChatMessage], *, max_tokens: int, slot: int | None = None
    ) -> AsyncGenerator[str, None]:
        """The reply's text deltas as llama.cpp produces them (one per token, in practice).

        `slot` is the llama.cpp slot to write it on (db-api's queue grants it; the slot
        still holds the chat's last prompt when it can). Closing the iterator early
        (stop, cancellation) closes the HTTP connection, which is what tells llama.cpp
        to stop generating and free the slot.
        """
        body: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "stream": True}
        if slot is not None:
            body["id_slot"] = slot
        # Closed explicitly: a stop must close the HTTP stream now, not at collection.
        async with contextlib.aclosing(self._stream(body)) as deltas:
            async for delta in deltas:
                yield delta

    async def _stream(self, body: dict[str, Any]) -> AsyncGenerator[str, None]:
        received_any = False
        try:
            async with self._streams.stream(
                "POST", "/v1/chat/completions", json=body, headers=CLOSE_AFTER_STREAM
            ) as response:
                if response.status_code == httpx.codes.SERVICE_UNAVAILABLE:
                    raise ModelLoading()
                if not response.is_success:
                    await response.aread()
                    logger.error(
                        "llama.cpp answered %s to a streamed completion: %s",
                        response.status_code,
                        response.text[:500],
                    )
                    raise ModelError()
                async for line in response.aiter_lines():
                    # Blank lines end events; ":" lines are llama.cpp's keep-alive pings.
                    if not line or line.startswith(":"):
                        continue
                    if not line.startswith("data:"):
                        logger.error("llama.cpp sent an unexpected stream line: %r", line[:500])
                        raise ModelError(MODEL_BROKE_OFF if received_any else None)
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    delta = _delta_of(data)
                    if delta:
                        received_any = True
                        yield delta
        except httpx.ConnectError as error:
            logger.warning("llama.cpp unreachable for a streamed completion: %r", error)
            raise ModelUnavailable() from error
        except httpx.TransportError as error:
            logger.warning("llama.cpp stream broke off: %r", error)
            raise ModelError(MODEL_BROKE_OFF if received_any else None) from error
        # The body ended cleanly but without the [DONE] marker: the reply is cut short.
        logger.warning("llama.cpp stream ended without [DONE]")
        raise ModelError(MODEL_BROKE_OFF)

    async def _template(self, messages: list[ChatMessage]) -> Any:
        return await self._call(
            "POST", "/apply-template", json={"messages": messages}, time_limit=QUICK_TIMEOUT
        )

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


def _delta_of(data: str) -> str:
    """The text in one streamed chunk ("" for role-only and final chunks)."""
    try:
        chunk = json.loads(data)
    except ValueError as error:
        logger.error("llama.cpp sent a chunk that is not JSON: %r", data[:500])
        raise ModelError(MODEL_BROKE_OFF) from error
    if not isinstance(chunk, dict):
        raise ModelError(MODEL_BROKE_OFF)
    if "error" in chunk:
        logger.error("llama.cpp reported an error mid-stream: %r", chunk["error"])
        raise ModelError(MODEL_BROKE_OFF)
    try:
        content = chunk["choices"][0].get("delta", {}).get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        # Chunks without choices (usage, timings) carry no text.
        return ""
    return content if isinstance(content, str) else ""
