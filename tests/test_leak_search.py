"""Issue 21's leak search: a run that uploads local photos leaves no usable presigned URL
anywhere (output, log records, hook events, reprs, pickles, tracebacks with locals, files, the
emulator's data), and what it writes is private (files 0600, folders 0700).

The run is made once for the module (:func:`tests.leak_search.collect`)."""

from __future__ import annotations

import asyncio

import pytest

from aiportrait.samples import SamplePhotos
from tests.leak_search import SIGNATURE, Evidence, collect

pytest.importorskip("alibabacloud_oss_v2")
pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def evidence(sample_media: SamplePhotos, tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    return asyncio.run(collect(sample_media, tmp_path_factory.mktemp("leaks")))


def test_no_output_file_repr_pickle_or_traceback_holds_a_presigned_signature(
    evidence: Evidence,
) -> None:
    assert len(evidence.places) > 100  # the flows really ran and were gathered
    found = evidence.found(SIGNATURE)
    assert not found, f"{SIGNATURE.decode()} found in {len(found)} places:\n" + "\n".join(found)


def test_what_a_run_writes_is_private(evidence: Evidence) -> None:
    assert evidence.modes  # files and folders were written
    wrong = evidence.wrong_modes()
    assert not wrong, "want files 0600 and folders 0700:\n" + "\n".join(wrong)
