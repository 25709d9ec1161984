"""Scale-out: `docker compose up --scale chat-ui=3 --scale db-api=2` behind nginx.

Requests spread over every replica, all requests about one chat reach one chat-ui
replica (so a reply streams from the memory of the replica writing it), nginx
follows replicas as they come and go, a streamed reply resumes in a second tab and
stops there, whichever replica each request lands on, and a replica killed mid-reply
leaves the reply interrupted (text kept) and its chat free for the next message.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import expect

from harness.factories import unique_username
from harness.forms import Browser
from tests.compose.conftest import ComposeStack
from tests.compose.test_compose_stack import inspect
from tests.e2e.test_streaming_browser import LONG_QUESTION, wait_for_text
from tests.support.browser import OpenTab, save_screenshot
from tests.support.pages import chat_url, latest_reply, new_chat, send, sign_in, sign_up
from tests.support.questions import LONG_REPLY_QUESTION
from tests.support.sse import read_until_done, send_json, sse_events

CHAT_UI_REPLICAS = 3
DB_API_REPLICAS = 2
# Hashing on the chat id: the chance that one of 3 replicas gets none of 30 chats
# is 3 x (2/3)^30, about 1 in 60,000.
CHATS = 30
# Each within the per-user limit on new chats (CHAT_BURST, 20 by default).
USERS = 3
# uvicorn's access log: `... - "GET /chats/<id> HTTP/1.1" 200 OK`
ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/\S*) HTTP/[0-9.]+" (?P<status>\d{3})')
CHAT_PAGE = re.compile(r"^/chats/(?P<chat_id>[0-9a-f-]{36})$")
FOLLOW_DEADLINE = 60.0


def scale(stack: ComposeStack, chat_ui: int, db_api: int) -> None:
    stack.compose(
        "up", "--detach", "--wait", "--scale", f"chat-ui={chat_ui}", "--scale", f"db-api={db_api}",
        timeout=600,
    )  # fmt: skip


def replicas(stack: ComposeStack, service: str) -> list[str]:
    return stack.compose("ps", "--quiet", service).stdout.split()


def access_log(container: str, since: float) -> list[re.Match[str]]:
    """The requests a replica served since the given Unix time."""
    logs = subprocess.run(
        ["docker", "logs", "--since", f"{since:.3f}", container],
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        m for line in (logs.stdout + logs.stderr).splitlines() if (m := ACCESS_LINE.search(line))
    ]


@pytest.fixture(scope="module")
def scaled_stack(compose_stack: ComposeStack) -> Iterator[ComposeStack]:
    start = time.monotonic()
    scale(compose_stack, CHAT_UI_REPLICAS, DB_API_REPLICAS)
    compose_stack.timings["scale out to chat-ui=3, db-api=2"] = round(time.monotonic() - start, 1)
    assert len(replicas(compose_stack, "chat-ui")) == CHAT_UI_REPLICAS
    assert len(replicas(compose_stack, "db-api")) == DB_API_REPLICAS
    yield compose_stack
    scale(compose_stack, 1, 1)


def wait_until_every_replica_serves(stack: ComposeStack) -> None:
    """nginx picks the new replicas up by itself (its watcher reloads it): wait for that."""
    containers = replicas(stack, "chat-ui")
    since = time.time()
    deadline = time.monotonic() + FOLLOW_DEADLINE
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        while time.monotonic() < deadline:
            for _ in range(10):
                assert client.get("/login").status_code == 200
            if all(access_log(container, since) for container in containers):
                return
            time.sleep(0.5)
    pytest.fail(f"nginx did not send requests to all {len(containers)} chat-ui replicas")


def test_requests_spread_over_replicas_and_each_chat_sticks_to_one(
    scaled_stack: ComposeStack,
) -> None:
    wait_until_every_replica_serves(scaled_stack)
    since = time.time()
    browsers = [Browser(scaled_stack.url) for _ in range(USERS)]
    try:
        for browser in browsers:
            browser.sign_up(unique_username("scale"))
        owned = [(browsers[n % USERS], browsers[n % USERS].new_chat()) for n in range(CHATS)]
        chat_ids = [chat_id for _browser, chat_id in owned]
        visits = owned * 3
        # Concurrent, like many users: chat-ui opens several connections to db-api,
        # each to whichever replica the name resolves to first.
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(
                pool.map(lambda visit: visit[0].get(f"/chats/{visit[1]}").status_code, visits)
            )
    finally:
        for browser in browsers:
            browser.close()
    assert Counter(statuses) == {200: len(visits)}

    served_by: dict[str, set[str]] = defaultdict(set)
    per_replica: Counter[str] = Counter()
    for container in replicas(scaled_stack, "chat-ui"):
        for request in access_log(container, since):
            per_replica[container] += 1
            if request["method"] == "GET" and (page := CHAT_PAGE.match(request["path"])):
                served_by[page["chat_id"]].add(container)
    print(f"chat-ui requests per replica: {sorted(per_replica.values())}")
    assert len(per_replica) == CHAT_UI_REPLICAS, per_replica
    assert set(served_by) == set(chat_ids)
    # Hashing on the chat id: every request about a chat, one replica.
    assert all(len(containers) == 1 for containers in served_by.values()), served_by

    db_api_requests = Counter(
        {c: len(access_log(c, since)) for c in replicas(scaled_stack, "db-api")}
    )
    print(f"db-api requests per replica: {sorted(db_api_requests.values())}")
    assert all(count > 0 for count in db_api_requests.values()), db_api_requests


def test_a_reply_streams_resumes_and_stops_at_scale(
    scaled_stack: ComposeStack, open_tab: OpenTab
) -> None:
    base_url = scaled_stack.url
    username = unique_username("scale")
    tab = open_tab()
    page = tab.page
    sign_up(page, base_url, username)
    new_chat(page, base_url)
    before = wait_for_text(page, send(page, LONG_QUESTION), at_least=5)
    address = chat_url(page)

    # A second tab, with its own session, follows the same reply as it grows.
    second = open_tab()
    sign_in(second.page, base_url, username)
    second.page.goto(address)
    other_view = wait_for_text(second.page, latest_reply(second.page), at_least=len(before) + 1)
    assert other_view.startswith(before[:5])

    second.page.get_by_role("button", name="Stop").click()
    expect(latest_reply(second.page)).to_have_attribute("data-status", "stopped")
    expect(latest_reply(page)).to_have_attribute("data-status", "stopped")
    stopped_text = latest_reply(page).locator(".message__content").inner_text()
    assert stopped_text.startswith(before[:5])
    # Whichever replica each tab follows it from, both end on the same, whole text.
    expect(latest_reply(second.page).locator(".message__content")).to_have_text(stopped_text)
    save_screenshot(page, "compose-scaled-stopped")

    # The model's slot is free again: the stop reached the llama.cpp request.
    deadline = time.monotonic() + FOLLOW_DEADLINE
    while not lm_api_slots_idle(scaled_stack) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert lm_api_slots_idle(scaled_stack)

    page.reload()
    expect(latest_reply(page)).to_have_attribute("data-status", "stopped")
    # Stopped from another replica, the writer saves what it wrote until the stop reached
    # it (its next save or lease renewal); the tabs waited for that save.
    assert latest_reply(page).locator(".message__content").inner_text() == stopped_text
    assert tab.script_errors == [] and second.script_errors == []


def lm_api_slots_idle(stack: ComposeStack) -> bool:
    slots = stack.compose("exec", "-T", "lm-api", "curl", "-fsS", "http://localhost:8080/slots")
    return '"is_processing":true' not in slots.stdout.replace(" ", "")


def follow_until_done(browser: Browser, stream_url: str) -> dict[str, object]:
    """The reply's final event, reconnecting as a page's EventSource does.

    Right after a replica dies, a request may meet it before nginx has moved on (502).
    """
    deadline = time.monotonic() + FOLLOW_DEADLINE
    while True:
        try:
            return read_until_done(browser, stream_url)[-1][1]
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def still_writing_after_a_save(browser: Browser, stream_url: str) -> bool:
    """Follow the reply 2.5 s past its first token; False if it ended before that."""
    first_token_at = 0.0
    with browser.http.stream("GET", stream_url) as stream:
        for kind, data in sse_events(stream):
            if kind == "done":
                return False
            if data["tokens"] and not first_token_at:
                first_token_at = time.monotonic()
            if first_token_at and time.monotonic() - first_token_at > 2.5:
                return True
    return False


def test_a_replica_killed_mid_reply_leaves_the_chat_usable(scaled_stack: ComposeStack) -> None:
    """SIGKILL of the chat-ui replica writing a reply (a crash, the OOM killer)."""
    wait_until_every_replica_serves(scaled_stack)
    browser = Browser(scaled_stack.url)
    try:
        browser.sign_up(unique_username("crash"))
        # A sampled model is sometimes brief: ask again until a reply is still being
        # written once a progress save (every 2 s) has stored some of it.
        for _attempt in range(3):
            chat_id = browser.new_chat()
            since = time.time()
            answer = send_json(browser, chat_id, LONG_REPLY_QUESTION)
            assert answer.status_code == 202, answer.text
            stream_url = answer.json()["stream_url"]
            if still_writing_after_a_save(browser, stream_url):
                break
        else:
            pytest.fail("the model never wrote a reply long enough to be cut off")
        (writer,) = [
            container
            for container in replicas(scaled_stack, "chat-ui")
            if any(
                request["method"] == "POST" and request["path"] == f"/chats/{chat_id}/messages"
                for request in access_log(container, since)
            )
        ]
        os.kill(int(inspect(writer, "{{.State.Pid}}")), signal.SIGKILL)
        killed_at = time.monotonic()

        done = follow_until_done(browser, stream_url)
        shown_after = time.monotonic() - killed_at
        assert done["status"] == "error", done
        assert "interrupted" in str(done["error"])
        assert str(done["html"]).strip()  # the text saved before the kill
        # A new message in that chat starts a reply: nobody had to press Stop.
        again = send_json(browser, chat_id, "Reply with just one word: hello.")
        assert again.status_code == 202, again.text
        assert follow_until_done(browser, again.json()["stream_url"])["status"] == "complete"
    finally:
        browser.close()
    scaled_stack.timings["interrupted reply shown after a replica's kill"] = round(shown_after, 1)
    print(f"replica killed mid-reply: shown interrupted {shown_after:.1f} s after the kill")


def test_nginx_follows_replicas_going_away(scaled_stack: ComposeStack) -> None:
    nginx = replicas(scaled_stack, "nginx")[0]
    scaled_at = time.time()
    scale(scaled_stack, CHAT_UI_REPLICAS - 1, DB_API_REPLICAS)
    remaining = replicas(scaled_stack, "chat-ui")
    assert len(remaining) == CHAT_UI_REPLICAS - 1
    # The watcher sees the name's addresses change and reloads nginx...
    deadline = time.monotonic() + FOLLOW_DEADLINE
    while "nginx reloaded" not in container_log(nginx, scaled_at):
        assert time.monotonic() < deadline, "nginx was not reloaded after the scale-down"
        time.sleep(0.5)
    # ...after which every request succeeds, served by the remaining replicas only
    # (the new workers take over at once; the old ones only finish what they hold).
    time.sleep(1)
    since = time.time()
    with httpx.Client(base_url=scaled_stack.url, timeout=10) as client:
        statuses = Counter(client.get("/login").status_code for _ in range(40))
    assert statuses == {200: 40}
    assert {c for c in remaining if access_log(c, since)} == set(remaining)


def container_log(container: str, since: float) -> str:
    logs = subprocess.run(
        ["docker", "logs", "--since", f"{since:.3f}", container],
        capture_output=True,
        text=True,
        check=True,
    )
    return logs.stdout + logs.stderr
