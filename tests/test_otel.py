"""``aiportrait.otel``: the spans and metrics of calls, retries, 429s, jobs and batches, against
the emulator over loopback, with the OpenTelemetry SDK's in-memory exporters; ``traceparent``
on the wire; a hook that raises; and no secret in any span, event or metric."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

import aiportrait
import aiportrait.otel
from aiportrait import CreateRequest, PollPolicy
from aiportrait.emulator import Emulator, Faults
from aiportrait.hooks import AnswerReceived, Event
from aiportrait.samples import SamplePhotos, sample_photos
from aiportrait.testing import VirtualClock
from tests._server import Server

FAST = PollPolicy(first=0.02, cap=0.05, jitter=0.0, timeout=30)
JOBS = "/api/v1/async_jobs/"
CREATE = "/api/v1/aigc_images/create"


class Telemetry:
    """The in-memory span exporter and metric reader of one test, and what they hold."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.spans.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def points(self, metric: str) -> list[Any]:
        """The points of ``metric`` (counters: ``.value``; histograms: ``.count``, ``.sum``)."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found

    def total(self, metric: str, **attributes: Any) -> float:
        """The sum of a counter's points (or of a histogram's counts) matching ``attributes``."""
        total = 0.0
        for point in self.points(metric):
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                total += getattr(point, "value", None) or getattr(point, "count", 0)
        return total

    def every_value(self) -> Iterator[str]:
        """Every attribute value and name of every span, span event, link and metric point."""
        for span in self.finished():
            yield span.name
            yield str(span.status.description or "")
            for attrs in (span.attributes, *(e.attributes for e in span.events)):
                for key, value in (attrs or {}).items():
                    yield key
                    yield str(value)
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    for point in m.data.data_points:
                        for key, value in point.attributes.items():
                            yield key
                            yield str(value)


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    aiportrait.otel.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        yield telemetry
    finally:
        aiportrait.otel.uninstrument()
    assert aiportrait.hooks.installed() == ()  # a Session built now has no hook


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SamplePhotos]:
    folder = tmp_path_factory.mktemp("media")
    names = sample_photos(folder)
    return folder, names


@pytest.fixture
async def emu(media: tuple[Path, SamplePhotos], tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(train_seconds=0.05, serve_dir=media[0], data_dir=tmp_path / "d") as e:
        yield e


def secrets_of(emu: Emulator) -> list[str]:
    """The token, and the signature of a request (any of them is as secret)."""
    value = emu.authorization("POST", CREATE, b"{}")
    return [emu.token, value, value.split(":", 1)[1]]


def assert_no_secret(telemetry: Telemetry, secrets: list[str]) -> None:
    values = list(telemetry.every_value())
    assert values, "nothing was recorded"
    for value in values:
        for secret in secrets:
            assert secret not in value
        assert len(value) < 300  # no image data, no long message


def clear_faults_after_one(emu: Emulator) -> Any:
    """A Session hook that turns the emulator's faults off once one fault was answered."""

    def hook(event: Event) -> None:
        if isinstance(event, AnswerReceived) and event.status in (429, 500):
            emu.faults = None

    return hook


