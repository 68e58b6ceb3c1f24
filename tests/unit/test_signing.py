"""The signer reproduces every Authorization the official SDKs produce."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from aiportrait._wire.signing import PresignedURL, authorization, presigned, sign, sign_string


def test_every_go_vector_authorization(vectors: list[dict[str, Any]]) -> None:
    assert len(vectors) == 18
    for v in vectors:
        body = base64.b64decode(v["body_b64"])
        assert hashlib.md5(body).hexdigest() == v["body_md5"], v["name"]
        assert sign_string(v["method"], v["path"], body) == v["sign_string"], v["name"]
        got = authorization(v["app_id"], v["token"], v["method"], v["path"], body)
        assert got == v["authorization"] == v["headers"]["Authorization"], v["name"]


# The other SDKs' vectors from PROTOCOL.md (app "test-app", token "test-token").
_JAVA_CHECK = (
    '{"action":"AIGCImageCheck","images":["https://x.oss/a.jpg?Expires\\u003d1\\u0026'
    'Signature\\u003da%2Bb\\u0026k\\u003d\\u003cv\\u003e","https://x/b.jpg"],"model_name":""}'
)
_PHP_CHECK = (
    '{\n    "action": "AIGCImageCheck",\n    "images": [\n        "https:\\/\\/x\\/b.jpg"\n'
    '    ],\n    "model_name": "",\n    "configure": {}\n}'
)


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        (
            "POST",
            "/api/v1/async_jobs/13890",
            b"",
            "7be5767f44780a648aaf1683eb188bbaa789e804dc35e983cb3951614a8409e9",
        ),
        (
            "POST",
            "/api/v1/async_jobs/13890",
            b"{}",
            "4d42c90990b2a45c7304d2399a2f9a3c331817d387b04bcd8174697574200504",
        ),
        (
            "GET",
            "/api/v1/batch_jobs/3",
            b"",
            "78d20a7d4b2b4678c429ff526fe79ac372bd2680e0260085726af871dad01d98",
        ),
        (
            "POST",
            "/api/v1/aigc_images/check",
            _JAVA_CHECK.encode(),
            "4105aea7092474fe22ca253a8c353dbcad2028efc267c8692eb385cce46505ba",
        ),
        (
            "POST",
            "/api/v1/aigc_images/check",
            _PHP_CHECK.encode(),
            "5f82498ebf24c46f4981e4d6db7a22baae7199fb0bd1d555b8bcbc2568d76168",
        ),
    ],
)
def test_protocol_table_vectors(method: str, path: str, body: bytes, expected: str) -> None:
    assert sign("test-token", method, path, body) == expected


def test_signature_is_lowercase_hex_and_method_case_insensitive() -> None:
    sig = sign("t", "post", "/p", b"x")
    assert sig == sign("t", "POST", "/p", b"x")
    assert len(sig) == 64
    assert sig == sig.lower()


def test_a_presigned_url_made_from_one_keeps_its_query_and_its_source() -> None:
    url = "https://b.oss.example/aiportrait/a.jpg?x-oss-signature-version=V4&x-oss-signature=ab"
    first = PresignedURL(url, source="me/a.jpg")
    again = PresignedURL(first)
    assert again.reveal() == url  # not the public form its str() gives
    assert again.source == "me/a.jpg"
    assert PresignedURL(first, source="other.jpg").source == "other.jpg"
    assert presigned(first) is first
