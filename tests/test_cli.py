"""The ``aiportrait`` command, run in-process (``main([...])``) against the local emulator.

Two models are trained once per module into a shared emulator data directory; each test starts
its own emulator on that directory (trained models survive a restart) and runs the command in a
thread, since ``main`` calls ``asyncio.run`` and the emulator runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import aiportrait
from aiportrait import cli
from aiportrait.cli import main
from aiportrait.emulator import Emulator, Faults
from aiportrait.errors import PhotoCountWarning
from aiportrait.samples import SamplePhotos, sample_photos
from tests._mock import until

PIL = pytest.importorskip("PIL.Image")

TOKEN = "cli-test-token-0123456789"
FAST = aiportrait.PollPolicy(first=0.05, cap=0.5, timeout=60)
CREATE_PATH = "/api/v1/aigc_images/create"


@attrs.frozen
class World:
    """Photos, templates and two trained models, shared by the module's tests."""

    media: Path
    data: Path
    names: SamplePhotos
    astronaut: str
    hopper: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    media, data = tmp_path_factory.mktemp("media"), tmp_path_factory.mktemp("data")
    names = sample_photos(media)

    async def train() -> list[str]:
        async with (
            Emulator(train_seconds=0.05, serve_dir=media, data_dir=data, token=TOKEN) as emu,
            emu.session(poll=FAST) as session,
        ):
            # one photo each: the emulator accepts it, and it trains in a fraction of a second
            sets = [[emu.media_url(getattr(names, who)[0])] for who in ("astronaut", "hopper")]
            jobs = await asyncio.gather(*(session.train(s) for s in sets))
            return [(await session.wait(job)).model_id for job in jobs]

    with pytest.warns(PhotoCountWarning):  # one photo each
        astronaut, hopper = asyncio.run(train())
    return World(media, data, names, astronaut, hopper)


@pytest.fixture
async def emu(world: World) -> AsyncIterator[Emulator]:
    async with Emulator(
        train_seconds=0.05, serve_dir=world.media, data_dir=world.data, token=TOKEN
    ) as emulator:
        yield emulator


def creds(emu: Emulator, token: str = TOKEN) -> list[str]:
    return ["--host", emu.url, "--app-id", emu.app_id, "--token", token]


async def run(emu: Emulator, *args: str, token: str = TOKEN) -> int:
    """Run the command in a thread (it calls asyncio.run), with the emulator's credentials."""
    return await asyncio.to_thread(main, [*args, *creds(emu, token)])


def urls(emu: Emulator, world: World, role: str) -> list[str]:
    return [emu.media_url(n) for n in getattr(world.names, role)]


def template(emu: Emulator, world: World, index: int) -> str:
    return emu.media_url(world.names.templates[index])


def one_json(text: str) -> Any:
    """The single JSON document a ``--json`` command printed."""
    (line,) = text.strip().splitlines()
    return json.loads(line)


# -- check, train, watch ---------------------------------------------------------------------