async def test_a_read_retried_after_a_500_is_one_client_span_under_the_callers_span(
    emu: Emulator, otel: Telemetry, aiportrait_instant_waits: VirtualClock
) -> None:
    job_id = emu.add_synthetic_job(0.0)
    emu.faults = Faults(rate_5xx=1.0, status_5xx=500, paths=frozenset({JOBS}))
    tracer = otel.tracer_provider.get_tracer("my web app")
    async with emu.session(hooks=[clear_faults_after_one(emu)]) as session:
        with tracer.start_as_current_span("GET /my/route") as outer:
            job = await session.get_job(job_id)
    assert job.done
    (span,) = otel.finished(f"POST {JOBS}{{job_id}}")
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None and span.parent.span_id == outer.get_span_context().span_id
    assert span.context.trace_id == outer.get_span_context().trace_id
    attributes = dict(span.attributes or {})
    assert attributes["http.request.method"] == "POST"
    assert attributes["url.template"] == f"{JOBS}{{job_id}}"
    assert attributes["url.path"] == f"{JOBS}{job_id}"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == emu.port
    assert attributes["aiportrait.app_id"] == emu.app_id
    assert attributes["aiportrait.job_id"] == job_id
    assert attributes["aiportrait.outcome"] == "ok"
    assert attributes["aiportrait.attempts"] == 2
    assert attributes["http.request.resend_count"] == 1
    assert attributes["http.response.status_code"] == 200
    assert len(str(attributes["aiportrait.request_id"])) == 36  # the query's own (a uuid)
    assert span.status.status_code is StatusCode.UNSET
    (retry,) = [e for e in span.events if e.name == "aiportrait.retry"]
    assert str((retry.attributes or {})["aiportrait.retry.reason"]).startswith("HTTP 500")
    # metrics: one call, one retry, two tries (a 500 and a 200), nothing left in flight
    template = f"{JOBS}{{job_id}}"
    assert otel.total("aiportrait.client.calls", **{"aiportrait.outcome": "ok"}) == 1
    assert otel.total("aiportrait.client.retries", **{"url.template": template}) == 1
    assert otel.total("http.client.request.duration", **{"http.response.status_code": 500}) == 1
    assert otel.total("http.client.request.duration", **{"http.response.status_code": 200}) == 1
    (failed_try,) = [
        p
        for p in otel.points("http.client.request.duration")
        if p.attributes.get("http.response.status_code") == 500
    ]
    assert failed_try.attributes["error.type"] == "ServerError"
    assert [p.value for p in otel.points("aiportrait.client.active_calls")] == [0]
    assert_no_secret(otel, secrets_of(emu))


async def test_a_429_shows_its_cool_down_on_the_span_and_in_the_metrics(
    emu: Emulator, otel: Telemetry, aiportrait_instant_waits: VirtualClock
) -> None:
    job_id = emu.add_synthetic_job(0.0)
    emu.faults = Faults(rate_429=1.0, retry_after=2, paths=frozenset({JOBS}))
    async with emu.session(hooks=[clear_faults_after_one(emu)]) as session:
        assert (await session.get_job(job_id)).done
    (span,) = otel.finished()
    names = [e.name for e in span.events]
    assert names == ["aiportrait.cooldown", "aiportrait.retry"]
    cooldown = dict(span.events[0].attributes or {})
    assert cooldown["aiportrait.cooldown.seconds"] == 2.0
    assert cooldown["aiportrait.retry_after"] == 2.0
    assert (span.attributes or {})["aiportrait.outcome"] == "ok"
    assert otel.total("aiportrait.client.rate_limited") == 1
    assert otel.total("aiportrait.client.retries", **{"aiportrait.retry.reason": "429"}) == 1
    (pause,) = otel.points("aiportrait.client.cooldown.duration")
    assert (pause.count, pause.sum) == (1, 2.0)
    assert aiportrait_instant_waits.time >= 2.0  # the call waited it out (on the virtual clock)


async def test_an_outage_pause_shows_on_the_span_and_its_length_in_the_metrics(
    emu: Emulator, otel: Telemetry, aiportrait_instant_waits: VirtualClock
) -> None:
    emu.faults = Faults(rate_5xx=1.0, status_5xx=500)
    outage = aiportrait.OutagePolicy(threshold=1)
    async with emu.session(outage=outage, retry=aiportrait.RetryPolicy.NEVER) as session:
        with pytest.raises(aiportrait.errors.ServerError):
            await session.get_batch_jobs(3)  # its 500 starts the pause
        create = asyncio.create_task(session.create("nope", "https://example.invalid/t.jpg"))
        with aiportrait_instant_waits.deadline(5):  # the probes' waits move the clock on
            await anyio.sleep_forever()
        emu.faults = None
        with pytest.raises(aiportrait.errors.ModelIdError):
            await create  # held until a probe was answered, then sent
    read = otel.finished("GET /api/v1/batch_jobs/{batch_id}")[0]
    (event,) = [e for e in read.events if e.name == "aiportrait.outage"]
    attributes = dict(event.attributes or {})
    assert str(attributes["aiportrait.outage.reason"]).startswith("HTTP 500")
    assert attributes["aiportrait.failures"] == 1
    (pause,) = otel.points("aiportrait.client.outage.duration")
    assert pause.count == 1 and pause.sum >= 5


