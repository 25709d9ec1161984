"""Hostile messages and chat titles in a real Chromium: nothing may run, load or inject.

The payloads are stored straight through db-api (no model replies needed), except the
titles, which go through the page's own rename form. Every payload that could run would
set `window.__xss` or open a dialog; both are watched, and the DOM is checked for the
elements and attributes that could carry script.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect

from harness.db_api import DbApiServer
from harness.factories import add_message, auth_headers, create_chat, unique_username
from harness.nginx import NginxServer
from tests.support.browser import BrowserTab, OpenTab, save_screenshot
from tests.support.pages import PASSWORD, sign_up

# Every payload carries this word, so one search lists all of them.
PROBE = "xssprobe"
# Anything that tries to load from the network is pointed at a closed loopback port.
NOWHERE = "http://127.0.0.1:9"
RUN = "window.__xss=1"

MESSAGE_PAYLOADS = [
    f"<script>{RUN}</script>",
    "<script>alert(1)</script>",
    f'<img src=x onerror="{RUN}">',
    "<img src=x onerror=alert(1)//",
    f'<svg onload="{RUN}">',
    f"<svg><script>{RUN}</script></svg>",
    f"<svg/onload={RUN}>",
    f'<iframe src="javascript:{RUN}"></iframe>',
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    "<body onload=alert(1)>",
    f'<details open ontoggle="{RUN}">x</details>',
    f'<a href="javascript:{RUN}">click</a>',
    f'<a href="&#x6A;avascript:{RUN}">click</a>',
    f"[click](javascript:{RUN})",
    f"[click](JAVASCRIPT:{RUN})",
    f"[click](JaVaScRiPt:{RUN})",
    f"[click](jav&#x09;ascript:{RUN})",
    f"[click](jav&#x0A;ascript:{RUN})",
    f"[click](&#106;avascript:{RUN})",
    f"[click](javascript&colon;{RUN})",
    f"[click]( javascript:{RUN} )",
    f"[click](<javascript:{RUN}>)",
    f"[click](javascript://%0A{RUN})",
    f"[click][ref]\n\n[ref]: javascript:{RUN}",
    f"<javascript:{RUN}>",
    "<JaVaScRiPt:alert(1)>",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<data:text/html,<script>alert(1)</script>>",
    "[vb](vbscript:msgbox(1))",
    f"![img](javascript:{RUN})",
    f'![img](x" onerror="{RUN})',
    f'[x]({NOWHERE}/" onmouseover="{RUN})',
    f'[x]({NOWHERE}/ "title\\" onmouseover=\\"{RUN}")',
    f'<{NOWHERE}/?"onmouseover="{RUN}>',
    f'<div style="background:url(javascript:{RUN})">x</div>',
    f'<div style="width:expression({RUN})">x</div>',
    f'<style>body{{background:url("javascript:{RUN}")}}</style>',
    f'<link rel=stylesheet href="javascript:{RUN}">',
    f'<object data="javascript:{RUN}"></object>',
    f'<embed src="javascript:{RUN}">',
    f"<math><mtext><table><mglyph><style><img src=x onerror={RUN}>",
    f'<noscript><p title="</noscript><img src=x onerror={RUN}>">',
    f"<!--<img src=x onerror={RUN}>-->",
    f"&lt;script&gt;{RUN}&lt;/script&gt;",
    f"&#60;img src=x onerror={RUN}&#62;",
    f"```html\n<script>{RUN}</script>\n```",
    f'```" onmouseover="{RUN}\n<img src=x onerror={RUN}>\n```',
    f"`<img src=x onerror={RUN}>`",
    f'<form action="javascript:{RUN}"><button>go</button></form>',
    f'<input autofocus onfocus="{RUN}">',
    f'<marquee onstart="{RUN}">x</marquee>',
    f'<video><source onerror="{RUN}"></video>',
    '<base href="javascript:/">',
    f'<meta http-equiv="refresh" content="0;url=javascript:{RUN}">',
    f'"><script>{RUN}</script>',
    f"'><img src=x onerror={RUN}>",
    f"<scr<script>ipt>{RUN}</scr</script>ipt>",
    f"| a | b |\n|---|---|\n| <img src=x onerror={RUN}> | [c](javascript:{RUN}) |",
    f"> <svg/onload={RUN}>",
    f"- [x](javascript:{RUN})\n- <script>{RUN}</script>",
    f"**<img src=x onerror={RUN}>**",
    f"<template><script>{RUN}</script></template>",
    f"\u0002<script>{RUN}</script>\u0003",
    f"```js\n</code></pre><script>{RUN}</script>\n```",
]

TITLE_PAYLOADS = [
    f"<script>{RUN}</script>",
    f"<img src=x onerror={RUN}>",
    f'"><svg onload={RUN}>',
    f"' onmouseover='{RUN}",
    f"[t](javascript:{RUN})",
    f"</title><script>{RUN}</script>",
    f"<iframe src=javascript:{RUN}>",
    "{{ 7*7 }} {% raw %}<b>",
]

RICH_MARKDOWN = """## Sorting in Python

