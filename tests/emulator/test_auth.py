"""The gateway's signature check, as a pure function, against the protocol's vectors."""

from __future__ import annotations

import pytest

from aiportrait.emulator._auth import (
    REQUEST_TIME_ERROR,
    AppConfig,
    check_signature,
    identify,
    signature,
)
from aiportrait.emulator._errors import ApiError
from aiportrait.emulator._wire import NOT_FOUND_APPID, SIGN_ERROR

APPS = {"test-app": AppConfig("test-app", "test-token")}

# PROTOCOL.md 1.2, "Test vectors".
VECTORS = [
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
        b'{"action":"AIGCImageCheck","images":["https://x.oss/a.jpg?Expires\\u003d1\\u0026'
        b'Signature\\u003da%2Bb\\u0026k\\u003d\\u003cv\\u003e","https://x/b.jpg"],"model_name":""}',
        "4105aea7092474fe22ca253a8c353dbcad2028efc267c8692eb385cce46505ba",
    ),
    (
        "POST",
        "/api/v1/aigc_images/check",
        b'{\n    "action": "AIGCImageCheck",\n    "images": [\n        "https:\\/\\/x\\/b.jpg"\n'
        b'    ],\n    "model_name": "",\n    "configure": {}\n}',
        "5f82498ebf24c46f4981e4d6db7a22baae7199fb0bd1d555b8bcbc2568d76168",
    ),
]


def verify(
    apps: dict[str, AppConfig],
    *,
    method: str,
    path: str,
    body: bytes,
    authorization: str | None,
    request_time: str | None,
    now: float,
    skew: float | None,
) -> AppConfig:
    """Both halves of the gateway's check, as it runs them: the app named by the header, then
    the signature over the body and the request time."""
    app, sent = identify(apps, authorization)
    check_signature(
        app, sent, method=method, path=path, body=body, request_time=request_time, now=now,
        skew=skew,
    )  # fmt: skip
    return app


@pytest.mark.parametrize(("method", "path", "body", "expected"), VECTORS)
def test_signature_matches_protocol_vectors(
    method: str, path: str, body: bytes, expected: str
) -> None:
    assert signature("test-token", method, path, body) == expected
    app = verify(
        APPS,
        method=method,
        path=path,
        body=body,
        authorization=f"test-app:{expected}",
        request_time=None,
        now=0.0,
        skew=900.0,
    )
    assert app.app_id == "test-app"


def _verify(authorization: str | None, *, request_time: str | None = None) -> AppConfig:
    return verify(
        APPS,
        method="POST",
        path="/p",
        body=b"{}",
        authorization=authorization,
        request_time=request_time,
        now=1_000_000.0,
        skew=300.0,
    )


GOOD = "test-app:" + signature("test-token", "POST", "/p", b"{}")


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, NOT_FOUND_APPID),
        ("", NOT_FOUND_APPID),
        ("no-colon", NOT_FOUND_APPID),
        ("other-app:" + "0" * 64, NOT_FOUND_APPID),
        ("test-app:" + "0" * 64, SIGN_ERROR),
        ("test-app:", SIGN_ERROR),
        (GOOD.upper().replace("TEST-APP", "test-app"), SIGN_ERROR),
        (GOOD + "0", SIGN_ERROR),
    ],
)
def test_gateway_refusals(authorization: str | None, error: tuple[int, str, str]) -> None:
    with pytest.raises(ApiError) as info:
        _verify(authorization)
    assert (info.value.status, info.value.code, info.value.message) == error


def test_request_time_is_optional_but_checked_when_present() -> None:
    assert _verify(GOOD).app_id == "test-app"
    assert _verify(GOOD, request_time="1000100").app_id == "test-app"
    for bad in ("999000", "1000301", "soon", "nan", ""):
        with pytest.raises(ApiError) as info:
            _verify(GOOD, request_time=bad)
        assert (info.value.status, info.value.code, info.value.message) == REQUEST_TIME_ERROR


def test_signature_is_checked_before_request_time() -> None:
    with pytest.raises(ApiError) as info:
        _verify("test-app:" + "0" * 64, request_time="soon")
    assert info.value.message == SIGN_ERROR[2]


def test_app_config_repr_hides_token() -> None:
    assert "test-token" not in repr(APPS["test-app"])
