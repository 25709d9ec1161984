"""The page's cache of rendered messages: reuse, the size bound, and oldest-first eviction."""

from __future__ import annotations

import pytest
from markupsafe import Markup

from chat_ui import markdown
from chat_ui.markdown import RenderedCache, render_markdown


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the cache actually sends to the renderer."""
    seen: list[str] = []

    def counting_render(text: str) -> Markup:
        seen.append(text)
        return render_markdown(text)

    monkeypatch.setattr(markdown, "render_markdown", counting_render)
    return seen


def test_a_repeat_is_served_from_the_cache_with_the_same_html(renders: list[str]) -> None:
    cache = RenderedCache(max_chars=10_000)
    first = cache.render("**bold** and `code`")
    second = cache.render("**bold** and `code`")
    assert first == second == render_markdown("**bold** and `code`")
    assert renders == ["**bold** and `code`"]


def test_the_oldest_entry_goes_first_when_the_bound_is_passed(renders: list[str]) -> None:
    one_entry = len("a" * 40) + len(render_markdown("a" * 40))
    cache = RenderedCache(max_chars=2 * one_entry)
    for text in ("a" * 40, "b" * 40):
        cache.render(text)
    cache.render("a" * 40)  # now the most recently used
    cache.render("c" * 40)  # pushes out "b...", the least recently used
    renders.clear()
    cache.render("a" * 40)
    cache.render("c" * 40)
    assert renders == []
    cache.render("b" * 40)
    assert renders == ["b" * 40]


def test_a_text_larger_than_the_bound_is_rendered_but_never_stored(renders: list[str]) -> None:
    cache = RenderedCache(max_chars=100)
    long_text = "word " * 100
    assert cache.render(long_text) == render_markdown(long_text)
    cache.render(long_text)
    assert renders == [long_text, long_text]