Use **`sorted()`** for a new list, or `list.sort()` in place:

```python
def top_three(scores: dict[str, int]) -> list[str]:
    # Highest score first; ties keep their order.
    return sorted(scores, key=scores.get, reverse=True)[:3]
```

- `sorted()` works on *any* iterable
- `key=` picks what to compare
  - e.g. `key=str.lower`
- ~~`cmp=`~~ is gone since Python 3

| Method | Returns | In place |
|:--|:--:|--:|
| `sorted(x)` | new list | no |
| `x.sort()` | `None` | yes |

> Tip: both are stable. See the [docs](https://docs.python.org/3/howto/sorting.html).
"""

# Checks the page for anything that could run script or reach the network.
FIND_INJECTIONS = """() => {
  const found = [];
  const dangerousUrl = /^\\s*(javascript|data|vbscript)\\s*:/i;
  for (const element of document.querySelectorAll("*")) {
    for (const attribute of element.attributes) {
      const name = attribute.name.toLowerCase();
      if (name.startsWith("on")) found.push(`${element.tagName} ${name}`);
      if (name === "style" || name === "srcdoc") found.push(`${element.tagName} ${name}`);
      if (["href", "src", "action", "formaction", "data", "xlink:href"].includes(name)
          && dangerousUrl.test(attribute.value)) found.push(`${element.tagName} ${name}`);
    }
  }
  for (const script of document.querySelectorAll("script")) {
    if (!script.src || new URL(script.src).pathname !== "/static/app.js") found.push("script");
  }
  const banned = "iframe, object, embed, img, svg, math, video, audio, source, style, "
    + "base, template, marquee, form[action^='javascript'], input[onfocus], body body";
  for (const element of document.querySelectorAll(banned)) found.push(element.tagName);
  for (const link of document.querySelectorAll("link")) {
    if (!new URL(link.href).pathname.startsWith("/static/")) found.push("link " + link.href);
  }
  for (const meta of document.querySelectorAll("meta[http-equiv]")) {
    if (/javascript/i.test(meta.content)) found.push("meta refresh");
  }
  return found;
}"""


class Watcher:
    """Records dialogs and CSP reports on a page, and checks the canary."""

    def __init__(self, tab: BrowserTab) -> None:
        self.tab = tab
        self.dialogs: list[str] = []
        tab.page.on("dialog", self._on_dialog)

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def visit(self, url: str) -> None:
        response = self.tab.page.goto(url)
        assert response is not None and response.status == 200, url
        self.assert_clean(url)

    def assert_clean(self, where: str) -> None:
        page = self.tab.page
        page.wait_for_load_state("load")
        # Give autofocus, load and error handlers a moment to fire, were there any.
        page.wait_for_timeout(150)
        assert self.dialogs == [], (where, self.dialogs)
        assert page.evaluate("window.__xss") is None, where
        assert page.evaluate(FIND_INJECTIONS) == [], where
        blocked = [error for error in self.tab.script_errors if "Content Security" in error]
        assert blocked == [], (where, blocked)


def user_id(db_api: DbApiServer, username: str) -> str:
    response = httpx.post(
        f"{db_api.url}/users/verify",
        json={"username": username, "password": PASSWORD},
        headers=auth_headers(db_api.service_token),
    )
    assert response.status_code == 200, response.text
    value: str = response.json()["id"]
    return value


def rename_in_page(page: Page, base_url: str, chat_id: str, title: str) -> None:
    """Rename through the chat page's own form, the way a person would."""
    page.goto(f"{base_url}/chats/{chat_id}")
    page.locator(".chat-header").get_by_role("group").locator("summary").click()
    page.locator(".chat-header").get_by_label("Rename").fill(title)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".conversation__title")).to_have_text(title)