async def test_check_plain_then_json_with_a_stranger(
    emu: Emulator, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(emu, "check", *urls(emu, world, "astronaut")[:2]) == cli.EXIT_OK
    assert "2/2 photos usable" in capsys.readouterr().out

    mixed = [*urls(emu, world, "astronaut")[:2], urls(emu, world, "hopper")[0]]
    assert await run(emu, "check", "--json", *mixed) == cli.EXIT_FAILED  # a photo failed
    doc = one_json(capsys.readouterr().out)
    assert doc["ok"] is False
    assert len(doc["passed"]) == 2
    assert doc["results"][2]["verdict"] == "NOT_SAME_PERSON"
    assert doc["request_id"]


async def test_train_wait_prints_a_line_per_state_and_one_json_document(
    emu: Emulator, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = urls(emu, world, "hopper")[:2]
    code = await run(emu, "train", *photos, "--wait", "--poll", "0.05", "--json")
    assert code == cli.EXIT_OK
    captured = capsys.readouterr()
    doc = one_json(captured.out)
    assert doc["state"] == "SUCCESS"
    assert doc["model_id"]
    assert len(doc["states"]) == 2
    lines = [line for line in captured.err.splitlines() if line.startswith("job ")]
    assert lines[-1].startswith(f"job {doc['job_id']}: SUCCESS after ")
    assert "polls)" in lines[-1]
    assert len(lines) >= 2  # at least one pending state, then SUCCESS

    assert await run(emu, "train", *photos) == cli.EXIT_OK  # no --wait: returns at once
    out = capsys.readouterr().out
    assert "training started: job" in out
    assert "aiportrait watch" in out


async def test_watch_success_failure_and_deadline(
    emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = emu.add_synthetic_job(0.2)
    assert await run(emu, "watch", str(ok), "--poll", "0.05") == cli.EXIT_OK
    captured = capsys.readouterr()
    assert f"job {ok}: SUCCESS after" in captured.err
    assert f"job {ok} succeeded: model_id" in captured.out

    failed = emu.add_synthetic_job(0.0, succeed=False, message="bad photos")
    assert await run(emu, "watch", str(failed), "--poll", "0.05") == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert f"job {failed}: FAILED after" in err
    assert "aiportrait: error: JobFailed: " in err
    assert "bad photos" in err

    slow = emu.add_synthetic_job(60.0)
    code = await run(emu, "watch", str(slow), "--poll", "0.05", "--deadline", "0.3", "--json")
    assert code == cli.EXIT_TRANSPORT
    captured = capsys.readouterr()
    assert "JobTimeout" in captured.err
    assert one_json(captured.out)["error"]["type"] == "JobTimeout"


# -- create ----------------------------------------------------------------------------------


async def test_create_every_kind_writes_the_image(
    emu: Emulator,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = ["--set", "lora_weights=0.8", "--set", "crop_face_preprocess=false"]
    solo = ["--model", world.astronaut, "--template", template(emu, world, 0), *settings]
    assert await run(emu, "create", *solo) == cli.EXIT_OK  # default --out: portrait.<ext>
    assert "wrote portrait.jpg (jpeg 768x900" in capsys.readouterr().out
    assert (tmp_path / "portrait.jpg").exists()

    group = ["--group", world.hopper, "--group", world.astronaut]
    group += ["--template", template(emu, world, 2)]
    assert await run(emu, "create", *group, "--out", "team", "--json") == cli.EXIT_OK
    doc = one_json(capsys.readouterr().out)
    assert (doc["path"], doc["format"], doc["width"], doc["height"]) == (
        "team.jpg",
        "jpeg",
        1200,
        700,
    )
    assert doc["request_id"]

    reference = urls(emu, world, "hopper")[0]
    ref = ["--reference", reference, "--template", template(emu, world, 1), "--ipa-weight", "0.6"]
    assert await run(emu, "create", *ref, "--out", "ref.jpg") == cli.EXIT_OK
    prompt = ["--prompt", "in a garden", "--model", world.astronaut, "--out", "garden"]
    assert await run(emu, "create", *prompt) == cli.EXIT_OK
    prompt_ref = ["--prompt", "on a beach", "--reference", reference, "--out", "beach"]
    assert await run(emu, "create", *prompt_ref, "--set", "some_future_key=1") == cli.EXIT_OK
    capsys.readouterr()
    for name in ("team.jpg", "ref.jpg", "garden.*", "beach.*"):
        (path,) = _written(tmp_path, name)
        with PIL.open(path) as img:
            assert img.size[0] > 0
    assert emu.counters.creations == 5


def test_set_values_are_json_and_unknown_keys_go_to_extra() -> None:
    values = cli.parse_settings(["lora_weights=0.8", "crop_face_preprocess=false", 'x={"a":1}'])
    values.update(cli.parse_settings(["style_name=Anime", "first_diffusion_steps=30"]))
    with pytest.warns(aiportrait.errors.ConfigWarning, match="'x' is not documented"):
        config = cli.config_from(values)
    assert config is not None
    assert config.extra == {"x": {"a": 1}}
    assert attrs.evolve(config, extra=None) == aiportrait.CreateConfig(
        lora_weights=0.8,
        crop_face_preprocess=False,
        style_name="Anime",
        first_diffusion_steps=30,
    )
    assert cli.config_from({}) is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["create", "--model", "m"], "--template is required with --model"),
        (["create", "--template", "http://x/t.jpg"], "give one of --model, --group, --reference"),
        (["create", "--model", "m", "--reference", "http://x/r.jpg"], "give one of --model"),
        (["create", "--group", "a", "--group", "b", "--prompt", "p"], "--group does not go with"),
        (["create", "--model", "m", "--template", "http://x/t", "--scene-id", "s"], "--scene-id"),
        (["create", "--model", "m", "--template", "http://x/t", "--ipa-weight", "1"], "--ipa"),
        (["create", "--model", "m", "--template", "http://x/t", "--set", "oops"], "KEY=VALUE"),
        (["create", "--model", "m", "--template", "http://x/t", "--set", "lora_weights=5"], "0.5"),
        (["watch", "nine"], "'nine' is not a valid integer"),
        (["train", "http://x/a.jpg", "--poll", "0"], "Invalid value for '--poll'"),
        (["batch", "missing.csv"], "Missing option '--out'"),
        (["frobnicate"], "No such command 'frobnicate'"),
        ([], "Missing command"),
        (["temporal", "batch"], "Missing argument 'FILE'"),
        (["emulator", "--port", "99999"], "Invalid value for '--port'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--host", "http://127.0.0.1:9", "--app-id", "a", "--token", "t"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.split(": ")[:2] == ["aiportrait", "error"]
    assert line.split(": ")[2] in ("UsageError", "InvalidArgument")
    assert expected in line


# -- credentials and errors ------------------------------------------------------------------


def _clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIPORTRAIT_HOST", "HOST", "Host", "AIPORTRAIT_APP_ID", "AppId", "APP_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AIPORTRAIT_TOKEN", "Token", "TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "args",
    [
        ["create", "--model", "m"],
        ["batch", "nowhere.csv", "--out", "o"],
        ["watch", "-1"],
        ["temporal", "batch", "nowhere.csv"],
    ],
)
def test_usage_errors_come_before_credentials(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clear_env(monkeypatch)  # no credentials anywhere: the usage error is said first
    assert main(args) == cli.EXIT_USAGE
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("aiportrait: error: UsageError: ")


def test_missing_credentials_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clear_env(monkeypatch)
    assert main(["check", "http://x/a.jpg", "--json"]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert "CredentialsError: missing credentials" in captured.err
    assert one_json(captured.out)["error"]["exit_code"] == 2


async def test_credentials_from_env_and_flags_win(
    emu: Emulator,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _clear_env(monkeypatch)
    monkeypatch.setenv("HOST", emu.url)  # the documentation's names work
    monkeypatch.setenv("AppId", emu.app_id)
    monkeypatch.setenv("Token", TOKEN)
    photo = urls(emu, world, "astronaut")[:1]
    assert await asyncio.to_thread(main, ["check", *photo]) == cli.EXIT_OK
    monkeypatch.setenv("AIPORTRAIT_TOKEN", "wrong")
    assert await asyncio.to_thread(main, ["check", *photo]) == cli.EXIT_FAILED
    assert await asyncio.to_thread(main, ["check", *photo, "--token", TOKEN]) == cli.EXIT_OK
    capsys.readouterr()


async def test_wrong_token_is_one_line_with_the_request_id(
    emu: Emulator, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "not-the-token-5f3a"
    photo = urls(emu, world, "astronaut")[0]
    assert await run(emu, "check", photo, token=secret) == cli.EXIT_FAILED
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("aiportrait: error: SignatureMismatch: HTTP 401")
    assert "request_id=" in line
    assert "Traceback" not in captured.err
    assert secret not in captured.err + captured.out

    assert await run(emu, "check", photo, "--json", token=secret) == cli.EXIT_FAILED
    captured = capsys.readouterr()
    error = one_json(captured.out)["error"]
    assert (error["type"], error["status"], error["exit_code"]) == ("SignatureMismatch", 401, 1)
    assert error["request_id"] in captured.err
    assert secret not in captured.err + captured.out


async def test_debug_adds_the_traceback_and_debug_logging(
    emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = emu.add_synthetic_job(0.0, succeed=False, message="bad photos")
    assert await run(emu, "--debug", "watch", str(failed)) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert f"DEBUG aiportrait: job {failed}: FAILED" in err
    assert err.strip().splitlines()[-1].startswith("aiportrait: error: JobFailed: ")
    assert TOKEN not in err

    assert await run(emu, "watch", str(failed)) == cli.EXIT_FAILED  # the handler is gone
    err = capsys.readouterr().err
    assert "DEBUG" not in err
    assert "Traceback" not in err


def _written(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_host_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    host = f"http://127.0.0.1:{_closed_port()}"
    args = ["check", "http://x/a.jpg", "--host", host, "--app-id", "a", "--token", "t"]
    assert main([*args, "--tries", "1", "--timeout", "5"]) == cli.EXIT_TRANSPORT
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("aiportrait: error: ConnectError: ")


async def test_ambiguous_create_exits_4(
    emu: Emulator, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.faults = Faults(drop_after=1.0, paths=frozenset({CREATE_PATH}))
    args = ["create", "--model", world.astronaut, "--template", template(emu, world, 0)]
    assert await run(emu, *args, "--out", str(tmp_path / "p")) == cli.EXIT_OUTCOME_UNKNOWN
    assert "SubmitOutcomeUnknown" in capsys.readouterr().err
    assert not _written(tmp_path, "p.*")


async def test_ctrl_c_while_watching_exits_130_with_the_command_that_resumes(
    emu: Emulator,
) -> None:
    job = emu.add_synthetic_job(600.0)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiportrait", "watch", str(job), *creds(emu),
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    first = await asyncio.wait_for(process.stderr.readline(), timeout=60)
    assert first.startswith(f"job {job}: INIT".encode()), first  # it is watching: stop it
    process.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == cli.EXIT_INTERRUPTED
    assert err.decode().splitlines()[-2:] == [
        "aiportrait: interrupted",
        f"aiportrait: watching stopped, job {job} did not; follow it again with: "
        f"aiportrait watch {job}",
    ]
    assert out == b""


# -- batch -----------------------------------------------------------------------------------


def _csv(emu: Emulator, world: World) -> str:
    ref = urls(emu, world, "hopper")[0]
    t_hopper, t_astro, t_group = (template(emu, world, i) for i in range(3))
    return "\n".join(
        [
            "kind,key,model_id,model_ids,template,reference,prompt,sdxl,config",
            f"solo,astro-on-hopper,{world.astronaut},,{t_hopper},,,,",
            f'solo,soft,{world.astronaut},,{t_hopper},,,false,"{{""lora_weights"": 0.7}}"',
            f"group,team,,{world.hopper}|{world.astronaut},{t_group},,,,",
            f"reference,quick,,,{t_astro},{ref},,,",
            f"prompt,,{world.hopper},,,,at the seaside,,",
        ]
    )


async def test_batch_csv_writes_the_folder_and_a_rerun_creates_nothing(
    emu: Emulator, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "portraits.csv"
    batch.write_text(_csv(emu, world) + "\n")
    out = tmp_path / "out"
    assert await run(emu, "batch", str(batch), "--out", str(out), "--limit", "3") == cli.EXIT_OK
    captured = capsys.readouterr()
    stems = sorted(p.stem for p in out.iterdir() if not p.name.startswith("."))
    assert stems == ["astro-on-hopper", "quick", "row5", "soft", "team"]
    assert (out / cli.DEFAULT_JOURNAL).exists()
    assert emu.counters.creations == 5
    assert "5 ok, 0 failed (0 resumed) of 5" in captured.out
    assert captured.out.count("ok      ") == 5
    # stderr is not a terminal: plain progress lines, ending with the final count
    progress = [line for line in captured.err.splitlines() if line.startswith("progress: ")]
    assert progress[-1].startswith("progress: 5/5 done, 0 failed, ")
    assert "/s, " in progress[-1]

    assert await run(emu, "batch", str(batch), "--out", str(out)) == cli.EXIT_OK
    assert emu.counters.creations == 5  # nothing created again
    assert "5 ok, 0 failed (5 resumed) of 5" in capsys.readouterr().out


async def test_batch_says_when_it_pauses_for_an_outage_and_holds_per_second(
    emu: Emulator, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "portraits.csv"
    batch.write_text(_csv(emu, world) + "\n")
    out = tmp_path / "out"
    emu.faults = Faults(rate_5xx=1.0, status_5xx=500)  # the whole service answers 500
    args = ("batch", str(batch), "--out", str(out), "--limit", "1", "--per-second", "4")
    running = asyncio.create_task(run(emu, *args))
    # The first create's 500 (unknown), then two probes at once: a pause; then it is over.
    await until(lambda: emu.counters.faults["5xx"] >= 3, "three 500s: a pause")
    emu.faults = None
    assert await running == cli.EXIT_OUTCOME_UNKNOWN
    captured = capsys.readouterr()
    assert "4 ok, 1 failed (0 resumed) of 5" in captured.out
    progress = [line for line in captured.err.splitlines() if line.startswith("progress: ")]
    paused = [line for line in progress if "paused" in line]
    assert paused[0].endswith(
        "; paused: the service seems down (HTTP 500 SERVICE_ERROR); trainings and creations"
        " wait for it"
    )
    assert any(line.endswith("; resumed") for line in progress)
    assert emu.counters.creations == 4
    assert emu.counters.most_within(1.0) <= 4 + 1  # the service's own clock


async def test_batch_jsonl_trains_creates_and_reports_failures(
    emu: Emulator, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"kind": "train", "key": "astro", "images": urls(emu, world, "astronaut")[:2]},
        {"kind": "solo", "key": "good", "model_id": world.hopper,
         "template": template(emu, world, 1), "config": {"lora_weights": 0.9}},
        {"kind": "solo", "key": "bad", "model_id": "no-such-model",
         "template": template(emu, world, 1)},
        {"kind": "group", "key": "pair", "model_ids": [world.hopper, world.astronaut],
         "template": template(emu, world, 2)},
    ]  # fmt: skip
    batch = tmp_path / "items.jsonl"
    batch.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    out, journal = tmp_path / "out", tmp_path / "state.sqlite"
    args = ["batch", str(batch), "--out", str(out), "--journal", str(journal), "--poll", "0.05"]
    assert await run(emu, *args, "--json") == cli.EXIT_BATCH_FAILED
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    outcomes = {d["key"]: d for d in lines if d["type"] == "outcome"}
    assert set(outcomes) == {"astro", "good", "bad", "pair"}
    assert outcomes["astro"]["kind"] == "train"
    assert outcomes["astro"]["ok"] is True
    assert outcomes["good"]["path"] == str(out / "good.jpg")
    assert outcomes["bad"]["error"]["type"] == "ModelIdError"
    assert outcomes["bad"]["error"]["request_id"]
    assert lines[-1]["type"] == "summary"
    assert (lines[-1]["ok"], lines[-1]["failed"], lines[-1]["total"]) == (3, 1, 4)
    trained = json.loads((out / "trainings" / "astro.json").read_text())
    assert trained["model_id"] == outcomes["astro"]["model_id"]
    assert journal.exists()
    assert (emu.counters.trainings, emu.counters.creations) == (1, 2)

    assert await run(emu, *args) == cli.EXIT_BATCH_FAILED  # the failure is remembered
    text = capsys.readouterr().out
    assert "PreviousFailure" in text
    assert "(run again with --retry-failed to retry it)" in text  # the flag, not a keyword
    assert "3 ok, 1 failed (4 resumed) of 4" in text
    assert (emu.counters.trainings, emu.counters.creations) == (1, 2)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.csv", "kind,key,colour\nsolo,x,red\n", "unknown field 'colour'"),
        ("a.csv", "kind,key,model_id\nsolo,x,m\n", "line 2: kind solo needs template"),
        ("a.csv", "kind,model_id,template\nsolo,m,http://x/t\nsolo,m,http://x/t,9\n", "more cells"),
        ("a.csv", "kind,images,template\ntrain,http://x/a,http://x/t\n", "does not use template"),
        ("a.csv", "kind,images,sdxl\ntrain,http://x/a,maybe\n", "expected true or false"),
        ("a.csv", "kind,key,images\ntrain,k,http://x/a\ntrain,k,http://x/b\n", "used twice"),
        ("a.jsonl", '{"kind": "sculpture"}\n', "kind must be one of"),
        ("a.jsonl", '{"kind": "prompt", "prompt": "p"}\n', "exactly one of model_id"),
        ("a.jsonl", "\n[1, 2]\n", "line 2: expected a JSON object"),
        ("a.jsonl", "{oops\n", "line 1: not JSON"),
        ("a.jsonl", '{"kind":"solo","model_id":"m","template":"t","config":{"sharp_ratio":3}}',
         "sharp_ratio"),
        ("a.jsonl", "", "no items"),
        ("none.csv", None, "cannot read"),
    ],
)  # fmt: skip
def test_batch_file_errors_exit_2_before_anything_is_sent(
    name: str, text: str | None, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    args = ["batch", str(path), "--out", str(tmp_path / "out"), "--host", "http://127.0.0.1:9"]
    assert main([*args, "--app-id", "a", "--token", "t"]) == cli.EXIT_USAGE
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"aiportrait: error: UsageError: {path}: ")
    assert expected in line
    assert not (tmp_path / "out").exists()


def test_scene_prompts_file_is_read_and_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["train", "http://x/a.jpg", "--host", "http://127.0.0.1:9", "--app-id", "a"]
    base += ["--token", "t", "--scene-prompts"]
    assert main([*base, str(tmp_path / "none.txt")]) == cli.EXIT_USAGE
    assert "--scene-prompts: cannot read" in capsys.readouterr().err
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a quiet beach\n\n")
    assert main([*base, str(prompts)]) == cli.EXIT_USAGE  # scene LoRAs are SDXL only
    assert "InvalidArgument: --scene-prompts needs --sdxl" in capsys.readouterr().err


def test_batch_lists_and_flags_parse() -> None:
    request = cli.row_request({"kind": "group", "model_ids": "a b", "template": "http://x/t"})
    assert request == aiportrait.GroupCreateRequest(["a", "b"], "http://x/t")
    request = cli.row_request({"kind": "train", "images": "http://x/1 | http://x/2", "sdxl": "yes"})
    assert request == aiportrait.TrainRequest(["http://x/1", "http://x/2"], sdxl=True)


# -- progress --------------------------------------------------------------------------------


async def test_watch_with_progress_with_and_without_tqdm(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    async with emu.session(poll=FAST) as session:
        job = aiportrait.TrainJob(emu.add_synthetic_job(0.1), "m-1")
        result = await aiportrait.watch_with_progress(session, job)
        assert isinstance(result, aiportrait.TrainResult)
        assert f"job {job.job_id} SUCCESS" in capsys.readouterr().err  # tqdm's text display

        for name in ("tqdm", "tqdm.auto"):  # as if tqdm were not installed
            monkeypatch.setitem(sys.modules, name, None)
        failing = emu.add_synthetic_job(0.0, succeed=False, message="no face")
        with pytest.raises(aiportrait.JobFailed, match="no face"):
            await aiportrait.watch_with_progress(session, failing)
        assert f"job {failing}: FAILED after" in capsys.readouterr().out


# -- the other subcommands and the entry point -----------------------------------------------


@pytest.mark.parametrize(
    "command",
    [[], ["check"], ["train"], ["watch"], ["create"], ["batch"], ["demo"], ["emulator"],
     ["temporal"], ["temporal", "dev"], ["temporal", "worker"], ["temporal", "train"],
     ["temporal", "batch"], ["temporal", "attach"]],
)  # fmt: skip
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == cli.EXIT_OK
    text = capsys.readouterr().out
    assert text.startswith(f"Usage: {' '.join(['aiportrait', *command])} ")


def test_shared_options_mean_the_same_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    """Each shared option has one help text wherever it appears."""
    seen: dict[str, set[str]] = {}
    for command in ([], ["check"], ["batch"], ["temporal", "worker"], ["temporal", "batch"]):
        main([*command, "--help"])
        for line in capsys.readouterr().out.splitlines():
            words = line.split()
            if words and words[0] in ("--host", "--app-id", "--token", "--debug", "--json"):
                seen.setdefault(words[0], set()).add(" ".join(words[1:]))
    assert set(seen) == {"--host", "--app-id", "--token", "--debug", "--json"}
    assert all(len(texts) == 1 for texts in seen.values()), seen


async def test_the_defaults_shown_are_the_librarys(capsys: pytest.CaptureFixture[str]) -> None:
    """``--limit``, ``--timeout`` and ``--tries`` show what a Session does without them."""
    main(["batch", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    async with aiportrait.Session("http://127.0.0.1:9", "a", "t") as session:
        creations, trainings = session.limits.capacity("create"), session.limits.capacity("train")
    shown = f"capacity: {creations} creations, {trainings} trainings); x>=1]"
    assert f"--limit N items in flight at once [default: (the Session's {shown}" in text
    assert "--tries N tries per call in all" in text
    assert "[default: (4; a train or create 3); x>=1]" in text
    assert "[default: (180 a query; a train or create 300, 180 between bytes); x>0]" in text


def test_python_m_aiportrait_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aiportrait", "watch"], capture_output=True, text=True, check=False
    )
    assert done.returncode == cli.EXIT_USAGE
    assert done.stderr == (
        "aiportrait: error: UsageError: Missing argument 'JOB_ID'. (see aiportrait watch --help)\n"
    )


def test_ipa_weight_with_a_reference_prompt_is_kept(tmp_path: Path) -> None:
    from tests._mock import OK_IMAGE, mocked, sent

    args = ["create", "--prompt", "p", "--reference", "https://r/x.jpg", "--ipa-weight", "0.7"]
    with mocked() as mock:
        mock.post(f"{MOCK_API}/aigc_images/create", payload=OK_IMAGE)
        assert main([*args, "--out", str(tmp_path / "p"), *MOCK]) == cli.EXIT_OK
        (call,) = sent(mock)
    assert json.loads(call["data"])["configure"]["ipa_weight"] == 0.7


# -- what a new user hits: warnings, rejected photos, progress, resuming ---------------------

MOCK = ["--host", "h.example", "--app-id", "a", "--token", "t"]
MOCK_API = "https://h.example/api/v1"
PHOTOS = [f"https://p.example/{i}.jpg" for i in range(5)]
DETAIL_404 = "The photo URL answered HTTP 404 Not Found."
REJECTED = [
    {"url": PHOTOS[0], "code": 1, "message": "success", "frontal": True},
    {"url": PHOTOS[1], "code": 2, "message": "Image decode error.", "frontal": False,
     "emulator_detail": DETAIL_404},
    {"url": PHOTOS[2], "code": 1, "message": "success", "frontal": True},
    {"url": PHOTOS[3], "code": 3, "message": "Number of face is not 1.", "frontal": False,
     "emulator_detail": "2 faces found."},
    {"url": PHOTOS[4], "code": 1, "message": "success", "frontal": True},
]  # fmt: skip


def _closed(*args: str) -> list[str]:
    """``args`` against a port nobody listens on, one try each."""
    host = f"http://127.0.0.1:{_closed_port()}"
    return [*args, "--host", host, "--app-id", "a", "--token", "t", "--tries", "1"]


def test_check_shows_the_servers_detail_after_the_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests._mock import mocked

    results = [
        {"url": PHOTOS[0], "code": 1, "message": "success", "frontal": True},
        {"url": PHOTOS[1], "code": 2, "message": "Image decode error.", "frontal": False,
         "emulator_detail": DETAIL_404},
        {"url": PHOTOS[2], "code": 2, "message": "Image decode error.", "frontal": False},
    ]  # fmt: skip
    data = {"check_results": results, "images": PHOTOS[:3], "cost_time": 0.1}
    with mocked() as mock:
        mock.post(
            f"{MOCK_API}/aigc_images/check", payload={"code": "OK", "data": data}, repeat=True
        )
        assert main(["check", *PHOTOS[:3], *MOCK]) == cli.EXIT_FAILED
        out = capsys.readouterr().out.splitlines()
        assert out == [
            f"ok    {PHOTOS[0]}  SUCCESS",
            f"FAIL  {PHOTOS[1]}  DECODE_ERROR: Image decode error. ({DETAIL_404})",
            f"FAIL  {PHOTOS[2]}  DECODE_ERROR: Image decode error.",  # no detail sent
            "1/3 photos usable",
        ]
        assert main(["check", *PHOTOS[:3], *MOCK, "--json"]) == cli.EXIT_FAILED
    doc = one_json(capsys.readouterr().out)
    assert [r["detail"] for r in doc["results"]] == ["", DETAIL_404, ""]
    assert doc["results"][1]["message"] == "Image decode error."  # word for word


def test_train_wait_lists_the_photos_the_service_rejected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests._mock import mocked

    result = json.dumps({"cost_time": 300.0, "states": REJECTED, "model_id": "m-7"})
    job = {"id": 7, "state": 2, "message": "success", "Result": result}
    with mocked() as mock:
        mock.post(f"{MOCK_API}/aigc_images/train",
                  payload={"code": "OK", "data": {"job_id": 7, "model_id": "m-7"}})  # fmt: skip
        mock.post(f"{MOCK_API}/async_jobs/7", payload={"code": "OK", "data": {"job": job}},
                  repeat=True)  # fmt: skip
        assert main(["train", *PHOTOS, "--wait", *MOCK]) == cli.EXIT_OK
        out = capsys.readouterr().out.splitlines()
        assert out == [
            "trained: model_id m-7 in 300.0s",
            "2 of 5 photos were rejected by the service's check:",
            f"  FAIL  {PHOTOS[1]}  DECODE_ERROR: Image decode error. ({DETAIL_404})",
            f"  FAIL  {PHOTOS[3]}  FACE_COUNT: Number of face is not 1. (2 faces found.)",
        ]
        assert main(["watch", "7", *MOCK, "--json"]) == cli.EXIT_OK
    doc = one_json(capsys.readouterr().out)
    assert doc["rejected"] == [PHOTOS[1], PHOTOS[3]]
    assert doc["states"][1]["detail"] == DETAIL_404


async def test_watch_lists_the_photos_the_service_rejected(
    emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    result = {"cost_time": 2.0, "states": REJECTED, "model_id": "m-emu"}
    job = emu.add_synthetic_job(0.0, result=result)
    assert await run(emu, "watch", str(job)) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"job {job} succeeded: model_id m-emu\n" in out
    assert "2 of 5 photos were rejected by the service's check:" in out
    assert "FACE_COUNT: Number of face is not 1. (2 faces found.)" in out

    clean = emu.add_synthetic_job(0.0)
    assert await run(emu, "watch", str(clean)) == cli.EXIT_OK
    assert "rejected" not in capsys.readouterr().out  # nothing to say: nothing said


@pytest.mark.parametrize(("count", "said"), [(1, "1 photo,"), (21, "21 photos,")])
def test_train_warns_on_the_terminal_before_submitting_an_undocumented_photo_count(
    count: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = [f"http://x/{i}.jpg" for i in range(count)]
    assert main(_closed("train", *photos)) == cli.EXIT_TRANSPORT  # nothing listens
    warning, *_, error = capsys.readouterr().err.strip().splitlines()
    assert warning == (
        f"aiportrait: warning: PhotoCountWarning: training on {said} but the documentation asks "
        "for 5 to 20 "
        "photos of one person (sent anyway)"
    )
    assert error.startswith("aiportrait: error: ConnectError")  # the warning came first


def test_unknown_set_key_warns_with_the_closest_documented_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["create", "--model", "m", "--template", "http://x/t.jpg", "--sdxl"]
    args += ["--set", "loraweights=0.8", "--set", "style_name=Anime", "--set", "brand_new=1"]
    main(_closed(*args))
    lines = capsys.readouterr().err.strip().splitlines()
    warnings = [line for line in lines if line.startswith("aiportrait: warning: ")]
    assert warnings == [
        "aiportrait: warning: ConfigWarning: configure key 'loraweights' is not documented "
        "(did you mean 'lora_weights'?); it is sent unchanged",
        "aiportrait: warning: ConfigWarning: configure key 'brand_new' is not documented; it is "
        "sent unchanged",
        "aiportrait: warning: ConfigWarning: configure key 'style_name' is documented for SD1.5 "
        "only, but this creation uses SDXL; the service may ignore it (sent unchanged)",
    ]  # each once: not repeated when the request is sent
    assert lines[-1].startswith("aiportrait: error: ")


def test_batch_file_warnings_name_the_file_and_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"kind": "train", "key": "a", "images": ["http://x/a.jpg"]},
        {"kind": "train", "key": "b", "images": ["http://x/b.jpg"]},
        {"kind": "solo", "key": "c", "model_id": "m", "template": "http://x/t.jpg",
         "config": {"loraweights": 0.8}},
        {"kind": "solo", "key": "d", "model_id": "m", "template": "http://x/t.jpg",
         "sdxl": True, "config": {"style_name": "Anime"}},
    ]  # fmt: skip
    batch = tmp_path / "items.jsonl"
    batch.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    args = _closed("batch", str(batch), "--out", str(tmp_path / "out"), "--no-progress")
    assert main(args) == cli.EXIT_BATCH_FAILED  # nothing listens: every item fails
    warnings = [
        line.removeprefix("aiportrait: warning: ")
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("aiportrait: warning: ")
    ]
    assert warnings == [
        f"PhotoCountWarning: {batch}: lines 1, 2: training on 1 photo, but the documentation "
        "asks for 5 to 20 photos of one person (sent anyway)",
        f"ConfigWarning: {batch}: line 3: configure key 'loraweights' is not documented "
        "(did you mean 'lora_weights'?); it is sent unchanged",
        f"ConfigWarning: {batch}: line 4: configure key 'style_name' is documented for SD1.5 "
        "only, but this creation uses SDXL; the service may ignore it (sent unchanged)",
    ]


async def test_job_timeout_names_the_state_and_the_command_that_resumes(
    emu: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    slow = emu.add_synthetic_job(600.0)  # in INIT for a minute
    args = ["watch", str(slow), "--poll", "0.05", "--deadline", "0.3"]
    assert await run(emu, *args) == cli.EXIT_TRANSPORT
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith(f"aiportrait: error: JobTimeout: job {slow} did not end within ")
    assert err[-2].endswith("(last state INIT)")
    assert err[-1] == (
        f"aiportrait: watching stopped, job {slow} did not; follow it again with: "
        f"aiportrait watch {slow} (--deadline SECONDS to wait longer)"
    )
    assert await run(emu, *args, "--json") == cli.EXIT_TRANSPORT
    error = one_json(capsys.readouterr().out)["error"]
    assert error["resume"] == f"aiportrait watch {slow}"
    assert "last state INIT" in error["message"]


def test_watch_says_so_when_polls_keep_failing(capsys: pytest.CaptureFixture[str]) -> None:
    args = _closed("watch", "5", "--poll", "0.05", "--deadline", "3", "--timeout", "5")
    assert main(args) == cli.EXIT_TRANSPORT
    err = capsys.readouterr().err.strip().splitlines()
    failing = [line for line in err if "polls failed in a row" in line]
    assert failing  # said before giving up, at the latest when the deadline ends the watch
    assert failing[0].startswith("job 5: ")
    assert ", last: ConnectError: " in failing[0]
    assert "; still trying until the 3s deadline (" in failing[0]
    assert err[-2].startswith("aiportrait: error: ")
    assert err[-2].endswith("(no state seen)") or "ConnectError" in err[-2]
    assert err[-1].startswith("aiportrait: watching stopped, job 5 did not; follow it again")


def test_ctrl_c_in_a_batch_says_the_same_command_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_args: Any, **_kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(aiportrait.Session, "create_many", interrupted)
    batch = tmp_path / "b.csv"
    batch.write_text("kind,model_id,template\nsolo,m,http://x/t.jpg\n")
    out = tmp_path / "out"
    assert main(_closed("batch", str(batch), "--out", str(out))) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "aiportrait: interrupted",
        "aiportrait: run the same command again to resume: the journal "
        f"{out / cli.DEFAULT_JOURNAL} remembers what is done",
    ]


def test_messages_name_the_flags_the_user_types() -> None:
    in_flight = (
        "item 'k' was in flight when an earlier run stopped; it may have run on the service "
        "(re-run with resubmit_unknown=True to submit it again)"
    )
    flags = {"--resubmit-unknown", "--scene-prompts", "--sdxl"}
    assert cli.cli_words(in_flight, "batch", flags).endswith(
        "(re-run with --resubmit-unknown to submit it again)"
    )
    assert cli.cli_words(
        "scene_lora=True needs sdxl=True: scene LoRAs are SDXL only", None, flags
    ) == ("--scene-prompts needs --sdxl: scene LoRAs are SDXL only")
    assert cli.cli_words("images[1]='nope' is not a URL: no scheme", "check") == (
        "photo 2: 'nope' is not a URL: no scheme"
    )
    assert cli.cli_words("CreateConfig.sharp_ratio=3 is invalid", "create") == (
        "--set sharp_ratio=3 is invalid"
    )
    # a keyword the command has no flag for is left as it is
    text = "ipa_control_only=True needs ipa_image_path (a reference URL)"
    assert cli.cli_words(text, "create", flags) == text


def test_a_bad_photo_url_is_named_as_the_user_typed_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(_closed("check", "http://x/a.jpg", "nope")) == cli.EXIT_USAGE
    (line,) = capsys.readouterr().err.strip().splitlines()
    # not a URL: a local path (local files are accepted), and there is no such file
    assert line == "aiportrait: error: LocalPhotoError: nope: no such file"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "m", "--set", "sharp_ratio=3"], "--set sharp_ratio=3.0 is invalid: expected"),
        (["--reference", "http://x/r", "--ipa-weight", "2"],
         "Invalid value for '--ipa-weight': 2.0 is not in the range 0.0<=x<=1.0"),
        (["--reference", "http://x/r", "--ipa-weight", "0.6", "--set", "ipa_weight=0.3"],
         "--ipa-weight and --set ipa_weight=... disagree"),
    ],
)  # fmt: skip
def test_create_value_errors_name_the_flags(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_closed("create", "--template", "http://x/t.jpg", *args)) == cli.EXIT_USAGE
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert expected in line


def test_batch_training_line_counts_the_photos_the_service_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests._mock import mocked

    result = json.dumps({"cost_time": 300.0, "states": REJECTED, "model_id": "m-7"})
    job = {"id": 7, "state": 2, "message": "success", "Result": result}
    batch = tmp_path / "b.jsonl"
    batch.write_text(json.dumps({"kind": "train", "key": "bob", "images": PHOTOS}) + "\n")
    out = tmp_path / "out"
    with mocked() as mock:
        mock.post(f"{MOCK_API}/aigc_images/train",
                  payload={"code": "OK", "data": {"job_id": 7, "model_id": "m-7"}})  # fmt: skip
        mock.post(f"{MOCK_API}/async_jobs/7", payload={"code": "OK", "data": {"job": job}},
                  repeat=True)  # fmt: skip
        args = ["batch", str(batch), "--out", str(out), "--no-progress", "--poll", "0.05"]
        assert main([*args, *MOCK]) == cli.EXIT_OK
    line = capsys.readouterr().out.splitlines()[0]
    assert line == (
        f"ok      bob  train model_id m-7  {out / 'trainings' / 'bob.json'}"
        "  (2 of 5 photos rejected by the service's check)"
    )


async def test_a_portrait_file_gone_since_the_last_run_is_reported_with_the_flag_that_recreates(
    emu: Emulator, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "one.csv"
    batch.write_text(
        f"kind,key,model_id,template\nsolo,me,{world.astronaut},{template(emu, world, 0)}\n"
    )
    out = tmp_path / "out"
    args = ["batch", str(batch), "--out", str(out), "--no-progress"]
    assert await run(emu, *args) == cli.EXIT_OK
    (out / "me.jpg").unlink()
    capsys.readouterr()
    assert await run(emu, *args) == cli.EXIT_BATCH_FAILED
    text = capsys.readouterr().out
    assert "PortraitMissing" in text
    assert "re-run with --recreate-missing" in text  # the flag, not recreate_missing=True
    assert emu.counters.creations == 1
    assert await run(emu, *args, "--recreate-missing") == cli.EXIT_OK
    assert (out / "me.jpg").exists()
    assert emu.counters.creations == 2


async def test_a_batch_on_a_journal_another_run_holds_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "b.csv"
    batch.write_text("kind,model_id,template\nsolo,m,http://x/t.jpg\n")
    out = tmp_path / "out"
    args = _closed("batch", str(batch), "--out", str(out))
    async with (
        aiportrait.Session(args[args.index("--host") + 1], "a", "t") as session,
        session.create_many({}, journal=out / cli.DEFAULT_JOURNAL),  # another run, holding it
    ):
        assert await asyncio.to_thread(main, args) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "JournalLocked" in err
    assert str(out / cli.DEFAULT_JOURNAL) in err


async def test_timeout_is_in_seconds_per_try(
    emu: Emulator, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.faults = Faults(latency=30.0)  # no answer for 30 s: a timeout of 0.2 s ends the call
    photo = urls(emu, world, "astronaut")[0]
    assert await run(emu, "check", photo, "--timeout", "0.2", "--tries", "1") == cli.EXIT_TRANSPORT
    assert "aiportrait: error: RequestTimeout: " in capsys.readouterr().err