async def test_a_failed_training_is_one_job_span_with_its_state_changes_and_its_polls_below(
    emu: Emulator, otel: Telemetry, media: tuple[Path, SamplePhotos]
) -> None:
    photos = [emu.media_url(n) for n in media[1].astronaut[:2]]
    emu.faults = Faults(job_failure=1.0)
    async with emu.session(poll=FAST) as session:
        with pytest.warns(aiportrait.errors.PhotoCountWarning):  # two photos: quick
            job = await session.train(photos)
        with pytest.raises(aiportrait.JobFailed):
            await session.wait(job)
    (train,) = otel.finished("POST /api/v1/aigc_images/train")
    assert (train.attributes or {})["aiportrait.job_id"] == job.job_id
    (watch,) = otel.finished("aiportrait job")
    assert watch.status.status_code is StatusCode.ERROR
    attributes = dict(watch.attributes or {})
    assert attributes["aiportrait.job_id"] == job.job_id
    assert attributes["aiportrait.job.outcome"] == "failed"
    assert attributes["aiportrait.job.state"] == "FAILED"
    states = [(e.attributes or {})["aiportrait.job.state"] for e in watch.events]
    assert states[-1] == "FAILED" and len(states) == len(set(states))
    polls = otel.finished(f"POST {JOBS}{{job_id}}")
    assert len(polls) == attributes["aiportrait.job.polls"] >= 1
    for poll in polls:
        assert poll.parent is not None and poll.parent.span_id == watch.context.span_id
    (duration,) = otel.points("aiportrait.job.duration")
    assert duration.attributes["aiportrait.job.outcome"] == "failed" and duration.count == 1
    (per_job,) = otel.points("aiportrait.job.polls")
    assert per_job.sum == len(polls)
    assert_no_secret(otel, secrets_of(emu))


async def test_a_batch_is_one_span_with_its_counts_and_its_calls_below(
    emu: Emulator, otel: Telemetry, media: tuple[Path, SamplePhotos]
) -> None:
    names = media[1]
    async with emu.session(poll=FAST) as session:
        with pytest.warns(aiportrait.errors.PhotoCountWarning):  # two photos: quick
            job = await session.train([emu.media_url(n) for n in names.astronaut[:2]])
        model_id = (await session.wait(job)).model_id
        otel.spans.clear()
        template = emu.media_url(names.templates[0])
        requests = {
            "a": CreateRequest(model_id, template),
            "b": CreateRequest(model_id, template),
            "bad": CreateRequest("no-such-model", template),
        }
        outcomes = {o.key: o async for o in session.create_many(requests, limit=2)}
    assert outcomes["a"].ok and outcomes["b"].ok and not outcomes["bad"].ok
    (batch,) = otel.finished("aiportrait create_many")
    attributes = dict(batch.attributes or {})
    assert (attributes["aiportrait.batch.items"], attributes["aiportrait.batch.ok"]) == (3, 2)
    assert attributes["aiportrait.batch.failed"] == 1
    creates = otel.finished(f"POST {CREATE}")
    assert len(creates) == 3
    for create in creates:
        assert create.parent is not None and create.parent.span_id == batch.context.span_id
    failed = [s for s in creates if (s.attributes or {})["aiportrait.outcome"] == "failed"]
    assert len(failed) == 1 and failed[0].status.status_code is StatusCode.ERROR
    assert "error.type" in (failed[0].attributes or {})
    assert otel.total("aiportrait.batch.items", **{"aiportrait.outcome": "ok"}) == 2
    assert otel.total("aiportrait.batch.items", **{"aiportrait.outcome": "failed"}) == 1
    (cost,) = otel.points("aiportrait.create.cost_time")
    assert cost.count == 2
    assert otel.total("aiportrait.client.calls", **{"aiportrait.kind": "create"}) == 3
    assert_no_secret(otel, secrets_of(emu))


