"""The hot path's shortcuts answer exactly as the general code they skip (hypothesis)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiportrait
from aiportrait import _args
from aiportrait._requests.images import all_strings, image_list
from aiportrait._wire import codec as _codec
from aiportrait.models import CheckVerdict


def _reference_url_problem(value: object) -> str:
    """url_problem as it was written first: everything through urlsplit."""
    if not isinstance(value, str):
        return f"not a string but {type(value).__name__}"
    if not value.strip():
        return "empty"
    if value != value.strip():
        return "leading or trailing white space"
    if value.startswith("data:"):
        return "" if "," in value else "a data: URL without ','"
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # "Invalid IPv6 URL": a problem to say, not a crash
        return str(exc)
    if parts.scheme.lower() not in {"http", "https", "data", "file", "oss"}:
        return "no http(s), oss, file or data scheme"
    if parts.scheme.lower() != "file" and not parts.netloc:
        return "no host"
    return ""


def _outcome(call: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", call(*args)
    except Exception as exc:  # the same exception type and text either way
        return type(exc).__name__, str(exc)


URL_PARTS = st.sampled_from(
    ["http", "HTTPS", "oss", "file", "data", "ftp", "h1", "1h", ":", "//", "/", "?", "#", "@",
     "[", "]", "::1", "x", "a.b", ":80", " ", "\t", "\n", "\x00", "\x1f", "\x7f", "é", "\\",
     ",", "%20", "+", "-", "."]
)  # fmt: skip
URLS = st.lists(URL_PARTS, max_size=8).map("".join) | st.text(max_size=30)


@settings(max_examples=3000)
@given(URLS)
def test_url_problem_answers_as_urlsplit(value: str) -> None:
    assert _outcome(_args.url_problem, value) == _outcome(_reference_url_problem, value)


@settings(max_examples=3000)
@given(URLS)
def test_a_plain_url_has_no_problem(value: str) -> None:
    if _args._PLAIN_URLS.fullmatch(value):
        assert _reference_url_problem(value) == ""


def _reference_url_list(values: list[Any]) -> list[Any]:
    for i, value in enumerate(values):
        problem = _reference_url_problem(value)
        if problem:
            short = _args.short(value)
            raise aiportrait.InvalidArgument(f"images[{i}]={short} is not a URL: {problem}")
    return values


PLAIN = st.sampled_from(["https://x/0.jpg", "oss://b/k", "HTTP://h:1/p?q"])


@settings(max_examples=2000)
@given(st.lists(PLAIN | URLS | st.integers(), min_size=1, max_size=4))
def test_url_list_answers_as_each_url_checked_alone(values: list[Any]) -> None:
    joined = [v + "\n" + w if isinstance(v, str) and isinstance(w, str) else v
              for v, w in zip(values, values[1:] + values[:1], strict=True)]  # fmt: skip
    for case in (values, joined):
        assert _outcome(_args.url_list, "images", case) == _outcome(_reference_url_list, case)


@settings(max_examples=2000)
@given(st.lists(PLAIN | URLS, min_size=1, max_size=5))
def test_image_list_of_strings_answers_as_each_url_checked_alone(values: list[str]) -> None:
    joined = [v + "\n" + w for v, w in zip(values, values[1:] + values[:1], strict=True)]
    for case in (values, joined, tuple(values)):
        fast = _outcome(image_list, "images", case)
        assert fast == _outcome(lambda c: tuple(_reference_url_list(list(c))), case)


class _Text(str):
    pass


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["https://x/0.jpg", "oss://b/k"], True),
        ((_Text("https://x/0.jpg"),), True),
        (["https://x/0.jpg", b"jpeg"], False),
        ([Path("a.jpg")], False),
        (["https://x/0.jpg", None], False),
    ],
)
def test_all_strings_takes_strings_only(values: Any, expected: bool) -> None:
    assert all_strings(values) is expected
    assert all_strings(values) is all(isinstance(v, str) for v in values)


@pytest.mark.parametrize(
    "value", ["https://x/0.jpg", "HTTP://a.b:80/p?q#f", "oss://bucket/key", "https://h\\x/y"]
)
def test_usual_urls_take_the_shortcut(value: str) -> None:
    assert _args._PLAIN_URLS.fullmatch(value)
    assert _args.url_list("images", [value]) == [value]


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=9)
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from(["", "success", "Image decode error.", "1", "x", " a  b "])
)
ITEMS = (
    st.dictionaries(
        st.sampled_from(
            ["url", "code", "message", "frontal", "emulator_detail", "detail", "other"]
        ),
        SCALARS,
    )
    | SCALARS
)


def _same(fast: tuple[str, Any], slow: tuple[str, Any]) -> None:
    assert fast[0] == slow[0]
    if fast[0] == "ok" and isinstance(fast[1], aiportrait.ImageCheck):
        assert fast[1] == slow[1]
        assert fast[1].code.name == slow[1].code.name
    else:
        assert fast == slow


@settings(max_examples=2000)
@given(ITEMS)
def test_image_check_shortcut_answers_as_the_converter(raw: Any) -> None:
    _same(
        _outcome(_codec._image_check, raw, "check_results", 3),
        _outcome(_codec._image_check_slow, raw, "check_results[3]"),
    )


@settings(max_examples=1000)
@given(SCALARS)
def test_numbers_strings_and_ids_answer_as_the_converter(value: Any) -> None:
    fast = _outcome(_codec._float_of, value, "x")
    slow = _outcome(_codec._structure, value if value is not None else 0.0, float, "x")
    assert fast == slow
    assert _outcome(_codec._str_of, value, "x") == _outcome(_codec._structure, value, str, "x")
    optional = _outcome(_codec._optional_str, value, "x")
    if value is None:
        assert optional == ("ok", "")
    else:
        assert optional == _outcome(_codec._structure, value, str, "x")


@settings(max_examples=1000)
@given(SCALARS)
def test_job_ids_and_states_answer_as_the_converter(value: Any) -> None:
    def slow_id(v: Any) -> int:
        job_id = _codec._structure(v, int, "id")
        if not 0 <= job_id <= _codec.JOB_ID_MAX:
            raise aiportrait.errors.MalformedResponse(
                f"id is outside the documented range of job ids (0 to {_codec.JOB_ID_MAX})"
            )
        return job_id

    assert _outcome(_codec._job_id, value, "id") == _outcome(slow_id, value)
    job = {"job": {"id": 1, "state": value}}
    fast = _outcome(_codec.decode_job, job, 1, "r")
    slow = _outcome(_codec._structure, value, aiportrait.JobState, "job state")
    assert fast[0] == slow[0]
    if fast[0] == "ok":
        assert fast[1].state == slow[1]


def test_the_models_the_codec_fills_in_are_those_their_classes_build() -> None:
    """The codec sets the models' slots itself (cheaper than attrs' frozen __init__): the
    values are equal, hash, show, pickle and stay frozen as those built by the classes."""
    verdict = {"url": "https://x/1.jpg", "code": 1, "message": "success", "frontal": True}
    data = {"check_results": [verdict], "images": ["https://x/1.jpg"], "cost_time": 0.5}
    result = json.dumps({"model_id": "m-1", "cost_time": 3, "states": [verdict]})
    job = {"job": {"id": 7, "state": 2, "message": "success", "app_id": "a", "Result": result}}
    check = aiportrait.ImageCheck("https://x/1.jpg", CheckVerdict.SUCCESS, "success", True)
    built: list[tuple[Any, object]] = [
        (
            _codec.decode_check(data, "r"),
            aiportrait.CheckReport((check,), ("https://x/1.jpg",), 0.5, "r"),
        ),
        (
            _codec.decode_job(job, 7, "r"),
            aiportrait.Job(
                7, aiportrait.JobState.SUCCESS, "success", "a", result,
                aiportrait.TrainResult("m-1", 3.0, (check,)), "r",
            ),
        ),
    ]  # fmt: skip
    for decoded, expected in built:
        assert decoded == expected
        assert hash(decoded) == hash(expected)
        assert repr(decoded) == repr(expected)
        assert pickle.loads(pickle.dumps(decoded)) == expected
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            decoded.request_id = "x"


def test_the_converter_is_built_on_first_use() -> None:
    assert _codec._get_converter() is _codec.converter
    assert _codec.converter.structure(1, CheckVerdict) is CheckVerdict.SUCCESS


JSON_TEXT = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
).map(json.dumps)
BODIES = (
    JSON_TEXT.map(str.encode)
    | JSON_TEXT.map(lambda t: (" " + t + "\n").encode())
    | JSON_TEXT.map(lambda t: t.encode("utf-16"))
    | JSON_TEXT.map(lambda t: t.encode("utf-8-sig"))
    | st.binary(max_size=40)
    | st.lists(st.sampled_from(["{", "}", '"a"', ":", "1", ",", " ", "\\ud800", "é"]), max_size=9)
    .map("".join)
    .map(lambda t: t.encode("utf-8", "surrogatepass"))
)


@settings(max_examples=3000)
@given(BODIES)
def test_loads_answers_as_json_loads(body: bytes) -> None:
    assert _outcome(_codec.loads, body) == _outcome(json.loads, body)
    text = body.decode("utf-8", "replace")
    assert _outcome(_codec.loads, text) == _outcome(json.loads, text)
    assert _outcome(_codec.loads, bytearray(body)) == _outcome(json.loads, bytearray(body))
