"""Tutor replies are Markdown; students see them as sanitized HTML.

markdown-it-py renders (raw HTML in the source disabled), nh3 (ammonia) then keeps only a
small allow-list of tags and attributes: no scripts, no event handlers, no
``javascript:`` links, whatever a model or a student manages to put in a reply.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("table")
_TAGS = {"p", "br", "strong", "em", "code", "pre", "ul", "ol", "li", "blockquote", "a", "h3", "h4", "table",
         "thead", "tbody", "tr", "th", "td", "hr"}  # fmt: skip


def render_markdown(text: str) -> str:
    html = _md.render(text or "")
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
