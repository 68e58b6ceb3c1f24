"""Models: tolerant enums, report helpers, portrait sniffing, repr hygiene, atomic save."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path

import pytest

import aiportrait
from aiportrait import CheckReport, CheckVerdict, ImageCheck, JobState, Portrait, TrainJob
from tests._mock import Fake


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x00" * (3 * width) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xda\x00\x02" + b"\xff\xd9"


def test_unknown_enum_values_do_not_crash() -> None:
    verdict = CheckVerdict(9)
    assert verdict == 9
    assert verdict.name == "UNKNOWN_9"
    assert not verdict.known
    assert CheckVerdict.SUCCESS.known
    state = JobState(7)
    assert not state.terminal
    assert not state.known
    assert JobState(2).terminal
    assert JobState(3).terminal
    assert not JobState(0).terminal
    with pytest.raises(ValueError, match="valid"):
        CheckVerdict("x")


def test_check_report_helpers() -> None:
    good = ImageCheck("https://a/1.jpg", CheckVerdict.SUCCESS, "success", True)
    bad = ImageCheck("https://a/2.jpg", CheckVerdict.FACE_COUNT, "Number of face is not 1.")
    report = CheckReport(results=(good, bad))
    assert not report.ok
    assert report.failed == (bad,)
    assert report.passed == ("https://a/1.jpg",)
    assert CheckReport(results=(good,)).ok
    assert not CheckReport(results=()).ok


@pytest.mark.parametrize(
    ("data", "fmt", "size"),
    [
        (_png(640, 480), "png", (640, 480)),
        (_jpeg(800, 600), "jpeg", (800, 600)),
        (
            b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + b"\x7f\x02\x00\xdf\x01\x00",
            "webp",
            (640, 480),
        ),
        (
            b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f"
            + (639 | (479 << 14)).to_bytes(4, "little"),
            "webp",
            (640, 480),
        ),
        (
            b"RIFF\x00\x00\x00\x00WEBPVP8 \x00\x00\x00\x00\x00\x00\x00\x9d\x01\x2a"
            + struct.pack("<HH", 640, 480),
            "webp",
            (640, 480),
        ),
        (b"GIF89a", "unknown", (None, None)),
        (b"\xff\xd8\xff", "jpeg", (None, None)),
        (b"\x89PNG\r\n\x1a\n", "png", (None, None)),
    ],
)
def test_sniff(data: bytes, fmt: str, size: tuple[int | None, int | None]) -> None:
    info = Portrait.from_bytes(data)
    assert (info.format, (info.width, info.height)) == (fmt, size)


def test_sniff_real_files() -> None:
    pil = pytest.importorskip("PIL.Image")
    for fmt, name in (("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")):
        buf = io.BytesIO()
        pil.new("RGB", (321, 123)).save(buf, format=fmt)
        info = Portrait.from_bytes(buf.getvalue())
        assert (info.format, info.width, info.height) == (name, 321, 123)


def test_portrait_repr_hides_image_and_save_is_atomic(tmp_path: Path) -> None:
    data = _png(3, 2)
    portrait = Portrait.from_bytes(data, cost_time=1.5, request_id="r9")
    assert (portrait.format, portrait.width, portrait.height) == ("png", 3, 2)
    text = repr(portrait)
    assert f"<{len(data)} bytes>" in text
    assert base64.b64encode(data).decode()[:12] not in text
    path = portrait.save(tmp_path / "sub" / "out")
    assert path.name == "out.png"
    assert path.read_bytes() == data
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]
    assert portrait._repr_png_() == data
    assert portrait._repr_jpeg_() is None
    assert Portrait.from_bytes(b"zz").extension == ".bin"


def test_train_job_round_trips_through_the_converter() -> None:
    job = TrainJob(job_id=42, model_id="m-1")
    data = job.to_dict()
    assert data == {"job_id": 42, "model_id": "m-1"}
    assert TrainJob.from_dict(data) == job


# -- the emulator's per-photo detail ---------------------------------------------------------

CHECK_URL = "https://h.example/api/v1/aigc_images/check"
DETAIL_404 = "The photo URL answered HTTP 404 Not Found."


async def test_check_results_carry_the_emulators_detail_and_tolerate_its_absence() -> None:
    from tests._mock import mocked

    results = [
        {"code": 2, "url": "https://a/404.jpg", "message": "Image decode error.",
         "frontal": False, "emulator_detail": DETAIL_404},
        {"code": 2, "url": "https://a/small.jpg", "message": "Image decode error.",
         "frontal": False, "emulator_detail": "The photo is 300x300 pixels;\n at least 512x512."},
        {"code": 1, "url": "https://a/ok.jpg", "message": "success", "frontal": True},
        {"code": 2, "url": "https://a/odd.jpg", "message": "Image decode error.",
         "emulator_detail": {"not": "a sentence"}},
    ]  # fmt: skip
    with mocked() as mock:
        mock.post(CHECK_URL, payload={"code": "OK", "data": {"check_results": results}})
        async with aiportrait.Session("h.example", "a", "t") as session:
            report = await session.check_images([r["url"] for r in results])
    missing, small, fine, odd = report.results
    assert (missing.code, missing.message) == (CheckVerdict.DECODE_ERROR, "Image decode error.")
    assert missing.detail == DETAIL_404
    assert small.detail == "The photo is 300x300 pixels; at least 512x512."  # one line
    assert fine.detail == ""  # absent: empty
    assert odd.detail == ""  # not a string: dropped, the answer is still read


async def test_training_states_carry_the_emulators_detail() -> None:
    raw = json.dumps({"model_id": "m-1", "cost_time": 2.0, "states": [
        {"url": "https://a/1.jpg", "code": 1, "message": "success", "frontal": True},
        {"url": "https://a/2.jpg", "message": "Image decode error.", "emulator_detail": DETAIL_404},
    ]})  # fmt: skip
    done = {"state": int(JobState.SUCCESS), "result": raw}
    with Fake([], ok={"code": "OK", "data": {"job": done}}) as fake:
        async with aiportrait.Session(fake.url, "a", "t") as session:
            job = await session.get_job(5)
    assert job.raw_result == raw
    result = job.result
    assert result is not None
    assert [s.detail for s in result.states] == ["", DETAIL_404]
    assert result.states[1].code is CheckVerdict.DECODE_ERROR
    again = type(result).from_dict(result.to_dict())
    assert again == result  # the detail survives a journal round trip
