"""The Temporal path's spans join the workflow's trace: the library's call spans, made in the
activities, are children of Temporal's activity spans, in the trace of the workflow's start."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("temporalio")
pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aiportrait.otel
from aiportrait import ReferenceCreateRequest
from aiportrait import temporal as at


async def test_call_spans_join_the_workflow_trace(
    temporal_server: Any, temporal_emu: Any, sample_media: Any, tmp_path: Path
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = await at.connect(temporal_server.address, tracing=True, tracer_provider=provider)
    store = at.LocalPortraitStore(tmp_path / "store")
    queue = f"otel-{uuid.uuid4().hex[:8]}"
    hook = aiportrait.otel.Instrumentation(tracer_provider=provider)
    url = temporal_emu.media_url
    async with temporal_emu.session(hooks=[hook]) as session:
        async with at.new_worker(client, session, store, task_queue=queue):
            tracer = provider.get_tracer("test")
            with tracer.start_as_current_span("web request") as root:
                handle = await at.start_create(
                    client,
                    ReferenceCreateRequest(
                        url(sample_media.astronaut[0]), url(sample_media.astronaut_template)
                    ),
                    task_queue=queue,
                )
            await at.result(handle)
    provider.force_flush()
    spans = exporter.get_finished_spans()
    trace_id = root.get_span_context().trace_id
    by_name = {s.name: s for s in spans}
    call = by_name["POST /api/v1/aigc_images/create"]
    assert call.context.trace_id == trace_id  # the call joined the request's trace
    run = next(s for s in spans if s.name.startswith("RunActivity:aiportrait.create"))
    assert call.parent is not None and call.parent.span_id == run.context.span_id
    assert any(s.name.startswith("StartWorkflow:aiportrait.Create") for s in spans)
    for span in spans:  # and no secret anywhere
        for value in (span.attributes or {}).values():
            assert temporal_emu.token not in str(value)
