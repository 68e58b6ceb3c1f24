"""Batch generation: hundreds of portraits under a concurrency limit, resumable via a journal.

Trains one model (or takes ``--model-id``), then creates ``--count`` portraits (default 200)
with ``Session.create_many(..., limit=..., journal=...)``, showing a progress bar. The journal
(an SQLite file) records each portrait as it is written, and the training as soon as the
service accepts it, so running the same command again after a crash, a Ctrl-C or a
``kill -9`` resumes: finished portraits are read back from disk, nothing is created twice.

Ctrl-C (or SIGTERM) stops the batch gracefully through an :class:`aiportrait.batches.BatchStop`:
nothing new is submitted, and the portraits in flight (already paid for) finish and are saved;
a second Ctrl-C abandons them (they may be charged, their portraits lost).

::

    python examples/batch_generate.py --count 200 --limit 8        # the local emulator
    python examples/batch_generate.py --count 200 --limit 8        # again: creates nothing

    export AIPORTRAIT_HOST=... AIPORTRAIT_APP_ID=... AIPORTRAIT_TOKEN=...
    python examples/batch_generate.py --model-id ID --templates URL1 URL2 --count 500

Portraits go to ``<journal stem>_portraits/`` (``batch_generate_portraits/`` by default). The
local emulator keeps its models beside the journal and listens on a free port the first time,
then on the same port in each re-run (it is kept beside the journal too), so that a re-run
sends the same requests (same photo URLs) for the journal to recognise. ``--emulator-port N``
chooses the port; a port in use is reported in one line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from _local import PortTaken, connect

import aiportrait
import aiportrait.batches

#: Settings the portraits cycle through, so the batch is not 200 copies of one request.
STYLES = [
    aiportrait.CreateConfig(lora_weights=0.9),
    aiportrait.CreateConfig(lora_weights=0.7, skin_retouching_bool=True),
    aiportrait.CreateConfig(more_like_me=0.8, sharp_ratio=0.3),
    aiportrait.CreateConfig(makeup_transfer=True, makeup_transfer_ratio=0.4),
]


@dataclass
class Summary:
    """What one run did."""

    created: int = 0
    resumed: int = 0
    failed: int = 0
    stopped: int = 0
    seconds: float = 0.0


class Progress:
    """A one-line progress bar on a terminal; a line every tenth of the work elsewhere."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.width = total, width
        self.stream = stream if stream is not None else sys.stdout  # the one of now, not of import
        self.summary = Summary()
        self.started = time.monotonic()
        self.live = self.stream.isatty()
        self._step = max(1, total // 10)

    @property
    def done(self) -> int:
        """Items ended so far, successful or not."""
        s = self.summary
        return s.created + s.resumed + s.failed + s.stopped

    def update(self, outcome: aiportrait.Outcome[Any, aiportrait.Portrait]) -> None:
        """Count an outcome and redraw."""
        if isinstance(outcome.error, aiportrait.errors.BatchStopped):
            self.summary.stopped += 1  # not submitted: a re-run does it
        elif not outcome.ok:
            self.summary.failed += 1
            self.write(f"{outcome.key}: {type(outcome.error).__name__}: {outcome.error}")
        elif outcome.resumed:
            self.summary.resumed += 1
        else:
            self.summary.created += 1
        if self.live or self.done % self._step == 0 or self.done == self.total:
            self.draw()

    def line(self) -> str:
        """The progress line: bar, counts and rate."""
        s, elapsed = self.summary, time.monotonic() - self.started
        filled = self.width * self.done // max(1, self.total)
        bar = "#" * filled + "." * (self.width - filled)
        rate = s.created / elapsed if elapsed > 0 else 0.0
        return (
            f"[{bar}] {self.done}/{self.total}  created {s.created}, "
            f"from the journal {s.resumed}, failed {s.failed}  {rate:.1f}/s"
        )

    def draw(self) -> None:
        """Redraw the bar in place (terminal) or print it as a line."""
        end = "" if self.live else "\n"
        self.stream.write(("\r" if self.live else "") + self.line() + end)
        self.stream.flush()

    def write(self, message: str) -> None:
        """Print a message above the bar."""
        if self.live:
            self.stream.write("\r\033[K")
        self.stream.write(message + "\n")

    def close(self) -> Summary:
        """Finish the bar; returns the summary."""
        if self.live:
            self.stream.write("\n")
        self.summary.seconds = time.monotonic() - self.started
        return self.summary


@contextlib.contextmanager
def stopping_on_signals(stop: aiportrait.batches.BatchStop) -> Iterator[None]:
    """While inside, the first Ctrl-C (or SIGTERM) stops the batches given ``stop``: nothing
    new is submitted, the calls in flight finish and are saved; a second one abandons them."""
    loop = asyncio.get_running_loop()

    def signalled() -> None:
        keys = stop.in_flight
        if not stop.stopped:
            stop.stop()
            print(
                f"\nstopping: {len(keys)} in flight finishing; Ctrl-C again abandons them (they "
                "may be charged and their portraits lost)",
                file=sys.stderr,
            )
        else:
            stop.abandon()
            print(f"abandoning (may be charged): {', '.join(map(str, keys))}", file=sys.stderr)

    added = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows; not the main thread
            loop.add_signal_handler(sig, signalled)
            added.append(sig)
    try:
        yield
    finally:
        for sig in added:
            loop.remove_signal_handler(sig)


def requests(
    model_id: str, templates: Sequence[str], count: int
) -> dict[str, aiportrait.CreateRequest]:
    """The batch: ``count`` requests under stable keys (the journal matches them by key)."""
    return {
        f"portrait-{i:04d}": aiportrait.CreateRequest(
            model_id, templates[i % len(templates)], config=STYLES[i % len(STYLES)]
        )
        for i in range(count)
    }


async def train_once(
    session: aiportrait.Session,
    photos: Sequence[str],
    journal: Path,
    *,
    retry: bool = False,
    stop: aiportrait.batches.BatchStop | None = None,
) -> str:
    """Train the model once: the journal remembers the job, so a re-run does not train again.

    With ``retry`` a training that failed (or was in flight when an earlier run was stopped)
    is submitted again.
    """
    batch = session.train_many(
        {"model": list(photos)},
        journal=journal,
        retry_failed=retry,
        resubmit_unknown=retry,
        stop=stop,
    )
    async with batch as outcomes:
        async for outcome in outcomes:
            how = "from the journal" if outcome.resumed else "trained now"
            result: aiportrait.TrainResult = outcome.unwrap()  # raises JobFailed etc.
            print(f"model {result.model_id} ({how})")
            return result.model_id
    raise AssertionError("train_many yielded no outcome")


async def generate(
    session: aiportrait.Session,
    batch: dict[str, aiportrait.CreateRequest],
    *,
    limit: int,
    journal: Path,
    resubmit_unknown: bool = False,
    retry_failed: bool = False,
    stop: aiportrait.batches.BatchStop | None = None,
) -> Summary:
    """Create every portrait of ``batch``, ``limit`` at a time, with a progress bar."""
    progress = Progress(len(batch))
    outcomes = session.create_many(
        batch,
        limit=limit,
        journal=journal,
        resubmit_unknown=resubmit_unknown,
        retry_failed=retry_failed,
        stop=stop,
    )
    async with outcomes:
        async for outcome in outcomes:
            progress.update(outcome)
    return progress.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="portraits to create (200)")
    parser.add_argument("--limit", type=int, default=8, help="creations in flight at once (8)")
    parser.add_argument("--journal", type=Path, default=Path("batch_generate.sqlite"))
    parser.add_argument("--model-id", help="a trained model (default: train one)")
    parser.add_argument("--photos", nargs="+", metavar="URL", help="photos to train on")
    parser.add_argument("--templates", nargs="+", metavar="URL", help="template images")
    parser.add_argument(
        "--resubmit-unknown",
        action="store_true",
        help="submit again the items that were in flight when an earlier run died",
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="submit again the items that failed"
    )
    parser.add_argument("--train-seconds", type=float, default=2.0, help="local emulator only")
    parser.add_argument(
        "--emulator-port",
        type=int,
        default=None,
        metavar="PORT",
        help="local emulator only (default: the earlier run's port, else a free one)",
    )
    return parser


