"""The data the benchmarks read: a signed-in user and a chat of 100 realistic messages."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bench.stack import Stack
from harness.factories import auth_headers
from harness.forms import Browser

CHAT_MESSAGES = 100

_QUESTIONS = (
    "How do I read a large CSV file in Python without running out of memory?",
    "What is the difference between a process and a thread?",
    "Can you give me a quick example of a SQL join with an aggregate?",
    "Explain what a closure is, with a short example.",
    "Why does my regular expression match too much text?",
)

_ANSWER = """Here is one way to do it, step by step.

1. **Read it in chunks**: process a fixed number of rows at a time.
2. Keep only the *columns you need*, and convert types early.
3. Write partial results out instead of keeping them all in memory.

```python
import csv

def totals(path: str) -> dict[str, float]:
    sums: dict[str, float] = {{}}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            sums[row["region"]] = sums.get(row["region"], 0.0) + float(row["amount"])
    return sums
```

| approach | memory | speed |
|---|---|---|
| whole file | high | fast |
| chunks | low | fast |

A `csv.DictReader` streams rows, so memory stays flat (answer {number}). See
<https://docs.python.org/3/library/csv.html> for the details.
"""


@dataclass(frozen=True)
class SeededChat:
    """A user signed in through nginx, and their chat of `CHAT_MESSAGES` messages."""

    browser: Browser
    user_id: str
    chat_id: str
    cookie_header: str

    @property
    def path(self) -> str:
        return f"/chats/{self.chat_id}"


def message_content(index: int) -> tuple[str, str]:
    """(role, content) of the index-th message: a question, then a markdown answer."""
    if index % 2 == 0:
        return "user", _QUESTIONS[(index // 2) % len(_QUESTIONS)]
    return "assistant", _ANSWER.format(number=index)


def seed_chat(stack: Stack, messages: int = CHAT_MESSAGES) -> SeededChat:
    browser = Browser(stack.app_url)
    browser.sign_up()
    headers = auth_headers(stack.service_token)
    with httpx.Client(base_url=stack.db_api_url, headers=headers, timeout=30) as db:
        verified = db.post(
            "/users/verify", json={"username": browser.username, "password": browser.password}
        )
        verified.raise_for_status()
        user_id: str = verified.json()["id"]
        acting = {"X-User-Id": user_id}
        chat = db.post("/chats", json={"title": "Benchmark chat"}, headers=acting)
        chat.raise_for_status()
        chat_id: str = chat.json()["id"]
        for index in range(messages):
            role, content = message_content(index)
            added = db.post(
                f"/chats/{chat_id}/messages",
                json={"role": role, "content": content},
                headers=acting,
            )
            added.raise_for_status()
    cookies = "; ".join(f"{name}={value}" for name, value in browser.http.cookies.items())
    return SeededChat(browser=browser, user_id=user_id, chat_id=chat_id, cookie_header=cookies)