@pytest.fixture
def db_client(db_api: DbApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=db_api.url, headers=auth_headers(db_api.service_token)) as client:
        yield client


def test_payload_count() -> None:
    assert len(MESSAGE_PAYLOADS) + len(TITLE_PAYLOADS) >= 50


def test_hostile_messages_and_titles_run_nothing(
    nginx: NginxServer, db_api: DbApiServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    tab = open_tab()
    watcher = Watcher(tab)
    page = tab.page
    username = unique_username("xss")
    sign_up(page, nginx.url, username)
    owner = user_id(db_api, username)

    chat = create_chat(db_client, user_id=owner, title=f"Hostile messages {PROBE}")
    for index, payload in enumerate(MESSAGE_PAYLOADS):
        role = "user" if index % 2 == 0 else "assistant"
        content = f"{payload}\n\n{PROBE} {index}"
        add_message(db_client, user_id=owner, chat_id=chat["id"], role=role, content=content)

    title_chats = []
    for payload in TITLE_PAYLOADS:
        title_chat = create_chat(db_client, user_id=owner, title="Untitled")
        rename_in_page(page, nginx.url, title_chat["id"], f"{payload} {PROBE}")
        watcher.assert_clean(f"rename to {payload!r}")
        title_chats.append(title_chat["id"])

    watcher.visit(f"{nginx.url}/chats/{chat['id']}")
    rendered = page.locator(".message__content")
    expect(rendered).to_have_count(len(MESSAGE_PAYLOADS))
    # The payloads are shown to the reader as text, not swallowed.
    expect(page.locator(".messages")).to_contain_text("<script>window.__xss=1</script>")

    watcher.visit(f"{nginx.url}/chats")
    for title_chat_id in title_chats:
        watcher.visit(f"{nginx.url}/chats/{title_chat_id}")
        watcher.visit(f"{nginx.url}/chats/{title_chat_id}/delete")
    for query in (PROBE, "onerror", "script", "javascript", "<script>alert(1)</script>"):
        watcher.visit(f"{nginx.url}/search?q={quote(query)}")
    watcher.visit(f"{nginx.url}/search?q={PROBE}")
    expect(page.locator(".search-result")).to_have_count(1 + len(TITLE_PAYLOADS))
    expect(page.locator(".search-result mark").first).to_have_text(PROBE)


def test_rich_markdown_renders_in_the_page(
    nginx: NginxServer, db_api: DbApiServer, db_client: httpx.Client, open_tab: OpenTab
) -> None:
    tab = open_tab(width=1100, height=900)
    page = tab.page
    username = unique_username("md")
    sign_up(page, nginx.url, username)
    owner = user_id(db_api, username)
    chat = create_chat(db_client, user_id=owner, title="Sorting in Python")
    add_message(db_client, user_id=owner, chat_id=chat["id"], content="How do I sort a dict?")
    add_message(
        db_client, user_id=owner, chat_id=chat["id"], role="assistant", content=RICH_MARKDOWN
    )

    page.goto(f"{nginx.url}/chats/{chat['id']}")
    reply = page.locator(".message--assistant .message__content").last
    # A reply's "##" sits below the page's own headings (the title h1, the author h2).
    expect(reply.locator("h4")).to_have_text("Sorting in Python")
    expect(reply.locator("pre.code-block code.language-python span.k").first).to_have_text("def")
    expect(reply.locator("ul > li")).to_have_count(4)
    expect(reply.locator("table td.align-right").first).to_have_text("no")
    expect(reply.locator("blockquote a")).to_have_attribute("rel", "nofollow noopener noreferrer")
    # The highlighting colours come from code.css, so the keyword is not plain text colour.
    keyword_colour = reply.locator("span.k").first.evaluate("e => getComputedStyle(e).color")
    text_colour = reply.evaluate("e => getComputedStyle(e).color")
    assert keyword_colour != text_colour
    save_screenshot(page, "markdown")
    assert tab.script_errors == []
