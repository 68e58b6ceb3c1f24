"""Local photos leave the machine without their metadata, and upright.

A photo of a person may say where it was taken (EXIF GPS), with what (camera make and model),
when (EXIF dates) and more (XMP). The test makes such photos, sideways with an EXIF orientation
(rotate 90 degrees to show), trains on them through a Session with the emulator's bucket, then
reads what was uploaded back from the bucket: no metadata at all, and the pixels turned upright.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import aiportrait
from aiportrait.emulator import Emulator
from aiportrait.samples import SamplePhotos
from aiportrait.uploads import OSSUploader

pytest.importorskip("alibabacloud_oss_v2")
Image = pytest.importorskip("PIL.Image")
ImageChops = pytest.importorskip("PIL.ImageChops")
ImageStat = pytest.importorskip("PIL.ImageStat")

FAST = aiportrait.PollPolicy(first=0.05, cap=0.2)

MAKE = b"LeakyPhoneMaker"
MODEL = b"LeakyPhone 12 Pro"
TAKEN = b"2021:06:30 12:34:56"
SOFTWARE = b"LeakyCamera 9.9"
XMP_NS = b"http://ns.adobe.com/xap/1.0/"
XMP_SECRET = b"Alice Example at 1 Secret Street"
COMMENT = b"taken at home, see GPS"
#: The upright photos are 600x768 (portrait); stored sideways, their pixels are 768x600.
UPRIGHT_SIZE = (600, 768)


def _upright(photo: Path) -> Any:
    """A portrait (600x768) crop of a square sample photo, as it should be shown."""
    with Image.open(photo) as im:
        width, height = im.size
        left = (width - UPRIGHT_SIZE[0]) // 2
        return im.convert("RGB").crop((left, 0, left + UPRIGHT_SIZE[0], height))


def _exif() -> Any:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the pixels are to be turned 90 degrees clockwise to show
    exif[0x010F] = MAKE.decode()  # Make
    exif[0x0110] = MODEL.decode()  # Model
    exif[0x0132] = TAKEN.decode()  # DateTime
    exif[0x0131] = SOFTWARE.decode()  # Software
    details = exif.get_ifd(0x8769)  # the Exif IFD
    details[0x9003] = TAKEN.decode()  # DateTimeOriginal
    details[0xA431] = "SN-0042-LEAK"  # BodySerialNumber
    gps = exif.get_ifd(0x8825)  # the GPS IFD
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    gps[3], gps[4] = "E", (13.0, 24.0, 36.0)
    gps[6] = 34.5  # GPSAltitude
    return exif


def _xmp_segment() -> bytes:
    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">'
        b"<dc:creator>" + XMP_SECRET + b"</dc:creator>"
        b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    body = XMP_NS + b"\0" + packet
    return b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body


def _with_metadata(upright: Any) -> bytes:
    """``upright`` stored sideways (turned 90 degrees anticlockwise) with an EXIF orientation
    that turns it back, EXIF (camera, dates, GPS) and an XMP packet."""
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    buffer = io.BytesIO()
    sideways.save(buffer, "JPEG", quality=95, exif=_exif())
    data = buffer.getvalue()
    return data[:2] + _xmp_segment() + data[2:]  # right after the start of image


def _segments(data: bytes) -> list[tuple[int, bytes]]:
    """The JPEG's marker segments before its image data: (marker, body)."""
    assert data[:2] == b"\xff\xd8"
    found: list[tuple[int, bytes]] = []
    at = 2
    while at < len(data):
        assert data[at] == 0xFF, f"no marker at {at}"
        marker = data[at + 1]
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        found.append((marker, data[at + 4 : at + 2 + length]))
        if marker == 0xDA:  # start of scan: the pixels follow
            return found
        at += 2 + length
    raise AssertionError("no start of scan")


def _difference(a: Any, b: Any) -> float:
    """The mean absolute difference of two same-sized RGB images (0 to 255)."""
    assert a.size == b.size
    return float(sum(ImageStat.Stat(ImageChops.difference(a, b)).mean)) / 3


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(app_id="app", token="metadata-token", train_seconds=0.05) as emulator:
        yield emulator