def _port_taken(exc: PortTaken, journal: Path) -> str:
    """One line saying which port is in use, and what to do."""
    if exc.remembered:
        return (
            f"port {exc.port}, where the earlier run's emulator listened (the journal's photo "
            f"URLs name it), is in use: free it, or start afresh with another --journal than "
            f"{journal}"
        )
    return (
        f"port {exc.port} is in use (another emulator?): give another --emulator-port, or "
        "leave it out to use a free one"
    )


async def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns 0 when every portrait exists, 1 otherwise, 2 on a taken port,
    130 when stopped by Ctrl-C (run it again to resume)."""
    args = _parser().parse_args(argv)
    try:
        return await _run(args)
    except PortTaken as exc:
        print(f"batch_generate: {_port_taken(exc, args.journal)}", file=sys.stderr)
        return 2


async def _run(args: argparse.Namespace) -> int:
    journal: Path = args.journal
    local = {
        "train_seconds": args.train_seconds,
        "port": args.emulator_port,
        "data_dir": journal.with_name(journal.stem + "_emulator"),
    }
    need_photos = args.model_id is None
    async with connect(
        photos=args.photos, templates=args.templates, need_photos=need_photos, **local
    ) as target:
        if target.local:
            print(f"local emulator at {target.emulator.url} (a stand-in: no diffusion)")
        limits = {"max_in_flight": max(16, args.limit + 4), "max_creations": args.limit}
        stop = aiportrait.batches.BatchStop()
        with stopping_on_signals(stop):
            async with target.session(**limits) as session:
                try:
                    model_id = args.model_id or await train_once(
                        session, target.photos, journal, retry=args.retry_failed, stop=stop
                    )
                except aiportrait.errors.BatchStopped:
                    print("stopped; run the same command again to resume", file=sys.stderr)
                    return 130
                except aiportrait.AIPortraitError as exc:
                    print(f"training failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                    print("re-run with --retry-failed to train again", file=sys.stderr)
                    return 1
                batch = requests(model_id, target.templates, args.count)
                summary = await generate(
                    session,
                    batch,
                    limit=args.limit,
                    journal=journal,
                    resubmit_unknown=args.resubmit_unknown,
                    retry_failed=args.retry_failed,
                    stop=stop,
                )
    folder = journal.with_name(journal.stem + "_portraits")
    print(
        f"{summary.created} created now, {summary.resumed} from an earlier run, "
        f"{summary.failed} failed, in {summary.seconds:.1f}s; portraits in {folder}/"
    )
    if summary.stopped:
        print(
            f"stopped: {summary.stopped} not submitted; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    return 1 if summary.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        print("\nstopped; run the same command again to resume", file=sys.stderr)
        sys.exit(130)
