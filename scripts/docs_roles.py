"""A griffe extension for the API reference (zensical.toml loads it): Sphinx's markup in the
docstrings, read as Markdown.

The docstrings name other objects with Sphinx's roles (``:class:`Session```,
``:meth:`~aiportrait.Session.create```, ``:func:`title <target>```) and open literal blocks with
``::``. Markdown has neither: each role becomes a code span of what Sphinx shows (the title, the
last part after ``~``, else the name), and a paragraph's closing ``::`` a ``:`` (a lone ``::``
line goes); the indented block after it is a code block in Markdown too. A role whose target is
a fully qualified public name (``aiportrait.x.Y``, no part private) is also a link to its entry,
when the reference has one: an optional cross-reference, which stays plain code otherwise.

The summary tables show a docstring's first line: the first paragraph is joined into that line,
so a summary is a whole sentence, not one cut at the source's line end.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]*?)\s*(?:<([^>`]+)>)?`")
LITERAL = re.compile(r"(?m)^([ \t]*)::[ \t]*\n|(?<=\S)::[ \t]*$")
PUBLIC_NAME = re.compile(r"aiportrait(?:\.[A-Za-z]\w*)+")


def markdown(text: str) -> str:
    """``text`` with Sphinx's roles and literal-block markers in Markdown's terms, and its first
    paragraph on one line."""

    def role(match: re.Match[str]) -> str:
        short, title, target = match.groups()
        name = target or title
        if target is None or not title:  # else :meth:`title <target>`
            title = name.rsplit(".", 1)[-1] if short else name
        if PUBLIC_NAME.fullmatch(name):
            return f'<autoref identifier="{name}" optional>`{title}`</autoref>'
        return f"`{title}`"

    text = ROLE.sub(role, text)
    text = LITERAL.sub(lambda m: "" if m.group(1) is not None else ":", text)
    first, blank, rest = text.partition("\n\n")
    return " ".join(first.split("\n")) + blank + rest


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring with :func:`markdown` as griffe loads it."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
