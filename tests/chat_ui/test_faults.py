"""Faults the real services can have: the model server killed mid-reply, PostgreSQL
restarted under load.

Each test starts the parts it breaks (a llama.cpp server, or a PostgreSQL cluster with
its own db-api), so the shared session services are never disturbed. db-api down
(tests/inprocess/test_chats.py) and chat-ui down behind nginx (tests/e2e/test_nginx.py)
are covered where those services are tested. Figures go to test-artifacts/reliability/.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.chat_ui import ChatUiServer, running_chat_ui
from harness.db_api import DbApiServer, running_db_api
from harness.forms import Browser, stored_chat, user_id_of
from harness.llama import LlamaServer, start_llama_server
from harness.postgres import PostgresCluster, make_cluster_dir
from harness.processes import REPO_ROOT, ServiceProcess, free_port
from tests.support.sse import JSON, post_json, send_json, sse_events

ARTIFACTS = REPO_ROOT / "test-artifacts" / "reliability"
DATABASE_DOWN = "The database is not reachable right now"
REPLY_ELSEWHERE = "Your reply in another chat is still being written"
# The bound for recovering after PostgreSQL is back.
RECOVERY_BOUND_SECONDS = 10.0
# Polling gives up far later, so a slow machine reports a number instead of hanging.
RECOVERY_POLL_DEADLINE = 60.0
# Replies acknowledged just before the load stopped are still being written; a short
# reply ends in seconds, so a reply still "generating" after this was lost.
SETTLE_DEADLINE = 60.0
# Each user sends at this pace and reads pages in between. Every send queues a reply on
# the model that the test waits for, so a faster pace only makes a longer queue.
SEND_INTERVAL_SECONDS = 2.0


def write_figures(name: str, figures: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(figures)}")


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


# --- the model server killed (SIGKILL) mid-reply -------------------------------------------


def test_model_server_killed_mid_reply_keeps_the_text_and_retry_works(
    db_api: DbApiServer, model_path: Path
) -> None:
    port = free_port()
    llama = start_llama_server(model_path=model_path, port=port, parallel=1)
    try:
        # Room for a few dozen tokens: enough to kill mid-way, short for the retry.
        env = {"MAX_REPLY_TOKENS": "64"}
        with running_chat_ui(db_api, f"http://127.0.0.1:{port}", extra_env=env) as chat_ui:
            browser = Browser(chat_ui.url)
            try:
                browser.sign_up()
                figures = _kill_mid_reply_then_retry(browser, db_api, llama, model_path, port)
            finally:
                browser.close()
    finally:
        llama.kill()
    write_figures("model_killed", figures)


def _kill_mid_reply_then_retry(
    browser: Browser, db_api: DbApiServer, llama: ServiceProcess, model_path: Path, port: int
) -> dict[str, Any]:
    chat_id = browser.new_chat()
    sent = send_json(browser, chat_id, "Count from 1 to 300, one number per line.")
    assert sent.status_code == 202, sent.text
    seen = ""
    done: dict[str, Any] | None = None
    killed_at = 0.0
    with browser.http.stream("GET", sent.json()["stream_url"]) as stream:
        for event, data in sse_events(stream):
            if event == "update" and data["tokens"] >= 5 and not killed_at:
                seen = text_of(data["html"])
                llama.kill()  # SIGKILL: no goodbye on the open stream
                killed_at = time.monotonic()
            if event == "done":
                done = data
                break
    assert killed_at, "the reply finished before it could be interrupted"
    assert done is not None and done["status"] == "error", done
    assert done["error"], done
    error_seen_after = time.monotonic() - killed_at

    messages = stored_chat(db_api, browser, chat_id)["messages"]
    question, reply = messages[-2], messages[-1]
    assert (question["role"], question["status"]) == ("user", "complete")
    assert question["content"] == "Count from 1 to 300, one number per line."
    assert reply["status"] == "error"
    # The text up to the kill is kept (and nothing is invented after it).
    assert seen.strip() and reply["content"].startswith(seen.rstrip()[:20])
    page = browser.get(f"/chats/{chat_id}").text
    assert f'action="/chats/{chat_id}/retry"' in page
    assert "Traceback" not in page

    # While the model is down, a retry fails cleanly and keeps everything.
    while_down = post_json(browser, f"/chats/{chat_id}/retry")
    assert while_down.status_code in (202, 503), while_down.text

    restarted = start_llama_server(model_path=model_path, port=port, parallel=1)
    try:
        if while_down.status_code == 202:
            _read_done(browser, while_down.json()["stream_url"])
        retried = post_json(browser, f"/chats/{chat_id}/retry")
        assert retried.status_code == 202, retried.text
        final = _read_done(browser, retried.json()["stream_url"])
        assert final["status"] == "complete", final
    finally:
        restarted.stop()
    messages = stored_chat(db_api, browser, chat_id)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[-1]["status"] == "complete" and messages[-1]["content"].strip()
    return {
        "tokens_before_kill": 5,
        "partial_reply_chars_kept": len(reply["content"]),
        "error_shown_after_kill_seconds": round(error_seen_after, 3),
        "retry_after_restart": "complete",
    }


def _read_done(browser: Browser, stream_url: str) -> dict[str, Any]:
    with browser.http.stream("GET", stream_url) as stream:
        for event, data in sse_events(stream):
            if event == "done":
                return data
    pytest.fail("the stream ended without a done event")


# --- PostgreSQL restarted while users send messages -----------------------------------------


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    status: int
    kind: str  # "send", "page", or "busy" (a send refused: the previous reply still runs)
    content: str = ""
    chat_path: str = ""
    clear: bool = True


@dataclass
class Load:
    """Users sending new chats and reading the list until told to stop."""

    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, browser: Browser) -> None:
        # The form's token stays valid for the whole sign-in.
        csrf = browser.csrf_token("/chats")
        while not self.stop.is_set():
            next_send = time.monotonic() + SEND_INTERVAL_SECONDS
            self._send(browser, csrf)
            while time.monotonic() < next_send and not self.stop.is_set():
                self._page(browser)

    def _send(self, browser: Browser, csrf: str) -> None:
        content = f"Reply with one word. Probe {uuid.uuid4().hex[:10]}"
        started = time.monotonic()
        try:
            # As the page's script sends it: acknowledged (202) once stored and started.
            response = browser.http.post(
                "/chats",
                data={"csrf_token": csrf, "content": content, "request_id": str(uuid.uuid4())},
                headers=JSON,
            )
        except httpx.HTTPError:
            self._record(Outcome(started, time.monotonic(), 0, "send", content, clear=False))
            return
        ended = time.monotonic()
        if response.status_code == 202:
            chat_path = response.json()["chat_url"]
            self._record(Outcome(started, ended, 202, "send", content, chat_path))
            return
        if response.status_code == 409 and REPLY_ELSEWHERE in response.text:
            # The user's previous reply is still being written (one at a time per user):
            # a clear refusal at any time, not a failure of the outage.
            self._record(Outcome(started, ended, 409, "busy", content, clear=True))
            return
        clear = DATABASE_DOWN in response.text
        self._record(Outcome(started, ended, response.status_code, "send", content, clear=clear))

    def _page(self, browser: Browser) -> None:
        started = time.monotonic()
        try:
            response = browser.http.get("/chats")
        except httpx.HTTPError:
            self._record(Outcome(started, time.monotonic(), 0, "page", clear=False))
            return
        clear = response.status_code == 200 or DATABASE_DOWN in response.text
        self._record(Outcome(started, time.monotonic(), response.status_code, "page", clear=clear))

    def _record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


@pytest.fixture
def restartable_stack(
    llama_server: LlamaServer,
) -> Iterator[tuple[PostgresCluster, DbApiServer, ChatUiServer]]:
    """PostgreSQL, db-api and chat-ui of their own (short replies), on the shared model."""
    base_dir = make_cluster_dir("pg-restart-")
    cluster = PostgresCluster(base_dir).start()
    try:
        env = {"MAX_REPLY_TOKENS": "8"}
        with (
            running_db_api(cluster, database="db_api_restart") as db_api,
            running_chat_ui(db_api, llama_server.url, extra_env=env) as chat_ui,
        ):
            yield cluster, db_api, chat_ui
    finally:
        cluster.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


def _first_success_after(url: str, browser: Browser, since: float) -> float:
    """Seconds from `since` until a page that needs the database loads again."""
    deadline = since + RECOVERY_POLL_DEADLINE
    with httpx.Client(base_url=url, cookies=browser.http.cookies, timeout=10.0) as probe:
        while time.monotonic() < deadline:
            try:
                if probe.get("/chats").status_code == 200:
                    return time.monotonic() - since
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    pytest.fail(f"not recovered {RECOVERY_POLL_DEADLINE} s after PostgreSQL came back")


def test_postgres_restart_under_load_fails_cleanly_and_recovers(
    restartable_stack: tuple[PostgresCluster, DbApiServer, ChatUiServer],
) -> None:
    cluster, db_api, chat_ui = restartable_stack
    users = 4
    browsers = [Browser(chat_ui.url) for _ in range(users)]
    for browser in browsers:
        browser.sign_up()
    load = Load()
    workers = [threading.Thread(target=load.run, args=(browser,)) for browser in browsers]
    try:
        for worker in workers:
            worker.start()
        time.sleep(3)
        down_at = time.monotonic()
        cluster.stop()
        time.sleep(3)
        cluster.start()  # returns once PostgreSQL accepts connections
        up_at = time.monotonic()
        recovery = _first_success_after(chat_ui.url, browsers[0], up_at)
        recovered_at = up_at + recovery
        time.sleep(3)
    finally:
        load.stop.set()
        for worker in workers:
            worker.join(timeout=120)
    try:
        figures = _check_restart(load, db_api, browsers, down_at, up_at, recovered_at)
    finally:
        for browser in browsers:
            browser.close()
    figures["recovery_seconds"] = round(recovery, 3)
    write_figures("postgres_restart", figures)
    assert recovery <= RECOVERY_BOUND_SECONDS, figures


def _check_restart(
    load: Load,
    db_api: DbApiServer,
    browsers: list[Browser],
    down_at: float,
    up_at: float,
    recovered_at: float,
) -> dict[str, Any]:
    outcomes = load.outcomes
    failures = [o for o in outcomes if o.status not in (200, 202) and o.kind != "busy"]
    # Every failure is a clear "database unavailable" answer, and only during the outage.
    assert all(o.status == 503 and o.clear for o in failures), failures
    assert all(o.ended >= down_at and o.started <= recovered_at for o in failures), failures
    acknowledged = [o for o in outcomes if o.kind == "send" and o.status == 202]
    assert acknowledged, "no message got through"
    # Every acknowledged message is stored, with a reply that is not left "generating".
    by_user: dict[str, Browser] = {}
    for browser in browsers:
        for chat in _all_chats(db_api, browser):
            by_user[chat] = browser
    for outcome in acknowledged:
        chat_id = outcome.chat_path.rsplit("/", 1)[1]
        messages = _settled_messages(db_api, by_user[chat_id], chat_id)
        questions = [m for m in messages if m["role"] == "user"]
        assert [m["content"] for m in questions] == [outcome.content], messages
        assert messages[-1]["role"] == "assistant"
        assert messages[-1]["status"] != "generating", messages[-1]
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1
    return {
        "users": len(browsers),
        "requests": len(outcomes),
        "statuses": statuses,
        "acknowledged_messages": len(acknowledged),
        "lost_messages": 0,
        "postgres_down_seconds": round(up_at - down_at, 3),
    }


def _settled_messages(db_api: DbApiServer, browser: Browser, chat_id: str) -> list[Any]:
    """The chat's messages once its reply is no longer being written (bounded wait)."""
    deadline = time.monotonic() + SETTLE_DEADLINE
    while True:
        messages: list[Any] = stored_chat(db_api, browser, chat_id)["messages"]
        if messages[-1]["status"] != "generating" or time.monotonic() > deadline:
            return messages
        time.sleep(0.2)


def _all_chats(db_api: DbApiServer, browser: Browser) -> list[str]:
    headers = {
        "Authorization": f"Bearer {db_api.service_token}",
        "X-User-Id": user_id_of(db_api, browser),
    }
    listing = httpx.get(f"{db_api.url}/chats", params={"limit": 100}, headers=headers).json()
    return [chat["id"] for chat in listing["items"]]
