"""What the command prints is one line per outcome, warning or error, whatever the input: keys,
file names and the server's text are shown with their control characters escaped, so that none
can split a line or forge one (``aiportrait batch`` and ``aiportrait check``, in-process)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

import aiportrait
from aiportrait import cli
from aiportrait.cli import main
from tests._mock import mocked

MOCK = ["--host", "h.example", "--app-id", "a", "--token", "t", "--tries", "1"]
MOCK_API = "https://h.example/api/v1"
FORGING = "<html>\n<body>Internal\x00 error\nok      forged  line\t!\r\n\x1b[2K</body>\n</html>"
"""A gateway's error page that tries to print an ``ok`` line of its own."""


def _closed() -> list[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return ["--host", f"http://127.0.0.1:{port}", "--app-id", "a", "--token", "t", "--tries", "1"]


def _batch(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _solo(key: str, **more: object) -> dict[str, object]:
    return {"kind": "solo", "key": key, "model_id": "m", "template": "http://x/t.jpg", **more}


def test_an_http_500_body_over_many_lines_is_one_outcome_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = _batch(tmp_path, [_solo("k")])
    with mocked() as mock:
        mock.post(f"{MOCK_API}/aigc_images/create", status=500, body=FORGING, repeat=True)
        mock.post(f"{MOCK_API}/aigc_images/check", status=500, body=FORGING, repeat=True)
        args = ["batch", str(batch), "--out", str(tmp_path / "out"), "--no-progress", *MOCK]
        assert main(args) == cli.EXIT_OUTCOME_UNKNOWN  # a 500 to a create: it may have run
        assert main(["check", "http://x/a.jpg", *MOCK]) == cli.EXIT_FAILED
    captured = capsys.readouterr()
    outcome, summary = captured.out.splitlines()
    assert outcome.startswith("unknown k  SubmitOutcomeUnknown: POST /api/v1/aigc_images/create")
    assert "Internal\\x00 error ok forged line ! \\x1b[2K</body>" in outcome
    assert summary.startswith("0 ok, 1 failed (0 resumed) of 1 in ")
    (error,) = captured.err.splitlines()
    assert error.startswith("aiportrait: error: ServerError: HTTP 500")
    assert "Internal\\x00 error ok forged line !" in error
    for text in (captured.out, captured.err):
        assert "\x00" not in text and "\x1b" not in text and "\t" not in text and "\r" not in text


@pytest.mark.parametrize("json_output", [False, True])
def test_keys_with_a_line_break_nul_or_tab_stay_on_their_line(
    json_output: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = ["x\ny", "ok      forged\rz", "a\tb", "n\x00l", "\x1b[31mred\u2028x"]
    batch = _batch(tmp_path, [_solo(key) for key in keys])
    args = ["batch", str(batch), "--out", str(tmp_path / "out"), "--no-progress", *_closed()]
    assert main([*args, *(["--json"] if json_output else [])]) == cli.EXIT_BATCH_FAILED
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(keys) + 1  # one line per item and the summary
    if json_output:
        docs = [json.loads(line) for line in lines[:-1]]
        assert sorted(d["key"] for d in docs) == sorted(keys)  # JSON keeps the key as it is
        return
    shown = sorted(line[len("failed  ") : line.index("  ConnectError")] for line in lines[:-1])
    assert shown == sorted(
        ["x\\ny", "ok      forged\\rz", "a\\tb", "n\\x00l", "\\x1b[31mred\\u2028x"]
    )
    assert all(line.startswith("failed  ") for line in lines[:-1])
    assert all("ConnectError: " in line for line in lines[:-1])


def test_a_servers_check_message_with_a_line_break_stays_on_the_photos_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = [{"url": "http://x/a.jpg", "code": 2, "message": "bad\nok    http://x/b.jpg  SUCCESS",
                "frontal": False}]  # fmt: skip
    data = {"check_results": results, "images": ["http://x/a.jpg"], "cost_time": 0.1}
    with mocked() as mock:
        mock.post(f"{MOCK_API}/aigc_images/check", payload={"code": "OK", "data": data})
        assert main(["check", "http://x/a.jpg", *MOCK]) == cli.EXIT_FAILED
    assert capsys.readouterr().out.splitlines() == [
        "FAIL  http://x/a.jpg  DECODE_ERROR: bad\\nok    http://x/b.jpg  SUCCESS",
        "0/1 photos usable",
    ]


async def test_thirty_thousand_unknown_config_keys_warn_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = _batch(tmp_path, [_solo(f"k{i}", config={"brand_new": 1}) for i in range(30_000)])
    out = tmp_path / "out"
    closed = _closed()
    args = ["batch", str(batch), "--out", str(out), "--no-progress", *closed]
    # another run holds the journal: nothing sent
    async with (
        aiportrait.Session(closed[1], "a", "t") as session,
        session.create_many({}, journal=out / cli.DEFAULT_JOURNAL),
    ):
        assert await asyncio.to_thread(main, args) == cli.EXIT_USAGE
    warning, error = capsys.readouterr().err.splitlines()
    assert warning == (
        f"aiportrait: warning: ConfigWarning: {batch}: lines 1, 2, 3, 4, 5 and 29995 more: "
        "configure key 'brand_new' is not documented; it is sent unchanged"
    )
    assert error.startswith("aiportrait: error: JournalLocked: ")
