"""A griffe extension for the API reference (zensical.toml loads it): Sphinx's markup in the
docstrings, read as Markdown.

The docstrings name other objects with Sphinx's roles (``:class:`Session```,
``:meth:`~aiportrait.Session.create```, ``:func:`title <target>```) and open literal blocks with
``::``. Markdown has neither: each role becomes a code span of what Sphinx shows (the title, the
last part after ``~``, else the name), and a paragraph's closing ``::`` a ``:`` (a lone ``::``
line goes); the indented block after it is a code block in Markdown too.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]*?)\s*(?:<([^>`]+)>)?`")
LITERAL = re.compile(r"(?m)^([ \t]*)::[ \t]*\n|(?<=\S)::[ \t]*$")


def markdown(text: str) -> str:
    """``text`` with Sphinx's roles and literal-block markers in Markdown's terms."""

    def role(match: re.Match[str]) -> str:
        short, name, target = match.groups()
        if target is not None and name:  # :meth:`title <target>`
            return f"`{name}`"
        name = target or name
        return f"`{name.rsplit('.', 1)[-1] if short else name}`"

    text = ROLE.sub(role, text)
    return LITERAL.sub(lambda m: "" if m.group(1) is not None else ":", text)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring with :func:`markdown` as griffe loads it."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
