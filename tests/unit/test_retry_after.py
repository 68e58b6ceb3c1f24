"""The ``Retry-After`` header's forms (seconds, HTTP dates, garbage), read by the transport."""

from __future__ import annotations

from aiportrait._wire.http import parse_retry_after


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
