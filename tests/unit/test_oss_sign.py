"""The emulator's OSS signature check reads a query the same however the sender encoded it."""

from __future__ import annotations

from aiportrait.emulator._oss_sign import canonical_query


def test_canonical_query_is_the_same_however_the_sender_encoded_it() -> None:
    assert canonical_query("b=1%2F2&a") == canonical_query("a&b=1/2") == "a&b=1%2F2"
