"""The batch journal: ownership, atomic claims, typed keys, file stems, bad files; and what a
batch keeps in it (one file per key, ambiguous items kept, items never sent forgotten)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import aiportrait
from aiportrait import CreateRequest, RetryPolicy, Session, TrainRequest
from aiportrait._batches import journal_format
from aiportrait._batches import lockfile as _lockfile
from aiportrait._batches.journal import Journal, key_text
from aiportrait._batches.keys import file_stem
from tests._mock import OK_IMAGE, PHOTOS, TIMEOUT, Fake
from tests._server import closed_url

HOLD = """
import sys
from aiportrait._batches.journal import Journal
journal = Journal(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()  # until the parent closes our stdin
journal.close()
"""


def test_second_run_on_a_locked_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    first = Journal(path)
    with pytest.raises(aiportrait.errors.JournalLocked) as refused:
        Journal(path)
    assert refused.value.path == path
    assert f"pid {os.getpid()}" in refused.value.holder
    assert str(path) in str(refused.value)
    assert f"pid {os.getpid()}" in str(refused.value)
    assert isinstance(refused.value, aiportrait.AIPortraitError)
    first.close()
    Journal(path).close()  # free again once the first run ends


def test_a_journal_held_by_another_process_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "holding"
        with pytest.raises(aiportrait.errors.JournalLocked) as refused:
            Journal(path)
        assert f"pid {child.pid}" in refused.value.holder
        assert f"pid {child.pid}" in str(refused.value)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)
    Journal(path).close()  # the lock went with the process


def test_looking_at_a_journal_does_not_take_it(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    owner = Journal(path)
    owner.put("create", key_text("a"), "fp", "done")
    viewer = Journal(path, lock=False)
    assert viewer.counts() == {"done": 1}
    with pytest.raises(aiportrait.InvalidArgument, match="look at only"):
        viewer.put("create", key_text("b"), "fp", "done")
    viewer.close()
    owner.close()


def _twin_journals(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Journal, Journal]:
    """Two writable connections to one file, as two workers sharing it would have."""
    monkeypatch.setattr(_lockfile, "_try_lock", lambda fd: True)
    return Journal(path), Journal(path)


def _race(claims: list[object]) -> list[bool]:
    """Run the claims at the same moment from two threads; return who won."""
    barrier = threading.Barrier(len(claims))
    won: list[bool] = [False] * len(claims)

    def run(i: int) -> None:
        barrier.wait()
        won[i] = claims[i]()  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(claims))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def test_only_one_of_two_claims_on_an_item_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = _twin_journals(tmp_path / "j.sqlite", monkeypatch)
    key = key_text("a")
    # A new item: both saw no row.
    won = _race([lambda: one.claim("create", key, "fp", None),
                 lambda: two.claim("create", key, "fp", None)])  # fmt: skip
    assert sorted(won) == [False, True]
    assert one.counts() == {"submitting": 1}
    # A failed item retried by both: both saw the same failed row.
    one.put("create", key, "fp", "failed", error="boom")
    seen = one.get("create", key, "fp")
    assert seen is not None
    won = _race([lambda: one.claim("create", key, "fp", seen),
                 lambda: two.claim("create", key, "fp", seen)])  # fmt: skip
    assert sorted(won) == [False, True]
    record = two.get("create", key, "fp")
    assert record is not None
    assert (record.status, record.attempts) == ("submitting", 2)
    # A claim made from a stale view of the row loses, even alone.
    assert not two.claim("create", key, "fp", seen)
    one.close()
    two.close()


def test_a_released_claim_leaves_the_row_as_it_was(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    new, unknown = key_text("new"), key_text("unknown")
    assert journal.claim("create", new, "fp", None)
    journal.release("create", new, "fp", None)
    assert journal.get("create", new, "fp") is None  # never left: simply new again
    journal.put("create", unknown, "fp", "submitting")  # an earlier run's ambiguous call
    seen = journal.get("create", unknown, "fp")
    assert journal.claim("create", unknown, "fp", seen)
    journal.release("create", unknown, "fp", seen)
    assert journal.get("create", unknown, "fp") == seen  # still unknown, as before
    journal.close()


def test_a_key_stays_bound_to_its_request_on_every_write(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    key = key_text("a")
    journal.put("create", key, "fp-1", "done", data={"file": "a.png"})
    with pytest.raises(aiportrait.InvalidArgument, match="different request"):
        journal.put("create", key, "fp-2", "failed", error="x")
    assert not journal.claim("create", key, "fp-2", journal.get("create", key, "fp-1"))
    record = journal.get("create", key, "fp-1")
    assert record is not None
    assert (record.fingerprint, record.status, record.data) == ("fp-1", "done", {"file": "a.png"})
    journal.close()


def test_keys_are_stored_with_their_type() -> None:
    texts = {key_text(k) for k in (1, "1", 1.0, True, (1,), "int:1", None)}
    assert len(texts) == 7
    assert key_text("1") == "str:1"
    assert key_text(1) == "int:1"


def test_file_stems_never_collide() -> None:
    old_hashed = "a_b-" + hashlib.sha1(b"a b").hexdigest()[:10]  # the old stem of "a b"
    keys: list[object] = [
        "a b", "a_b", old_hashed, file_stem("a b"), 1, "1", 0, "0", -1, "-1", "01",
        "Alice", "alice", "ALICE", "", ".", "..", ".hidden", "x" * 100, "x" * 101, True, 1.5,
        "a.png", "a", "é", "e",
    ]  # fmt: skip
    stems = [file_stem(k) for k in keys]
    assert len({s.casefold() for s in stems}) == len(keys)  # even on a case-insensitive disk
    for key, stem in zip(keys, stems, strict=True):
        assert stem and not stem.startswith((".", "-")), key
        assert "/" not in stem and len(stem) <= 100, key
    assert file_stem("alice") == "alice"
    assert file_stem("a.v2") == "a.v2"
    assert file_stem(7) == "7"
    assert file_stem("1").startswith("1~")


def test_an_unreadable_journal_file_is_a_library_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database, not at all" * 200)
    with pytest.raises(aiportrait.errors.JournalError, match="move it aside") as raised:
        Journal(garbage)
    assert raised.value.path == garbage
    assert str(garbage) in str(raised.value)
    with pytest.raises(aiportrait.errors.JournalError):
        Journal(garbage)  # not JournalLocked: the failed open released the lock

    truncated = tmp_path / "truncated.sqlite"
    journal = Journal(truncated)
    for i in range(300):
        journal.put("create", key_text(i), "fp", "done", data={"pad": "x" * 500})
    journal.close()
    size = truncated.stat().st_size
    with truncated.open("r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(aiportrait.errors.JournalError, match="move it aside"):
        Journal(truncated)


def test_a_garbage_row_is_a_library_error_naming_the_item(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.put("create", key_text("a"), "fp", "done", data={"file": "a.png"})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE items SET data = '{not json'")
    with pytest.raises(aiportrait.errors.JournalError, match="move it aside") as raised:
        journal.get("create", key_text("a"), "fp")
    assert raised.value.key is not None
    assert raised.value.path == path
    journal.close()


def test_a_journal_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the format before keys carried their type
        db.execute(journal_format.ITEMS_TABLE)
        db.execute("INSERT INTO items (kind, key, fingerprint, status, updated)"
                   " VALUES ('create', '1', 'fp', 'submitting', 0)")  # fmt: skip
    with pytest.raises(aiportrait.errors.JournalError, match="another version"):
        Journal(path)


# -- what a batch keeps in its journal ----------------------------------------------------------


async def test_dotted_and_prefixed_keys_keep_their_own_files(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    requests = {
        "alice.smith": CreateRequest("m", "https://t/1.jpg"),
        "a": CreateRequest("m", "https://t/2.jpg"),
        "a.v2": CreateRequest("m", "https://t/3.jpg"),
    }
    with Fake(ok=OK_IMAGE) as fake:
        async with Session(fake.url, "a", "t") as session:
            first = await session.create_many(requests, journal=journal).collect()
            again = await session.create_many(requests, journal=journal).collect()
    assert len(fake.requests) == 3  # the re-run created nothing
    paths = {o.key: o.path for o in first}
    assert {p.name for p in paths.values() if p} == {"alice.smith.png", "a.png", "a.v2.png"}
    assert all(o.resumed and o.path == paths[o.key] for o in again)


async def test_journal_keeps_ambiguous_items_and_forgets_unsent_ones(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    request = TrainRequest(PHOTOS)
    with Fake([TIMEOUT]) as fake:  # sent, then no answer in time: it may have run
        async with Session(fake.url, "a", "t") as session:
            (first,) = await session.train_many([request], journal=journal).collect()
            assert isinstance(first.error, aiportrait.SubmitOutcomeUnknown)
            assert Journal(journal).counts("train") == {"submitting": 1}
            # retry_failed does not touch it: it is not a failure, it is unknown.
            again = session.train_many([request], journal=journal, retry_failed=True)
            (second,) = await again.collect()
            assert isinstance(second.error, aiportrait.SubmitOutcomeUnknown)
            assert second.error.request == request
            assert len(fake.requests) == 1
    refused = Session(await closed_url(), "a", "t", retry=RetryPolicy.NEVER)
    (third,) = await refused.create_many(
        [CreateRequest("m", "https://t/x.jpg")], journal=tmp_path / "k.sqlite"
    ).collect()
    await refused.aclose()
    assert isinstance(third.error, aiportrait.errors.ConnectError)
    assert Journal(tmp_path / "k.sqlite").counts() == {}  # never left: nothing to remember
