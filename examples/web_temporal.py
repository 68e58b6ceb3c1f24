"""The web backend in Temporal mode: trainings are workflows, their state streams over SSE.

Nothing is kept in this process: every training is a :class:`aiportrait.temporal.TrainWorkflow`
on the cluster, so a restart of this web process, or of the workers, loses nothing; a client
reconnects to ``/trainings/{id}/events`` and the stream goes on from the workflow's query.

Endpoints:

- ``POST /trainings`` with ``{"photos": [URL, ...], "check": true}``: starts a training and
  answers ``202`` with ``{"id": WORKFLOW_ID}``.
- ``GET /trainings/{id}``: the training's progress now (stage, job, state, elapsed, expected
  remaining), or its result.
- ``GET /trainings/{id}/events``: server-sent events: a ``progress`` event per change, ending
  with ``result`` (``{"model_id": ...}``) or ``failed`` (``{"error": class, "message": ...}``).
  While no worker answers (a deploy), the stream stays open with ``: waiting`` comments.
- ``POST /portraits`` with ``{"model_id": ..., "template": URL}``: runs a
  :class:`~aiportrait.temporal.CreateWorkflow` and answers the image.

Run it against a cluster (``aiportrait temporal dev``, then ``aiportrait temporal worker``)::

    source aiportrait-cluster/env.sh && python examples/web_temporal.py --port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import attrs
from aiohttp import web

import aiportrait
from aiportrait import temporal as at

__all__ = ["make_app"]

CLIENT = web.AppKey("client", Any)
STORE = web.AppKey("store", Any)
QUEUE = web.AppKey("queue", str)
#: Seconds between two progress queries of an event stream.
EVERY = web.AppKey("every", float)


def _error(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"error": name, "message": message}, status=status)


def _progress_doc(progress: at.TrainProgress) -> dict[str, Any]:
    doc = attrs.asdict(progress)
    doc["job"] = progress.job.to_dict() if progress.job else None
    return doc


async def start_training(request: web.Request) -> web.Response:
    """``POST /trainings``."""
    try:
        body = await request.json()
        photos = body["photos"]
        train = aiportrait.TrainRequest(tuple(photos))
    except (ValueError, KeyError, TypeError, aiportrait.InvalidArgument) as exc:
        return _error(400, "BadRequest", f"send {{'photos': [URL, ...]}}: {exc}")
    handle = await at.start_training(
        request.app[CLIENT], train, task_queue=request.app[QUEUE], check=bool(body.get("check"))
    )
    return web.json_response({"id": handle.id}, status=202)


async def _outcome(handle: Any) -> tuple[str, dict[str, Any]] | None:
    """``("result", ...)`` or ``("failed", ...)`` once the workflow has ended, else ``None``."""
    description = await handle.describe()
    if description.status is None or description.status.name == "RUNNING":
        return None
    try:
        trained = await at.result(handle)
    except aiportrait.AIPortraitError as exc:
        return "failed", {"error": type(exc).__name__, "message": str(exc)}
    except Exception as exc:  # terminated, cancelled, timed out
        return "failed", {"error": type(exc).__name__, "message": str(exc)}
    return "result", {"model_id": trained.model_id, "cost_time": trained.cost_time}


async def get_training(request: web.Request) -> web.Response:
    """``GET /trainings/{id}``."""
    handle = request.app[CLIENT].get_workflow_handle(request.match_info["id"])
    try:
        ended = await _outcome(handle)
    except Exception:
        return _error(404, "NotFound", "no such training")
    if ended is not None:
        return web.json_response({ended[0]: ended[1]})
    progress = await handle.query(at.TrainWorkflow.progress)
    return web.json_response({"progress": _progress_doc(progress)})


async def training_events(request: web.Request) -> web.StreamResponse:
    """``GET /trainings/{id}/events``: SSE from the workflow's query until it ends."""
    handle = request.app[CLIENT].get_workflow_handle(request.match_info["id"])
    try:
        await handle.describe()
    except Exception:
        return _error(404, "NotFound", "no such training")
    stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    stream.headers["Cache-Control"] = "no-cache"
    await stream.prepare(request)
    last: Any = None
    while True:
        ended = await _outcome(handle)
        if ended is not None:
            await stream.write(f"event: {ended[0]}\ndata: {json.dumps(ended[1])}\n\n".encode())
            break
        try:
            progress = await handle.query(at.TrainWorkflow.progress)
        except Exception:  # no worker answers now (a deploy): keep the stream, try again
            await stream.write(b": waiting\n\n")
        else:
            shown = (progress.stage, progress.state, progress.job)
            if shown != last:
                last = shown
                data = json.dumps(_progress_doc(progress))
                await stream.write(f"event: progress\ndata: {data}\n\n".encode())
        await asyncio.sleep(request.app[EVERY])
    await stream.write_eof()
    return stream


async def create_portrait(request: web.Request) -> web.Response:
    """``POST /portraits``: create, then answer the stored image."""
    try:
        body = await request.json()
        create = aiportrait.CreateRequest(body["model_id"], body["template"])
    except (ValueError, KeyError, TypeError, aiportrait.InvalidArgument) as exc:
        return _error(400, "BadRequest", f"send {{'model_id': ..., 'template': URL}}: {exc}")
    handle = await at.start_create(request.app[CLIENT], create, task_queue=request.app[QUEUE])
    try:
        ref = await at.result(handle)
    except aiportrait.AIPortraitError as exc:
        status = 422 if isinstance(exc, aiportrait.errors.CreateError) else 502
        return _error(status, type(exc).__name__, str(exc))
    image = await request.app[STORE].get(ref.uri)
    return web.Response(body=image, content_type=f"image/{ref.format}")


def make_app(
    client: Any,
    store: at.PortraitStore,
    *,
    task_queue: str = at.DEFAULT_TASK_QUEUE,
    every: float = 0.5,
) -> web.Application:
    """The application, over a connected Temporal client and the workers' store."""
    app = web.Application()
    app[CLIENT], app[STORE], app[QUEUE], app[EVERY] = client, store, task_queue, every
    app.router.add_post("/trainings", start_training)
    app.router.add_get("/trainings/{id}", get_training)
    app.router.add_get("/trainings/{id}/events", training_events)
    app.router.add_post("/portraits", create_portrait)
    return app


async def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--address", default=os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233"))
    parser.add_argument("--store", default=os.environ.get("AIPORTRAIT_STORE", "aiportrait-store"))
    parser.add_argument("--task-queue", default=at.DEFAULT_TASK_QUEUE)
    args = parser.parse_args(argv)
    client = await at.connect(args.address)
    app = make_app(client, at.LocalPortraitStore(args.store), task_queue=args.task_queue)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    print(f"serving on http://127.0.0.1:{args.port} (Temporal at {args.address})")
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
