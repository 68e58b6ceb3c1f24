"""What Temporal carries of a presigned URL: the URL without its query (where the object is,
not the key that reads it).

Workflow inputs, activity inputs and results, outcomes, failure details and the batch files in
the store all pass :func:`unsigned_data` on their way out (:mod:`._wire`): a
:class:`~aiportrait._wire.signing.PresignedURL` (what an uploader returned) becomes its
``public`` form, and so does any other signed URL in what the service answered or an error
says, whole or inside a text (a ``raw_result``). A URL the user gave in a request passes as it
is: the worker sends it as given. A worker presigns an uploaded photo again just before the
call (:mod:`._presign`).
"""

from __future__ import annotations

import re
from typing import Any, Final

from .._wire.signing import PresignedURL, presigned

__all__ = ["RequestData", "unsigned", "unsigned_data"]

_URL: Final = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+""")


class RequestData(dict[str, Any]):
    """A request's ``to_dict`` data: the URLs the user gave in it pass as they are (only the
    uploaders' :class:`~aiportrait._wire.signing.PresignedURL` lose their query)."""


def _public(match: re.Match[str]) -> str:
    text = match.group()
    url = text.rstrip(".,;:)]}")  # the punctuation of the sentence around it stays
    # A JSON text (a raw_result written by a Go service) may escape "&" as "\u0026".
    found = presigned(url.replace("\\u0026", "&"))
    return found.public + text[len(url) :] if isinstance(found, PresignedURL) else text


def unsigned(text: str) -> str:
    """``text`` with each signed URL in it (whole, or inside a message or a JSON text) cut
    before its query."""
    if isinstance(text, PresignedURL):
        return text.public
    if "?" not in text:  # the usual case: no query, nothing to look for
        return text
    return _URL.sub(_public, text)


def unsigned_data(data: Any, *, given: bool = False) -> Any:
    """JSON data with every presigned URL cut before its query (see the module); ``given``:
    inside a request, where only the uploaders' URLs are."""
    if isinstance(data, PresignedURL):
        return data.public
    if isinstance(data, str):
        return data if given else unsigned(data)
    if isinstance(data, RequestData):
        return {k: unsigned_data(v, given=True) for k, v in data.items()}
    if isinstance(data, dict):
        return {k: unsigned_data(v, given=given) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [unsigned_data(v, given=given) for v in data]
    return data
