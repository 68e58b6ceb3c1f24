"""A minimal, fast AI Portrait stand-in for client benchmarks (canned answers, no signature check).

Usage: python benchmarks/_fast_server.py PORT [--create-delay S] [--image-mb MB] [--checks N]
Prints "up" when listening. It answers check, job and create with fixed envelopes; create
sleeps ``--create-delay`` seconds (a fixed service time) and returns an image of ``--image-mb``;
a check answers ``--checks`` verdicts (default 5, a training's smallest photo set).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os

from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--create-delay", type=float, default=0.0)
    parser.add_argument("--image-mb", type=float, default=0.001)
    parser.add_argument("--checks", type=int, default=5)
    args = parser.parse_args()
    size = max(16, int(args.image_mb * 1024 * 1024))
    image = b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)
    urls = [f"https://x/{i}.jpg" for i in range(args.checks)]
    check = json.dumps({
        "request_id": "r", "code": "OK", "message": "success",
        "data": {"request_id": "r", "images": urls, "cost_time": 0.1,
                 "check_results": [{"code": 1, "frontal": True, "message": "success",
                                    "url": url} for url in urls]},
    }).encode()  # fmt: skip
    result = json.dumps({"cost_time": 300.0, "states": [], "model_id": "m-1"})
    job = json.dumps({
        "request_id": "r", "code": "OK", "message": "success",
        "data": {"job": {"id": 1, "app_id": "a", "state": 2, "message": "success",
                         "Result": result}},
    }).encode()  # fmt: skip
    create = (
        b'{"request_id":"r","code":"OK","message":"success","data":{"cost_time":1.0,"image":"'
        + base64.b64encode(image)
        + b'"}}'
    )

    async def answer_check(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=check, content_type="application/json")

    async def answer_job(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=job, content_type="application/json")

    async def answer_create(request: web.Request) -> web.Response:
        await request.read()
        if args.create_delay:
            await asyncio.sleep(args.create_delay)
        return web.Response(body=create, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v1/aigc_images/check", answer_check)
    app.router.add_post("/api/v1/async_jobs/{id}", answer_job)
    app.router.add_post("/api/v1/aigc_images/create", answer_create)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        print=lambda *_: print("up", flush=True),
        access_log=None,
        backlog=1024,
    )


if __name__ == "__main__":
    main()
