"""Properties of render_markdown over generated hostile text.

Messages mix markdown with fragments people use to smuggle script into a page (raw
tags, event handlers, javascript: and data: links, entity-encoded schemes, broken
fences). Whatever the mix, the HTML is well-formed, uses only allowed tags and
attributes, and no link points anywhere but http(s) or mailto.
"""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from chat_ui.markdown import ALLOWED_TAGS, render_markdown

EXAMPLES = 600
VOID_TAGS = {"br", "hr"}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "rel"},
    "ol": {"start"},
    "code": {"class"},
    "span": {"class"},
    "pre": {"class", "tabindex", "role", "aria-label"},
    "div": {"class", "tabindex", "role", "aria-label"},
    "th": {"class"},
    "td": {"class"},
}
SAFE_SCHEMES = ("http://", "https://", "mailto:")

HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//x.example/a.js></SCRIPT>",
    '<img src=x onerror="alert(1)">',
    "<svg/onload=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=javascript:alert(1)>",
    '<div style="background:url(javascript:alert(1))">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox(1))",
    '[x](https://example.com "title" onmouseover=alert(1))',
    "<https://example.com/a?b=<script>>",
    "<javascript:alert(1)>",
    "![img](https://example.com/x.png)",
    '" onclick="alert(1)',
    "' onfocus='alert(1)",
    "```html\n<script>alert(1)</script>\n```",
    "```js onload=alert(1)\nx\n```",
    "```\nunclosed fence <b>",
    "`<script>`",
    "<!-- comment <script> -->",
    "<style>*{}</style>",
    "| a | b |\n|:-|-:|\n| <b>x</b> | [y](javascript:z) |",
    "> <form action=javascript:alert(1)><button>",
    "&lt;script&gt;",
    "<",
    ">",
    "&",
    "**",
    "_",
    "\n\n",
    "1. ",
    "- ",
    "# ",
]
fragments = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20))
messages = st.lists(fragments, min_size=1, max_size=12).map("".join)


class HtmlShape(HTMLParser):
    """Records every tag and attribute and checks that tags nest and close properly."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment survived: {data!r}")


def shape_of(html: str) -> HtmlShape:
    parser = HtmlShape()
    parser.feed(html)
    parser.close()
    return parser


@settings(max_examples=EXAMPLES, deadline=None)
@given(text=messages)
def test_no_script_survives_and_the_html_is_well_formed(text: str) -> None:
    html = str(render_markdown(text))
    shape = shape_of(html)
    assert shape.problems == [], (text, html)
    assert shape.open == [], (text, html)
    for tag, attributes in shape.tags:
        assert tag in ALLOWED_TAGS, (tag, text, html)
        for name, value in attributes:
            assert name in ALLOWED_ATTRIBUTES.get(tag, set()), (tag, name, text, html)
            if name == "href":
                # The parser has decoded entities, so an encoded scheme shows here as it is.
                assert value is not None and value.startswith(SAFE_SCHEMES), (value, text)
    # Whatever text looked like a tag is now just text: escaped, never markup.
    lowered = html.lower()
    for marker in ("<script", "<img", "<svg", "<iframe", "<style", "<form"):
        assert marker not in lowered, (marker, text, html)


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(text=st.text(max_size=200))
def test_plain_text_keeps_every_character_visible(text: str) -> None:
    """Without markup characters, the text comes back as text (escaped, whitespace aside)."""
    plain = "".join(c for c in text if c.isalnum() or c == " ")
    html = str(render_markdown(plain))
    shape = shape_of(html)
    assert shape.problems == [] and shape.open == []
    visible = "".join(html.replace("<p>", "").replace("</p>", "").split())
    assert visible == "".join(plain.split())
