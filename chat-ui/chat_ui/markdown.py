"""Markdown to safe HTML for chat messages.

Text from users and from the model is untrusted, so rendering is layered: markdown-it never
passes raw HTML through (``html=False``), code is highlighted with CSS classes only (the CSP
forbids inline styles), and nh3 then sanitises the result against an explicit allowlist, so
a bug in one layer is not enough for script to reach the page. It runs on every streamed
update, so the parser, the formatter and the sanitiser are built once and reused.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

# Fenced code is wrapped in <pre class="code-block">; code.css scopes the Pygments
# colours under this class.
CODE_BLOCK_CLASS = "code-block"

# Table alignment arrives from markdown-it as style="text-align:…"; it becomes one of
# these classes instead, because inline styles are both blocked by the CSP and stripped.
_ALIGN_CLASSES = {"left": "align-left", "center": "align-center", "right": "align-right"}

# Only the characters a real language name uses, so the class attribute stays boring.
_LANGUAGE_NAME = re.compile(r"[^a-z0-9_+#.-]")
_MAX_LANGUAGE_NAME = 32

_formatter = HtmlFormatter(nowrap=True)

# What markdown-it can produce for a message, minus images (no remote loads).
_TEXT_TAGS = ("p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "span", "blockquote")
_HEADING_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_TABLE_TAGS = ("table", "thead", "tbody", "tr", "th", "td")
ALLOWED_TAGS = {*_TEXT_TAGS, *_HEADING_TAGS, *_TABLE_TAGS, "ul", "ol", "li", "a", "div"}
# A message's headings sit below the page's own: the chat's title is the h1 and each
# message's author an h2, so a reply's "# Title" is an h3.
HEADING_SHIFT = 2
# Code blocks and tables may scroll sideways: each is a labelled region that takes
# keyboard focus, so it can be scrolled without a mouse.
_SCROLLING = {"tabindex", "role", "aria-label"}
TABLE_SCROLL_CLASS = "table-scroll"

_SANITISER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    attributes={
        "a": {"href"},
        "ol": {"start"},
        "code": {"class"},
        "pre": _SCROLLING,
        "div": _SCROLLING,
    },
    allowed_classes={
        # Every class Pygments can emit, and nothing else: no borrowing the app's own classes.
        "span": {name for name in STANDARD_TYPES.values() if name},
        "pre": {CODE_BLOCK_CLASS},
        "div": {TABLE_SCROLL_CLASS},
        "th": set(_ALIGN_CLASSES.values()),
        "td": set(_ALIGN_CLASSES.values()),
    },
    url_schemes={"http", "https", "mailto"},
    # Relative links would point into the app itself (a phishing aid); only absolute
    # http(s) and mailto links are kept, anything else loses its href.
    url_relative="deny",
    link_rel="nofollow noopener noreferrer",
    strip_comments=True,
)


@lru_cache(maxsize=256)
def _lexer_for(language: str) -> Lexer | None:
    try:
        return get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None


def _render_fence(
    renderer: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    """A fenced block: Pygments spans for a known language, escaped text otherwise."""
    token = tokens[idx]
    info = token.info.strip()
    language = (
        _LANGUAGE_NAME.sub("", info.split(maxsplit=1)[0].lower())[:_MAX_LANGUAGE_NAME]
        if info
        else ""
    )
    lexer = _lexer_for(language) if language else None
    body = highlight(token.content, lexer, _formatter) if lexer else escapeHtml(token.content)
    code_class = f' class="language-{language}"' if language else ""
    label = f"Code ({language})" if language else "Code"
    return (
        f'<pre class="{CODE_BLOCK_CLASS}" tabindex="0" role="region" aria-label="{label}">'
        f"<code{code_class}>{body}</code></pre>\n"
    )


def _render_heading(
    renderer: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    token = tokens[idx]
    level = min(int(token.tag[1]) + HEADING_SHIFT, 6)
    token.tag = f"h{level}"
    return renderer.renderToken(tokens, idx, options, env)


def _render_table(
    renderer: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    table = renderer.renderToken(tokens, idx, options, env)
    if tokens[idx].type == "table_open":
        scroll = f'<div class="{TABLE_SCROLL_CLASS}" tabindex="0" role="region" aria-label="Table">'
        return scroll + table
    return table + "</div>\n"


def _render_table_cell(
    renderer: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    token = tokens[idx]
    style = str(token.attrGet("style") or "")
    if style:
        token.attrs.pop("style", None)
        alignment = style.removeprefix("text-align:").strip()
        if alignment in _ALIGN_CLASSES:
            token.attrSet("class", _ALIGN_CLASSES[alignment])
    return renderer.renderToken(tokens, idx, options, env)


def _build_parser() -> MarkdownIt:
    # CommonMark with raw HTML off; "breaks" keeps a chat message's single newlines, which
    # people type expecting a new line. Images are off: no remote loads from a message.
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
    parser.enable(["table", "strikethrough"])
    parser.disable("image")
    rules = {
        "fence": _render_fence,
        "th_open": _render_table_cell,
        "td_open": _render_table_cell,
        "heading_open": _render_heading,
        "heading_close": _render_heading,
        "table_open": _render_table,
        "table_close": _render_table,
    }
    for token_type, rule in rules.items():
        parser.add_render_rule(token_type, rule)
    return parser


_parser = _build_parser()


def render_markdown(text: str) -> Markup:
    """Render untrusted markdown (possibly a half-streamed reply) to sanitised HTML."""
    if not text:
        return Markup("")
    return Markup(_SANITISER.clean(_parser.render(text)))  # noqa: S704 - sanitised just now


# What a line of plain text keeps of an inline token: its words, not its markup.
_INLINE_TEXT = {"text": True, "code_inline": True}
_INLINE_SPACE = {"softbreak", "hardbreak"}


def plain_text(text: str) -> str:
    """The words of untrusted markdown without its markup, one line per block.

    For titles and search snippets, which show text, not formatting: `**Readability**`
    is "Readability", `[the docs](https://…)` is "the docs", a fence is its code.
    """
    lines: list[str] = []
    for token in _parser.parse(text):
        if token.type == "inline":
            words = [
                child.content if _INLINE_TEXT.get(child.type) else " "
                for child in token.children or ()
                if _INLINE_TEXT.get(child.type) or child.type in _INLINE_SPACE
            ]
            lines.append(" ".join("".join(words).split()))
        elif token.type in ("fence", "code_block"):
            lines.append(" ".join(token.content.split()))
    return "\n".join(line for line in lines if line)


# Emphasis, strike-through and code marks that a cut left without their other half.
_UNPAIRED_MARKS = re.compile(r"\*\*+|__+|~~+|`+")


def plain_fragment(text: str) -> str:
    """`plain_text` of a piece cut out of markdown (a search snippet): the marks whose
    other half fell outside the piece go too, so `word** and more` is "word and more"."""
    return _UNPAIRED_MARKS.sub("", plain_text(text))


class RenderedCache:
    """Rendered HTML of recently shown messages, bounded by the size of their text.

    A chat page renders every message of the chat on every view, and a stored message
    never changes once complete, so its HTML is rendered once and reused (highlighting
    code dominated the page's cost). The key is the text itself: an edited message is a
    new entry and the old one ages out. The bound is on characters, not entries, so a
    few very long messages cannot hold much memory.
    """

    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars
        self._chars = 0
        self._entries: OrderedDict[str, Markup] = OrderedDict()
        self._lock = threading.Lock()

    def render(self, text: str) -> Markup:
        with self._lock:
            html = self._entries.get(text)
            if html is not None:
                self._entries.move_to_end(text)
                return html
        html = render_markdown(text)
        size = len(text) + len(html)
        if size > self._max_chars:
            return html
        with self._lock:
            if text not in self._entries:
                self._entries[text] = html
                self._chars += size
            while self._chars > self._max_chars:
                old_text, old_html = self._entries.popitem(last=False)
                self._chars -= len(old_text) + len(old_html)
        return html


# About 2 MB of text and HTML: the messages of a few dozen long chats.
_page_cache = RenderedCache(max_chars=2_000_000)


def render_markdown_cached(text: str) -> Markup:
    """render_markdown for stored messages shown on a page (see RenderedCache).

    Streamed updates of a reply being written use render_markdown: each partial text is
    shown once, so caching them would only push finished messages out.
    """
    return _page_cache.render(text)
