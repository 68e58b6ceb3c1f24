"""What Temporal carries of a presigned URL: the URL without its query (where the object is,
not the key that reads it).

Workflow inputs, activity inputs and results, outcomes, failure details and the batch files in
the store all pass :func:`unsigned_data` on their way out (:mod:`._wire`): a
:class:`~aiportrait._wire.signing.PresignedURL` (what an uploader returned) becomes its
``public`` form (in a request, marked :data:`UPLOADED`: the worker presigns it again before
the call, or refuses to send it), and so does any other signed URL in what the service
answered or an error says, whole or inside a text (a ``raw_result``). A URL the user gave in
a request passes as it is: the worker sends it as given. A worker presigns an uploaded photo
again just before the call (:mod:`._presign`).
"""

from __future__ import annotations

from typing import Any, Final

from .._wire.signing import PresignedURL, public_text

__all__ = ["UPLOADED", "RequestData", "unsigned_data"]

UPLOADED: Final = "#aiportrait-uploaded"
"""The mark of an uploaded photo's address in a request Temporal carries (a fragment, never
part of what is fetched): a worker presigns it again before the call, and refuses to send it
when it cannot (no uploader, or another bucket), before anything is charged."""


class RequestData(dict[str, Any]):
    """A request's ``to_dict`` data: the URLs the user gave in it pass as they are (only the
    uploaders' :class:`~aiportrait._wire.signing.PresignedURL` lose their query)."""


def unsigned_data(data: Any, *, given: bool = False) -> Any:
    """JSON data with every presigned URL cut before its query (see the module; the cut of a
    text is :func:`~aiportrait._wire.signing.public_text`); ``given``: inside a request,
    where only the uploaders' URLs are."""
    if isinstance(data, PresignedURL):
        return data.public + UPLOADED if given else data.public
    if isinstance(data, str):
        return data if given else public_text(data)
    if isinstance(data, RequestData):
        return {k: unsigned_data(v, given=True) for k, v in data.items()}
    if isinstance(data, dict):
        return {k: unsigned_data(v, given=given) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [unsigned_data(v, given=given) for v in data]
    return data
