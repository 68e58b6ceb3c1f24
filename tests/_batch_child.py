"""A batch run in its own process, for the kill-and-resume test (tests/test_batch_kill.py).

Usage: python -m tests._batch_child CONFIG_JSON [--resubmit-unknown]
Trains two models from photo sets, then creates portraits with them, all under one journal.
Prints one JSON line per outcome and a final summary line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiportrait
from aiportrait import CreateRequest, PollPolicy, Session


def _report(kind: str, o: aiportrait.Outcome[Any, Any]) -> None:
    error = type(o.error).__name__ if o.error else None
    line = {"kind": kind, "key": o.key, "ok": o.ok, "resumed": o.resumed, "error": error}
    print(json.dumps(line), flush=True)


async def main(config: dict[str, Any], resubmit: bool) -> None:
    poll = PollPolicy(first=0.05, growth=0.5, cap=0.1, jitter=0.0, timeout=60)
    async with Session(config["url"], config["app_id"], config["token"], poll=poll) as session:
        trained: dict[str, str] = {}
        async for o in session.train_many(
            config["sets"], journal=config["journal"], resubmit_unknown=resubmit, limit=2
        ):
            _report("train", o)
            if o.ok:
                trained[o.key] = o.value.model_id
        requests = {
            f"{who}@{i}": CreateRequest(trained[who], template)
            for who in sorted(trained)
            for i, template in enumerate(config["templates"])
        }
        unknown = []
        async for o in session.create_many(
            requests, journal=config["journal"], resubmit_unknown=resubmit, limit=2
        ):
            if isinstance(o.error, aiportrait.SubmitOutcomeUnknown):
                unknown.append(o.key)
            _report("create", o)
        print(json.dumps({"summary": True, "unknown": unknown}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]), "--resubmit-unknown" in sys.argv))
