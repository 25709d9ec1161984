"""Message markdown: what renders, and that nothing a message says can become script."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from chat_ui.markdown import render_markdown

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "del", "s", "code", "pre", "span", "blockquote", "ul", "ol",
    "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "a", "table", "thead", "tbody", "tr",
    "th", "td",
}  # fmt: skip
SAFE_SCHEMES = ("http://", "https://", "mailto:")


class TagCollector(HTMLParser):
    """Every start tag with its attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def parsed_tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    collector = TagCollector()
    collector.feed(html)
    collector.close()
    return collector.tags


def hrefs(html: str) -> list[str]:
    return [
        value or "" for _, attrs in parsed_tags(html) for name, value in attrs if name == "href"
    ]


def assert_inert(html: str) -> None:
    """No way for the HTML to run script or load anything: the properties that matter."""
    assert "<script" not in html.lower()
    for tag, attrs in parsed_tags(html):
        assert tag in ALLOWED_TAGS, html
        for name, value in attrs:
            assert not name.startswith("on"), html
            assert name != "style", html
            if name == "href":
                assert (value or "").startswith(SAFE_SCHEMES), html


def test_answers_markup_and_empty_text_renders_nothing() -> None:
    assert isinstance(render_markdown("hi"), Markup)
    assert render_markdown("") == ""


def test_headings_lists_emphasis_and_line_breaks() -> None:
    html = render_markdown("# Title\n\n## Sub\n\n- one\n- **two**\n\n1. *first*\n\nline\nnext")
    # Below the page's own headings: the chat's title (h1) and each author (h2).
    assert "<h3>Title</h3>" in html
    assert "<h4>Sub</h4>" in html
    assert "<h6>Deep</h6>" in render_markdown("###### Deep")
    assert "<li><strong>two</strong></li>" in html
    assert "<ol>\n<li><em>first</em></li>" in html
    # A chat message's single newline is a line break, as people expect when typing.
    assert "line<br>" in html


def test_tables_keep_alignment_as_classes_not_styles() -> None:
    html = render_markdown("| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |")
    # In a region of its own that scrolls sideways and takes keyboard focus.
    assert '<div class="table-scroll" tabindex="0" role="region" aria-label="Table"><table>' in html
    assert '<th class="align-left">a</th>' in html
    assert '<td class="align-center">2</td>' in html
    assert '<td class="align-right">3</td>' in html
    assert "style=" not in html


def test_strikethrough_inline_code_blockquote_and_rule() -> None:
    html = render_markdown("~~old~~ `x < y`\n\n> quoted\n\n---")
    assert "<s>old</s>" in html
    assert "<code>x &lt; y</code>" in html
    assert "<blockquote>" in html
    assert "<hr>" in html


def test_fenced_code_is_highlighted_with_classes_only() -> None:
    html = render_markdown('```python\ndef greet():\n    return "<b>hi</b>"\n```')
    assert (
        '<pre class="code-block" tabindex="0" role="region" aria-label="Code (python)">'
        '<code class="language-python">'
    ) in html
    assert '<span class="k">def</span>' in html
    assert "&lt;b&gt;hi&lt;/b&gt;" in html
    assert "style=" not in html


def test_unknown_language_and_plain_fences_are_escaped_text() -> None:
    unknown = render_markdown("```nosuchlanguage\n<script>alert(1)</script>\n```")
    assert '<code class="language-nosuchlanguage">&lt;script&gt;' in unknown
    assert "<span" not in unknown
    plain = render_markdown("```\n<b>bold?</b>\n```")
    assert (
        '<pre class="code-block" tabindex="0" role="region" aria-label="Code">'
        "<code>&lt;b&gt;bold?&lt;/b&gt;"
    ) in plain


def test_hostile_info_string_cannot_break_out_of_the_class_attribute() -> None:
    html = render_markdown('```x" onmouseover="alert(1)\ncode\n```')
    assert_inert(html)
    assert "onmouseover" not in html


