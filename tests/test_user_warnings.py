"""Warnings about what is sent anyway: a training outside the documented 5 to 20 photos."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from aioresponses import CallbackResult

import aiportrait
from aiportrait.errors import AIPortraitWarning, PhotoCountWarning
from tests._mock import ShimResponse, mocked, sent

TRAIN_URL = "https://h.example/api/v1/aigc_images/train"
ACCEPTED = {"code": "OK", "data": {"job_id": 7, "model_id": "m-7"}}


def _photos(count: int) -> list[str]:
    return [f"https://p.example/{i}.jpg" for i in range(count)]


@pytest.mark.parametrize(
    ("count", "said"), [(1, "training on 1 photo,"), (4, "4 photos,"), (21, "21 photos,")]
)
async def test_train_warns_before_the_charged_call_and_sends_the_photos_as_given(
    count: int, said: str
) -> None:
    seen_when_sent: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        def answer(_url: Any, **_kwargs: Any) -> CallbackResult:
            seen_when_sent.append(len(caught))
            return CallbackResult(payload=ACCEPTED, response_class=ShimResponse)

        with mocked() as mock:
            mock.post(TRAIN_URL, callback=answer)
            async with aiportrait.Session("h.example", "a", "t") as session:
                job = await session.train(_photos(count))
            (request,) = sent(mock)
    assert job == aiportrait.TrainJob(7, "m-7")
    (warning,) = [w for w in caught if issubclass(w.category, PhotoCountWarning)]
    assert said in str(warning.message)
    assert "the documentation asks for 5 to 20 photos of one person" in str(warning.message)
    assert warning.filename == __file__  # shown where the caller called train()
    assert seen_when_sent == [1]  # the warning came before the request was sent
    assert json.loads(request["data"])["images"] == _photos(count)  # nothing sent differently
    assert issubclass(PhotoCountWarning, AIPortraitWarning)
    assert issubclass(PhotoCountWarning, UserWarning)


@pytest.mark.parametrize("count", [5, 20])
async def test_train_with_a_documented_photo_count_does_not_warn(count: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PhotoCountWarning)
        with mocked() as mock:
            mock.post(TRAIN_URL, payload=ACCEPTED)
            async with aiportrait.Session("h.example", "a", "t") as session:
                await session.train(_photos(count))


async def test_an_invalid_training_raises_without_warning_first() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PhotoCountWarning)
        async with aiportrait.Session("h.example", "a", "t") as session:
            with pytest.raises(aiportrait.InvalidArgument):
                await session.train(["not a url"])


def test_job_timeout_names_the_last_state() -> None:
    assert str(aiportrait.JobTimeout(3, 1, 2.0)) == (
        "job 3 did not end within 2.0s (last state RUNNING)"
    )
    assert "(last state UNKNOWN_7)" in str(aiportrait.JobTimeout(3, 7, 2.0))
    assert "(no state seen)" in str(aiportrait.JobTimeout(3, None, 2.0))
    assert aiportrait.JobTimeout(3, 1, 2.0).last_state == 1  # the attribute stays the number
