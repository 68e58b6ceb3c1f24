"""``python -m aiportrait``: the ``aiportrait`` command."""

from .cli import console

console()
