"""A griffe extension for the API reference (zensical.toml loads it): which members it shows,
and how.

- ``aiportrait.sync.Session``'s methods are attributes in the source (``check_images =
  _blocking(_AsyncSession.check_images)``: one definition, the asynchronous Session's signature
  and docstring, run on a background loop). Here each becomes the method it is at run time: the
  asynchronous method's parameters and docstring, not ``async``, returning what it returns (a
  plain iterator of its items, for ``_iterating``).
- Special members (``__repr__``, ``__aenter__``, ``__slots__``...) are not API entries: with
  ``filters = "public"`` (a module's ``__all__``, no ``_`` names) they would be, and marking them
  not public does not reach a class shown through an alias (``::: aiportrait.Session``), so they
  are dropped here; ``__init__`` stays, merged into its class's signature.
"""

from __future__ import annotations

from typing import Any

import griffe

#: The wrappers of aiportrait.sync that turn an asynchronous method into a blocking one.
WRAPPERS = ("_blocking", "_iterating")


def blocking_method(attribute: griffe.Attribute, module: griffe.Module) -> griffe.Function | None:
    """The method a ``name = _blocking(_AsyncSession.name)`` (or ``_iterating(...,
    "Item")``) attribute of ``module`` is, or None for any other attribute."""
    value = attribute.value
    if not isinstance(value, griffe.ExprCall) or str(value.function) not in WRAPPERS:
        return None
    wrapped, *rest = value.arguments
    owner, _, name = str(wrapped).rpartition(".")
    method = module[owner].all_members[name]  # an alias, or an inherited member: their target's
    returns: str | griffe.Expr | None = method.returns
    if str(value.function) == "_iterating":
        item = str(rest[0]).strip("'")  # the item type, given as a string: 'JobUpdate'
        returns = f"Iterator[{item}]"
    parameters = griffe.Parameters(
        *(
            griffe.Parameter(p.name, annotation=p.annotation, kind=p.kind, default=p.default)
            for p in method.parameters
        )
    )
    docstring = method.docstring
    return griffe.Function(
        attribute.name,
        lineno=attribute.lineno,  # its place in the facade's source, for members_order
        endlineno=attribute.endlineno,
        parameters=parameters,
        returns=returns,
        docstring=None
        if docstring is None
        else griffe.Docstring(
            docstring.value, parser=docstring.parser, parser_options=docstring.parser_options
        ),
    )


class ReferenceMembers(griffe.Extension):
    """The sync facade's methods as methods; no special members."""

    def on_class(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        for name, member in list(cls.members.items()):
            if member.is_special and name != "__init__":
                cls.del_member(name)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name != "aiportrait":
            return
        module = pkg["sync"]
        facade = module["Session"]
        for member in list(facade.members.values()):
            if isinstance(member, griffe.Attribute):
                method = blocking_method(member, module)
                if method is not None:
                    facade.set_member(member.name, method)
