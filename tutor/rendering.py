"""Tutor replies are Markdown; students see them as sanitized HTML.

markdown-it-py renders (raw HTML in the source disabled), nh3 (ammonia) then keeps only a
small allow-list of tags and attributes: no scripts, no event handlers, no
``javascript:`` links, whatever a model or a student manages to put in a reply.

Maths: ``$...$`` and ``$$...$$`` (what the system prompt asks models for) become
``<span class="math inline">`` / ``<div class="math block">`` holding the TeX as text, which
the chat typesets with KaTeX (``static/vendor/katex``). mdit-py-plugins' dollarmath parses
them, so Markdown never touches what is inside; a dollar amount (``$5 and $6``) stays text.
Maths written as plain text is protected too: a ``*`` between two operands (``10*y``,
``(2x)*3``) is a multiplication sign, never emphasis.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin

_md = (
    MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True})
    .enable("table")
    .use(dollarmath_plugin, allow_space=False, allow_digits=False, double_inline=True)
)
_TAGS = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "blockquote", "a", "h3", "h4", "table",
         "thead", "tbody", "tr", "th", "td", "hr", "span", "div"}  # fmt: skip

# Code and maths are left exactly as written; the rest gets its multiplication stars escaped.
_PROTECTED = re.compile(r"(```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]+\$)", re.S)
_TIMES = re.compile(r"(?<=[\w)\]])(\*{1,2})(?=[\w(\[])")


def _escape_times(text: str) -> str:
    parts = _PROTECTED.split(text)
    for i in range(0, len(parts), 2):  # even parts are outside code and maths
        parts[i] = _TIMES.sub(lambda m: "\\*" * len(m.group(1)), parts[i])
    return "".join(parts)


def render_markdown(text: str) -> str:
    html = _md.render(_escape_times(text or ""))
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes={"a": {"href", "title"}},
        allowed_classes={"span": {"math", "inline"}, "div": {"math", "block", "inline"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
