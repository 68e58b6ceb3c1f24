"""Image sources and their limits; the unsigned media route."""

from __future__ import annotations

import base64
from pathlib import Path

import aiohttp
import pytest

from aiportrait.emulator import Emulator
from aiportrait.emulator._fetch import Fetcher, FetchError, FetchPolicy, is_loopback_host
from aiportrait.emulator._wire import CHECK_PATH

from .conftest import APP_ID, TOKEN, Photos, send


async def fetch(fetcher: Fetcher, url: str) -> bytes:
    """The bytes behind ``url``, or :class:`FetchError`."""
    return (await fetcher.fetch_source(url)).data


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, expected: bool) -> None:
    assert is_loopback_host(host) is expected


async def test_data_urls() -> None:
    fetcher = Fetcher(FetchPolicy(max_bytes=100))
    payload = b"\x89PNG\r\n\x1a\n"
    assert (
        await fetch(fetcher, "data:image/png;base64," + base64.b64encode(payload).decode())
        == payload
    )
    assert await fetch(fetcher, "data:,hello%20world") == b"hello world"
    for bad in ("data:image/png;base64", "data:;base64," + "A" * 400, "data:," + "x" * 101):
        with pytest.raises(FetchError):
            await fetch(fetcher, bad)


async def test_file_urls_stay_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.png").write_bytes(b"inside")
    (tmp_path / "secret.png").write_bytes(b"outside")
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    (root / "big.png").write_bytes(b"x" * 200)
    fetcher = Fetcher(FetchPolicy(file_root=root, max_bytes=100))
    assert await fetch(fetcher, (root / "a.png").as_uri()) == b"inside"
    for bad in (
        (root / ".." / "secret.png").as_uri(),
        f"file://{root}/../secret.png",
        (root / "link.png").as_uri(),
        (root / "missing.png").as_uri(),
        (root / "big.png").as_uri(),
        f"file://otherhost{root}/a.png",
    ):
        with pytest.raises(FetchError):
            await fetch(fetcher, bad)
    with pytest.raises(FetchError):
        await fetch(Fetcher(FetchPolicy()), (root / "a.png").as_uri())


async def test_http_fetch_limits(origin: str) -> None:
    fetcher = Fetcher(FetchPolicy(max_bytes=100))
    try:
        assert await fetch(fetcher, origin + "/img?n=50") == b"x" * 50
        for bad in (
            origin + "/img?n=101",
            origin + "/redirect",
            origin + "/missing",
            "http://127.0.0.1:1/x",
        ):
            with pytest.raises(FetchError):
                await fetch(fetcher, bad)
        # Other machines are refused without any network traffic.
        for remote in (
            "http://example.com/a.jpg",
            "https://10.1.2.3/a.jpg",
            "gopher://x",
            "nonsense",
        ):
            with pytest.raises(FetchError):
                await fetch(fetcher, remote)
    finally:
        await fetcher.close()


async def test_media_route_and_media_urls_in_calls(
    emu: Emulator, photos: Photos, tmp_path: Path
) -> None:
    (tmp_path / "media" / "me.png").write_bytes(photos.astronaut[0])
    (tmp_path / "media" / ".hidden").write_bytes(b"no")
    (tmp_path / "secret.txt").write_bytes(b"no")
    async with aiohttp.ClientSession() as s:
        async with s.get(emu.media_url("me.png")) as resp:
            assert resp.status == 200
            assert await resp.read() == photos.astronaut[0]
        for bad in (
            "/media/.hidden",
            "/media/..%2Fsecret.txt",
            "/media/../secret.txt",
            "/media/nope.png",
        ):
            async with s.get(emu.url + bad) as resp:
                assert resp.status == 404, bad
    reply = await send(
        emu, CHECK_PATH, {"images": [emu.media_url("me.png"), emu.media_url("nope.png")]}
    )
    assert [r["code"] for r in reply.data["check_results"]] == [1, 2]
    file_url = tmp_path / "files" / "me.png"
    file_url.write_bytes(photos.astronaut[1])
    reply = await send(emu, CHECK_PATH, {"images": [file_url.as_uri()]})
    assert [r["code"] for r in reply.data["check_results"]] == [1]


async def test_pixel_limit(photos: Photos) -> None:
    async with Emulator(app_id="a", token="t", max_pixels=100_000) as emu:
        reply = await send(
            emu,
            CHECK_PATH,
            {"images": ["data:image/png;base64," + base64.b64encode(photos.astronaut[0]).decode()]},
            app_id="a",
            token="t",
        )
        assert [r["code"] for r in reply.data["check_results"]] == [2]


async def test_a_symlink_out_of_serve_dir_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    media = tmp_path / "media"
    media.mkdir()
    (media / "link.jpg").symlink_to(secret)
    async with Emulator(app_id=APP_ID, token=TOKEN, serve_dir=media) as emu:
        assert emu._local_media(emu.media_url("link.jpg")) is None
