"""``SessionBatches``: a Session's batches (:meth:`create_many`, :meth:`train_many`) and their
dry run (:meth:`plan_many`). The batch runner gets the Session's ``send`` and ``wait``, never
the Session."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._requests import ImageInput, TrainRequest
from ..models import Portrait
from .core import SessionCore

if TYPE_CHECKING:
    from .._batches.items import BatchItems
    from .._batches.outcomes import Outcomes
    from .._batches.stop import BatchStop
    from .._requests import AnyCreateRequest
    from .._retrying.budget import Budget
    from ..models import BatchPlan

__all__ = ["SessionBatches"]


class SessionBatches(SessionCore):
    """The batch methods of :class:`aiportrait.Session` (see there)."""

    def create_many(
        self,
        requests: BatchItems[AnyCreateRequest],
        *,
        limit: int | None = None,
        fail_fast: bool = False,
        journal: str | os.PathLike[str] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        resubmit_unknown: bool = False,
        retry_failed: bool = False,
        recreate_missing: bool = False,
        budget: Budget | None = None,
        stop: BatchStop | None = None,
        shared_files: bool = False,
    ) -> Outcomes[AnyCreateRequest, Portrait]:
        """Create many portraits concurrently; yields an :class:`Outcome` per item as it ends.

        Args:
            requests: create requests (:class:`CreateRequest`, :class:`GroupCreateRequest`,
                :class:`ReferenceCreateRequest`, :class:`PromptCreateRequest`), as a mapping
                ``key -> request``, ``(key, request)`` pairs, or bare requests (key: position).
                Templates and reference photos may be local files or bytes
                (``CreateRequest(model_id, Path("t.jpg"))``).
            limit: items in flight at once (default: the Session's creation capacity).
            fail_fast: stop the batch at the first failed item and raise its error.
            journal: an SQLite file that makes the batch resumable.
            out_dir: write each portrait there as ``<key>.<ext>`` (default with a journal: a
                folder beside it named ``<journal stem>_portraits``). A key that is not a plain
                lower-case name or a non-negative int gets a digest after ``~`` in its name,
                so that distinct keys never share a file.
            resubmit_unknown: on a re-run, submit again the items that were on their way to the
                service when the earlier run stopped (they may run twice); otherwise they come
                back as :class:`~aiportrait.errors.SubmitOutcomeUnknown`. Items that were
                still waiting for a slot never left: they are simply sent.
            retry_failed: on a re-run, submit again the items that failed before.
            recreate_missing: on a re-run, create (and pay for) again a finished portrait whose
                file is not in ``out_dir`` any more; otherwise it comes back as
                :class:`~aiportrait.errors.PortraitMissing`.
            budget: a :class:`~aiportrait.Budget` for this batch, on top of the Session's: an
                item beyond either ends with :class:`~aiportrait.errors.BudgetExhausted` (not
                uploaded, sent or charged) and stays new in the journal.
            stop: a :class:`~aiportrait.batches.BatchStop` to stop the batch gracefully:
                once stopped, nothing more is submitted, the calls in flight finish and are
                saved within its grace, and the items not submitted end with
                :class:`~aiportrait.errors.BatchStopped` (a re-run does them). The batch stops
                itself the same way on an error that would repeat for every item (quota
                exceeded, unknown app, signature mismatch).
            shared_files: create the journal, folders and portraits by the umask (``0644``,
                for a web server), not private (``0600``, folders ``0700``).

        A journal is owned by one run at a time: a second run on the same file, in this
        process or another, raises :class:`~aiportrait.errors.JournalLocked` here; a file that
        is not a readable journal raises :class:`~aiportrait.errors.JournalError`.

        Local photos (files or bytes in an item) are read when the item starts (a bad file
        fails that item only, with :class:`~aiportrait.errors.LocalPhotoError`), then
        checked, cleaned and uploaded with the Session's ``uploader`` right before the item's
        charged call. The journal binds such an item to its files' content, not their URLs,
        and (with an uploader that can, such as :class:`~aiportrait.uploads.OSSUploader`)
        remembers the uploads (object key and content hash, never a URL): a re-run neither
        uploads again nor runs a finished item again (a URL is presigned again). An outcome's
        ``request`` is the item as given.
        """
        from .._batches.batch import create_many  # batches (and sqlite3) load only when used

        return create_many(
            self._send,
            self._wait,
            self._caller.limits.capacity("create"),
            requests,
            limit=limit,
            fail_fast=fail_fast,
            journal=journal,
            out_dir=out_dir,
            resubmit_unknown=resubmit_unknown,
            retry_failed=retry_failed,
            recreate_missing=recreate_missing,
            hooks=self._hooks,
            upload=self._upload,
            budgets=(budget, self._budget),
            stop=stop,
            shared_files=shared_files,
        )

    def train_many(
        self,
        image_sets: BatchItems[TrainRequest | Sequence[ImageInput]],
        *,
        limit: int | None = None,
        wait: bool = True,
        fail_fast: bool = False,
        journal: str | os.PathLike[str] | None = None,
        resubmit_unknown: bool = False,
        retry_failed: bool = False,
        budget: Budget | None = None,
        stop: BatchStop | None = None,
        shared_files: bool = False,
    ) -> Outcomes[TrainRequest, Any]:
        """Train many models concurrently; yields an :class:`Outcome` per item as it ends.

        Args:
            image_sets: photo sets (lists of URLs, local files or bytes, each becoming a
                ``TrainRequest(set)``) or :class:`TrainRequest` objects
                (``TrainRequest(paths, sdxl=True, force=True)``), as a mapping ``key -> set``,
                ``(key, set)`` pairs, or bare sets (key: position).
            limit: trainings in progress at once (default: ``max_trainings``, else
                ``max_in_flight``).
            wait: watch each training to its end (value: :class:`TrainResult`); with False,
                the value is the :class:`TrainJob` as soon as the service accepts it.
            fail_fast: stop at the first failed item and raise its error.
            journal: an SQLite file that makes the batch resumable; a training is recorded
                with its job id before any polling, so a re-run resumes watching it.
            resubmit_unknown: see :meth:`create_many`.
            retry_failed: see :meth:`create_many`.
            budget: see :meth:`create_many` (it counts trainings submitted, not watched).
            stop: see :meth:`create_many`; a stop ends the watching of trainings at once
                (their job ids are in the journal: a re-run watches them again, and an
                outcome says :class:`~aiportrait.errors.BatchStopped` with the job).
            shared_files: see :meth:`create_many`.

        Local photos are handled per item as in :meth:`create_many`: read when the item starts,
        checked on this machine (a failure is :class:`~aiportrait.errors.PreflightFailed` for
        that item, unless the item's ``force``), cleaned and uploaded right before it is
        trained; nothing is charged for an item whose photos were refused.
        """
        from .._batches.batch import train_many  # batches (and sqlite3) load only when used

        return train_many(
            self._send,
            self._wait,
            self._caller.limits.capacity("train"),
            image_sets,
            durations=self._durations,
            limit=limit,
            wait_for_end=wait,
            fail_fast=fail_fast,
            journal=journal,
            resubmit_unknown=resubmit_unknown,
            retry_failed=retry_failed,
            hooks=self._hooks,
            upload=self._upload,
            budgets=(budget, self._budget),
            stop=stop,
            shared_files=shared_files,
        )

    async def plan_many(
        self,
        trainings: BatchItems[TrainRequest | Sequence[ImageInput]] = (),
        creations: BatchItems[AnyCreateRequest] = (),
        *,
        journal: str | os.PathLike[str] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        resubmit_unknown: bool = False,
        retry_failed: bool = False,
        recreate_missing: bool = False,
        budget: Budget | None = None,
    ) -> BatchPlan:
        """A dry run of :meth:`train_many` and :meth:`create_many` with these arguments: what
        they would do now (a :class:`~aiportrait.models.BatchPlan`), with nothing uploaded, sent
        or charged. Local files are read, the photos of each training that would be sent are
        checked on this machine (unless ``force``), the journal is only looked at."""
        from .._batches.plan import plan_batch  # batches (and sqlite3) load only when used

        return await plan_batch(
            trainings,
            creations,
            journal=journal,
            out_dir=out_dir,
            resubmit_unknown=resubmit_unknown,
            retry_failed=retry_failed,
            recreate_missing=recreate_missing,
            budgets=(budget, self._budget),
        )
