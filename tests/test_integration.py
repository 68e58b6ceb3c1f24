"""The client against the emulator over real loopback HTTP: every call and every documented
error the emulator can produce, each arriving as its own class from the tree.

(The 469 diffusion and fusion errors and the template-process error have no stand-in in the
emulator, which runs no diffusion; their mapping is covered in ``test_errors.py``.)
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait import CreateConfig, PollPolicy, Session
from aiportrait.emulator import Emulator
from aiportrait.errors import PhotoCountWarning
from aiportrait.samples import SamplePhotos, sample_photos

FAST = PollPolicy(first=0.02, cap=0.05, jitter=0.0, timeout=30)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SamplePhotos]:
    from PIL import Image

    folder = tmp_path_factory.mktemp("media")
    names = sample_photos(folder)
    Image.new("RGB", (640, 640), (90, 140, 200)).save(folder / "flat.png")
    (folder / "not_an_image.jpg").write_bytes(b"this is not an image")
    return folder, names


@pytest.fixture
async def emu(media: tuple[Path, SamplePhotos], tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.05, serve_dir=media[0], data_dir=tmp_path / "d") as e:
        yield e


@pytest.fixture
async def trained(emu: Emulator, media: tuple[Path, SamplePhotos]) -> AsyncIterator[Any]:
    names = media[1]
    async with emu.session(poll=FAST) as session:
        photos = [emu.media_url(n) for n in names.astronaut[:2]]
        with pytest.warns(PhotoCountWarning):  # two photos, here and below: trainings stay quick
            job = await session.train(photos)
        result = await session.wait(job)
        yield session, result.model_id, names


async def test_every_call(emu: Emulator, trained: Any) -> None:
    session, model_id, names = trained
    url = emu.media_url
    report = await session.check_images([url(n) for n in names.astronaut[:2]])
    assert report.ok
    assert len(report.results) == 2
    with pytest.warns(PhotoCountWarning):
        job = await session.train([url(n) for n in names.hopper[:2]], sdxl=True)
    updates = [u.state async for u in session.watch(job)]
    assert updates[-1] is aiportrait.JobState.SUCCESS
    other = (await session.wait(job)).model_id
    solo = await session.create(model_id, url(names.templates[0]),
                                config=CreateConfig(more_like_me=0.9))  # fmt: skip
    group = await session.create_group([other, model_id], url(names.templates[2]))
    ref = await session.create_from_reference(url(names.hopper[0]), url(names.templates[1]),
                                              ipa_weight=0.7)  # fmt: skip
    prompt = await session.create_from_prompt("a garden", model_id=model_id, sdxl=True)
    from PIL import Image

    for portrait, size in ((solo, (768, 900)), (group, (1200, 700)), (ref, (768, 768))):
        with Image.open(io.BytesIO(portrait.image)) as img:
            assert img.size == size == (portrait.width, portrait.height)
    assert prompt.format == "png"
    with pytest.warns(PhotoCountWarning):
        scene = await session.train([url(n) for n in names.hopper[:2]], sdxl=True,
                                    scene_lora=True, scene_prompts=["a", "b"])  # fmt: skip
    await session.wait(scene)
    scened = await session.create_from_prompt("a beach", model_id=model_id, sdxl=True,
                                              scene_id=scene.model_id)  # fmt: skip
    assert scened.format == "png"
    assert (await session.get_job(job)).done
    batch_job = emu.add_synthetic_job(0.0, batch_id=7)
    (listed,) = await session.get_batch_jobs(7)
    assert listed.job_id == batch_job
    assert await session.get_batch_jobs(8) == ()


async def test_gateway_errors(emu: Emulator, media: tuple[Path, SamplePhotos]) -> None:
    url = emu.media_url(media[1].astronaut[0])
    async with Session(emu.url, "no-such-app", "t") as s:
        with pytest.raises(aiportrait.errors.UnknownApp) as info:
            await s.check_images([url])
    assert (info.value.status, info.value.code) == (400, "PARAMETER_ERROR")
    async with Session(emu.url, emu.app_id, "wrong") as s:
        with pytest.raises(aiportrait.errors.SignatureMismatch):
            await s.check_images([url])
    emu.add_app("no-xl", "tok", sdxl=False)
    async with Session(emu.url, "no-xl", "tok") as s:
        with (
            pytest.raises(aiportrait.errors.ModelNotDeployed) as deployed,
            pytest.warns(PhotoCountWarning),
        ):
            await s.train([url], sdxl=True)
    assert deployed.value.status == 404
    emu.add_app("small", "tok", quota=1)
    async with Session(emu.url, "small", "tok") as s:
        await s.check_images([url])
        with pytest.raises(aiportrait.errors.QuotaExceeded) as quota:
            await s.check_images([url])
    assert quota.value.code == "EXCEEDED_QUOTA_ERROR"


async def test_create_errors(emu: Emulator, trained: Any) -> None:
    session, model_id, names = trained
    url = emu.media_url
    errors = aiportrait.errors
    cases: list[tuple[Any, type[errors.CreateError], int]] = [
        (session.create(model_id, url("not_an_image.jpg")), errors.TemplateDecodeError, 462),
        (session.create(model_id, url("flat.png")), errors.NoFaceInTemplate, 462),
        (session.create("no-such-model", url(names.templates[0])), errors.ModelIdError,
         462),
        (session.create_group([model_id], url(names.templates[2])),
         errors.FaceCountMismatch, 469),
        (session.create(model_id, url(names.templates[0]), config={"more_like_me": "lots"}),
         errors.InvalidInput, 462),
        (session.create_from_reference(url("flat.png"), url(names.templates[0])),
         errors.ModelNotTrained, 462),
    ]  # fmt: skip
    for call, cls, status in cases:
        with pytest.raises(cls) as info:
            await call
        assert info.value.status == status
        assert info.value.code == "error"
        assert info.value.request_id


async def test_model_not_trained_and_face_id_decode(
    emu: Emulator, media: tuple[Path, SamplePhotos]
) -> None:
    names = media[1]
    template = emu.media_url(names.templates[0])
    async with Emulator(train_seconds=30, serve_dir=media[0]) as slow:
        async with slow.session() as session:
            with pytest.warns(PhotoCountWarning):
                job = await session.train([slow.media_url(names.astronaut[0])])
            with pytest.raises(aiportrait.errors.ModelNotTrained):
                await session.create(job.model_id, slow.media_url(names.templates[0]))
    assert emu.data_dir is not None
    broken = emu.data_dir / "models" / "broken-model"
    broken.mkdir(parents=True)
    (broken / "model.npz").write_bytes(b"garbage")
    async with emu.session() as session:
        with pytest.raises(aiportrait.errors.FaceIdDecodeError) as info:
            await session.create("broken-model", template)
    assert info.value.status == 500


async def test_a_failed_training_raises_job_failed(
    emu: Emulator, media: tuple[Path, SamplePhotos]
) -> None:
    async with emu.session(poll=FAST) as session:
        with pytest.warns(PhotoCountWarning):
            job = await session.train([emu.media_url("flat.png")])
        with pytest.raises(aiportrait.JobFailed) as info:
            await session.wait(job)
    assert "preprocess" in info.value.message
    assert info.value.job_id == job.job_id