def test_unclosed_fence_mid_stream_renders_the_code_so_far() -> None:
    html = render_markdown("Here you go:\n\n```python\nfor i in range(3):\n    print(i")
    assert "<p>Here you go:</p>" in html
    assert '<code class="language-python">' in html
    assert "</code></pre>" in html
    assert "print" in html


@pytest.mark.parametrize(
    "partial",
    [
        "**bold",
        "[link](http://exa",
        "| a | b |\n|--",
        "- item\n  - nest",
        "> quote\n>",
        "`code",
        "#",
    ],
)
def test_partial_markdown_renders_without_raising(partial: str) -> None:
    assert_inert(render_markdown(partial))


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "<iframe src=https://example.com></iframe>",
        "<svg onload=alert(1)>",
        "<a href=javascript:alert(1)>x</a>",
        '<div style="background:url(javascript:alert(1))">x</div>',
        "<details open ontoggle=alert(1)>",
        "<!-- comment --><script>x</script>",
    ],
)
def test_raw_html_is_shown_as_text(payload: str) -> None:
    html = render_markdown(payload)
    assert_inert(html)
    assert "&lt;" in html


@pytest.mark.parametrize(
    "destination",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "JaVaScRiPt:alert(1)",
        "jav&#x09;ascript:alert(1)",
        "jav&#x0A;ascript:alert(1)",
        "&#106;avascript:alert(1)",
        "javascript&colon;alert(1)",
        "<javascript:alert(1)>",
        "<%20javascript:alert(1)>",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "DATA:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "VBScript:msgbox(1)",
        "file:///etc/passwd",
        "/logout",
        "//evil.example/",
    ],
)
def test_dangerous_link_destinations_lose_their_href(destination: str) -> None:
    for source in (f"[click]({destination})", f"[click][r]\n\n[r]: {destination}"):
        html = render_markdown(source)
        assert_inert(html)
        assert "javascript" not in " ".join(hrefs(html)).lower()


@pytest.mark.parametrize(
    "autolink", ["<javascript:alert(1)>", "<JAVASCRIPT:alert(1)>", "<data:text/html,x>"]
)
def test_dangerous_autolinks_are_not_links(autolink: str) -> None:
    html = render_markdown(autolink)
    assert_inert(html)
    assert "href" not in html


def test_safe_links_keep_href_and_get_rel() -> None:
    html = render_markdown("[docs](https://example.com/a?b=1) <mailto:me@example.com>")
    assert '<a href="https://example.com/a?b=1" rel="nofollow noopener noreferrer">docs</a>' in html
    assert 'href="mailto:me@example.com"' in html
    assert "target=" not in html


def test_images_never_load() -> None:
    html = render_markdown("![tracker](https://example.com/pixel.png)")
    assert "<img" not in html


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_arbitrary_text_never_yields_active_content(text: str) -> None:
    assert_inert(render_markdown(text))


MARKDOWN_PIECES = st.sampled_from(
    [
        "<", ">", "&", '"', "'", "`", "```", "```js\n", "[", "]", "(", ")", "!", "*", "_", "~~",
        "|", "-", "\n", "\n\n", " ", "javascript:", "JaVaScRiPt:", "data:", "vbscript:",
        "&#x09;", "&#106;", "&colon;", "onerror=", "onload=", "style=", "<script>", "<img ",
        "<svg", "<a href=", "http://x", "alert(1)", "#", "> ", "1. ", "\t", "\x00",
    ]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(MARKDOWN_PIECES, max_size=40).map("".join))
def test_hostile_markdown_soup_never_yields_active_content(text: str) -> None:
    assert_inert(render_markdown(text))


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_rendering_twice_gives_the_same_safe_result(text: str) -> None:
    first = render_markdown(text)
    assert render_markdown(text) == first
    # Rendering its own output again (e.g. a quoted reply) is still safe.
    assert_inert(render_markdown(str(first)))
