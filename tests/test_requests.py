"""Requests are immutable values: validated when built, JSON and back without loss, sent as is."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from typing import Any

import pytest

import aiportrait
from aiportrait import (
    BatchQuery,
    CheckRequest,
    CreateConfig,
    CreateRequest,
    GroupCreateRequest,
    JobQuery,
    PromptCreateRequest,
    ReferenceCreateRequest,
    Session,
    TrainRequest,
    request_from_dict,
)
from tests._mock import mocked, sent

EVERY_KIND: list[Any] = [
    CheckRequest(["https://x/a.jpg", "https://x/b.jpg"]),
    TrainRequest(["https://x/a.jpg"], sdxl=True, scene_lora=True, scene_prompts=["a beach"]),
    CreateRequest("m-1", "https://t/x.jpg", config=CreateConfig(lora_weights=0.8, extra=None)),
    CreateRequest("m-1", "t2i_generate", sdxl=True, config={"t2i_prompt": "p", "new_key": 1}),
    GroupCreateRequest(["m-1", "m-2"], "https://t/g.jpg"),
    ReferenceCreateRequest("https://r/me.jpg", "https://t/x.jpg", ipa_weight=0.7),
    PromptCreateRequest(prompt="a portrait", model_id="m-1", scene_id="s-1", sdxl=True),
    JobQuery(12),
    BatchQuery(3),
]


@pytest.mark.parametrize("request_", EVERY_KIND, ids=lambda r: type(r).__name__)
def test_every_request_goes_to_json_and_back_without_loss(request_: Any) -> None:
    data = json.loads(json.dumps(request_.to_dict()))
    again = request_from_dict(data)
    assert again == request_
    assert type(again) is type(request_)
    assert again.payload() == request_.payload()
    assert again.path == request_.path


def test_requests_are_validated_when_built() -> None:
    with pytest.raises(aiportrait.InvalidArgument, match="images"):
        CheckRequest([])
    with pytest.raises(aiportrait.InvalidArgument, match="scene_lora"):
        TrainRequest(["https://x/a.jpg"], scene_lora=True, scene_prompts=["x"])
    with pytest.raises(aiportrait.InvalidArgument, match="template"):
        CreateRequest("m", "not a url")
    with pytest.raises(aiportrait.InvalidArgument, match="exactly one"):
        PromptCreateRequest(prompt="p")
    with pytest.raises(aiportrait.InvalidArgument, match="job"):
        JobQuery(-1)
    with pytest.raises(aiportrait.InvalidArgument, match="type"):
        request_from_dict({"type": "delete_everything"})
    with pytest.raises(aiportrait.InvalidArgument, match="unknown fields"):
        request_from_dict({"type": "job", "job_id": 1, "extra": 2})


def test_requests_are_immutable_and_know_their_kind() -> None:
    import attrs

    kinds = [r.kind for r in EVERY_KIND]
    assert kinds == ["read", "train", "create", "create", "create", "create", "create", "read",
                     "read"]  # fmt: skip
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        EVERY_KIND[2].model_id = "other"


async def test_send_runs_a_request_as_the_endpoint_method_does() -> None:
    url = "https://h.example/api/v1/aigc_images/create"
    with mocked() as mock:
        mock.post(url, payload={"code": "OK", "data": {"image": "aGk="}}, repeat=True)
        async with Session("h.example", "a", "t") as session:
            request = ReferenceCreateRequest("https://r/me.jpg", "https://t/x.jpg", ipa_weight=0.7)
            await session.send(request)
            await session.create_from_reference("https://r/me.jpg", "https://t/x.jpg",
                                                ipa_weight=0.7)  # fmt: skip
        by_send, by_method = sent(mock)
    assert by_send["data"] == by_method["data"]
    assert json.loads(by_send["data"]) == request.payload()


def test_importing_aiportrait_loads_no_batch_journal_progress_or_rare_path_code() -> None:
    # cattrs: the first unusual answer or to_dict; difflib: the first unknown configure key;
    # the hook event classes: the first hook; aiolimiter: the first requests-per-second rate;
    # the create requests and their config: the first create (or a name that needs them); the
    # watcher, budgets, local inputs and the dry run's values: their first use.
    code = (
        "import sys, aiportrait; "
        "print(sorted(m for m in ('sqlite3', 'aiportrait._batches.batch', "
        "'aiportrait._batches.journal', 'aiportrait._display.progress', 'cattrs', 'difflib', "
        "'aiportrait.hooks.events', 'aiolimiter', 'aiportrait._requests.creates', "
        "'aiportrait._requests.catalog', 'aiportrait.config', 'aiportrait._jobs.watch', "
        "'aiportrait._retrying.budget', 'aiportrait._local.resolve', 'aiportrait._local.photos', "
        "'aiportrait._batches.planned') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert callable(aiportrait.watch_with_progress)  # still there, loaded on first use
    assert aiportrait.Outcome.__name__ == "Outcome"
    assert aiportrait.hooks.CallStarted.__name__ == "CallStarted"
    assert aiportrait.CreateConfig is aiportrait.config.CreateConfig
    assert aiportrait.CreateRequest in typing.get_args(aiportrait.AnyCreateRequest)
    assert aiportrait.JobQuery in typing.get_args(aiportrait.AnyRequest)
    assert aiportrait.JobWatch.__name__ == "JobWatch"
    assert aiportrait.Budget.__name__ == "Budget"
    assert aiportrait.models.BatchPlan.__name__ == "BatchPlan"


@pytest.mark.parametrize(
    ("method", "cls"),
    [
        ("check_images", aiportrait.CheckRequest),
        ("train", aiportrait.TrainRequest),
        ("create", aiportrait.CreateRequest),
        ("create_group", aiportrait.GroupCreateRequest),
        ("create_from_reference", aiportrait.ReferenceCreateRequest),
        ("create_from_prompt", aiportrait.PromptCreateRequest),
        ("get_job", aiportrait.JobQuery),
        ("get_batch_jobs", aiportrait.BatchQuery),
    ],
)
def test_each_endpoint_method_takes_its_request_class_arguments(method: str, cls: type) -> None:
    """The request class holds the arguments; the Session method, its sync twin and the
    command line build it and cannot drift from it."""
    import inspect

    import attrs

    import aiportrait.sync

    fields = [a.name for a in attrs.fields(cls) if a.init]
    aliases = {"job_id": "job", "batch_id": "batch_id"}  # a query takes a TrainJob too
    for session in (aiportrait.Session, aiportrait.sync.Session):
        params = list(inspect.signature(getattr(session, method)).parameters)[1:]
        params = [p for p in params if p != "local"]  # check_images: the on-machine check
        assert params == [aliases.get(f, f) for f in fields], (session, method)


async def test_a_request_with_local_inputs_is_sent_with_the_urls_of_their_uploads(
    tmp_path: Any,
) -> None:
    Image = pytest.importorskip("PIL.Image")
    template = tmp_path / "t.png"
    Image.new("RGB", (600, 600), (200, 10, 10)).save(template)
    stored: dict[str, bytes] = {}

    async def upload(data: bytes, content_type: str, key: str) -> str:
        stored[key] = data
        return f"https://bucket.example/{key}"

    request = aiportrait.CreateRequest("model-1", template)
    assert request.local and list(request.local_inputs()) == [("template", 0)]
    url = "https://h.example/api/v1/aigc_images/create"
    with mocked() as mock:
        mock.post(url, payload={"code": "OK", "data": {"image": "aGk="}})
        async with aiportrait.Session("h.example", "a", "t", uploader=upload) as session:
            await session.send(request)
        (call,) = sent(mock)
    (key,) = stored
    assert key.endswith(".png") and stored[key].startswith(b"\x89PNG")
    assert json.loads(call["data"])["template_image"] == f"https://bucket.example/{key}"


def test_a_str_subclass_is_a_url_as_a_str_is() -> None:
    class Url(str):
        pass

    template = Url("https://t.example/x.jpg")
    request = aiportrait.CreateRequest("m-1", template)
    assert not request.local
    assert request.payload()["template_image"] == template
    train = aiportrait.TrainRequest([Url("https://p.example/a.jpg"), "https://p.example/b.jpg"])
    assert not train.local and train.payload()["images"][0] == "https://p.example/a.jpg"


def test_a_create_request_with_a_plain_config_pickles_and_stays_read_only() -> None:
    import pickle

    from aiportrait.errors import SubmitOutcomeUnknown

    request = aiportrait.CreateRequest("m", "https://x.example/t.jpg", config={"seed": 3})
    assert pickle.loads(pickle.dumps(request)) == request
    assert repr(request).endswith("config={'seed': 3})")
    with pytest.raises(TypeError):
        request.config["seed"] = 4  # type: ignore[index]
    # an error that carries it pickles too (an error tracker or a process pool sends it on)
    err = SubmitOutcomeUnknown("lost", action="create", request=request.to_dict())
    assert pickle.loads(pickle.dumps(err)).request == err.request