async def test_a_training_uploads_no_exif_gps_xmp_or_camera_data_and_upright_pixels(
    emu: Emulator, sample_media: SamplePhotos, tmp_path: Path
) -> None:
    uprights = [_upright(sample_media.path(name)) for name in sample_media.astronaut]
    paths = []
    for i, upright in enumerate(uprights):
        path = tmp_path / f"me_{i}.jpg"
        path.write_bytes(_with_metadata(upright))
        paths.append(path)
    # the photos as made carry everything the upload must not
    with Image.open(paths[0]) as made:
        assert made.size == (768, 600)
        exif = made.getexif()
        assert exif[0x0112] == 6 and exif[0x010F] == MAKE.decode()
        assert exif.get_ifd(0x8825)[2] == (52.0, 31.0, 12.0)
    made_bytes = paths[0].read_bytes()
    for secret in (MAKE, MODEL, TAKEN, SOFTWARE, XMP_NS, XMP_SECRET, b"Exif\0\0"):
        assert secret in made_bytes

    async with OSSUploader.for_emulator(emu) as uploader:
        async with emu.session(uploader=uploader, poll=FAST) as session:
            job = await session.train(paths)  # the photos pass the face check on this machine
            result = await session.wait(job)
    assert result.model_id  # a wait returns only a successful training
    assert len(result.states) == len(paths)
    assert all(state.ok for state in result.states)  # and the service's check, upright
    assert emu.bucket.puts == len(paths)

    uploaded = [stored.data for stored in emu.bucket.objects.values()]
    assert len(uploaded) == len(paths)
    for data in uploaded:
        for secret in (MAKE, MODEL, TAKEN, SOFTWARE, XMP_NS, XMP_SECRET):
            assert secret not in data
        assert b"Exif" not in data
        assert b"SN-0042-LEAK" not in data
        # only the JFIF header, tables and frame: no APP1 (EXIF, XMP), no APP13 (IPTC), no comment
        markers = {marker for marker, _ in _segments(data)}
        assert markers <= {0xE0, 0xDB, 0xC4, 0xC0, 0xC2, 0xDD, 0xDA}, sorted(map(hex, markers))
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "JPEG"
            assert not im.getexif()
            assert not {"exif", "xmp", "comment", "photoshop", "XML:com.adobe.xmp"} & set(im.info)
            assert im.size == UPRIGHT_SIZE  # width and height swapped back: orientation applied

    # the content was turned, not only the header dropped: each upload is its upright photo
    for upright in uprights:
        best = min(
            uploaded, key=lambda d: _difference(Image.open(io.BytesIO(d)).convert("RGB"), upright)
        )
        im = Image.open(io.BytesIO(best)).convert("RGB")
        same = _difference(im, upright)
        upside_down = _difference(im, upright.transpose(Image.Transpose.ROTATE_180))
        assert same < 4.0, same  # JPEG re-encoding only
        assert upside_down > 5 * same, (same, upside_down)


async def test_a_jpeg_comment_is_not_uploaded(
    emu: Emulator, sample_media: SamplePhotos, tmp_path: Path
) -> None:
    path = tmp_path / "commented.jpg"
    with Image.open(sample_media.path(sample_media.astronaut[0])) as im:
        im.convert("RGB").save(path, "JPEG", quality=95, comment=COMMENT)
    assert COMMENT in path.read_bytes()
    async with OSSUploader.for_emulator(emu) as uploader:
        async with emu.session(uploader=uploader) as session:
            report = await session.check_images([path])
    assert report.results[0].ok
    (stored,) = emu.bucket.objects.values()
    assert COMMENT not in stored.data
    assert 0xFE not in {marker for marker, _ in _segments(stored.data)}
    with Image.open(io.BytesIO(stored.data)) as uploaded:
        assert "comment" not in uploaded.info