async def test_a_hook_that_raises_is_logged_once_and_the_call_and_its_span_go_on(
    emu: Emulator, otel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("my metrics backend is down")

    job_id = emu.add_synthetic_job(0.0)
    aiportrait.hooks.add_hook(broken)
    try:
        async with emu.session() as session:
            with caplog.at_level(logging.WARNING, "aiportrait"):
                assert (await session.get_job(job_id)).done
                assert (await session.get_job(job_id)).done
    finally:
        aiportrait.hooks.remove_hook(broken)
    assert sum("hook" in r.getMessage() for r in caplog.records) == 1
    assert len(otel.finished()) == 2


async def test_traceparent_reaches_the_emulator_and_carries_the_calls_span(
    emu: Emulator, otel: Telemetry
) -> None:
    sent: list[dict[str, str]] = []

    async def on_headers(_: Any, __: Any, params: aiohttp.TraceRequestHeadersSentParams) -> None:
        sent.append(dict(params.headers))

    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(on_headers)
    job_id = emu.add_synthetic_job(0.0)
    async with aiohttp.ClientSession(trace_configs=[config]) as client:
        async with emu.session(session=client) as session:
            assert (await session.get_job(job_id)).done  # the emulator checked the signature
        aiportrait.otel.uninstrument()
        async with emu.session(session=client) as session:  # built after: not instrumented
            assert (await session.get_job(job_id)).done
    (span,) = otel.finished()
    first, second = sent
    version, trace_id, span_id, flags = first["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled
    assert int(trace_id, 16) == span.context.trace_id
    assert int(span_id, 16) == span.context.span_id
    assert "traceparent" not in second  # not instrumented: nothing added
    assert first["Authorization"].split(":")[0] == emu.app_id


async def test_traceparent_as_a_server_receives_it_and_the_signed_headers_unchanged(
    otel: Telemetry,
) -> None:
    async with Server() as server:
        async with aiportrait.Session(server.url, "app", "secret-token") as session:
            await session.get_job(7)
        aiportrait.otel.uninstrument()
        async with aiportrait.Session(server.url, "app", "secret-token") as session:
            await session.get_job(7)
    (span,) = otel.finished()
    traced, plain = server.requests
    parent = traced.headers["traceparent"]
    assert parent == (
        f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}"
        f"-{int(span.context.trace_flags):02x}"
    )
    assert "traceparent" not in plain.headers
    assert traced.headers["authorization"] == plain.headers["authorization"]  # same signature
    assert set(traced.headers) - set(plain.headers) == {"traceparent"}
    assert_no_secret(otel, ["secret-token", plain.headers["authorization"].split(":")[1]])


async def test_an_instrumentation_for_one_session_only(emu: Emulator) -> None:
    telemetry = Telemetry()
    mine = aiportrait.otel.Instrumentation(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        propagate=False,
    )
    job_id = emu.add_synthetic_job(0.0)
    async with emu.session(hooks=[mine]) as traced, emu.session() as plain:
        await traced.get_job(job_id)
        await plain.get_job(job_id)
    assert len(telemetry.finished()) == 1
    assert not aiportrait.otel.instrumented()


async def test_inside_an_active_span_and_a_dropped_watch_ends_its_span(
    emu: Emulator, otel: Telemetry
) -> None:
    """As in a Temporal activity: a span is already current; the library's spans join it and
    leave the context as they found it."""
    tracer = otel.tracer_provider.get_tracer("activity")
    slow = emu.add_synthetic_job(60.0)
    async with emu.session(poll=FAST) as session:
        with tracer.start_as_current_span("RunActivity") as activity:
            watch = session.watch(slow)
            async for update in watch:
                assert update.state is not None
                break  # dropped, never closed
            assert trace.get_current_span() is activity
            del watch, update
            import gc

            gc.collect()
    (job,) = otel.finished("aiportrait job")
    assert (job.attributes or {})["aiportrait.job.outcome"] == "closed"
    assert job.parent is not None and job.parent.span_id == activity.get_span_context().span_id
    (poll,) = otel.finished(f"POST {JOBS}{{job_id}}")
    assert poll.parent is not None and poll.parent.span_id == job.context.span_id
