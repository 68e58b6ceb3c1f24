"""Client CPU per call with hooks and OpenTelemetry, against the same calls without.

Ratios of candidates measured side by side in one run (round by round, after a warm-up), as
``run.py`` does, against its loopback server (``_fast_server.py``, another process): job
queries, 8 in flight. The baseline is a Session with no hook at all. The candidates:

- a no-op hook (a plain function) registered globally: what the event objects cost;
- ``aiportrait.otel`` instrumented on the OpenTelemetry API with no SDK (no-op tracer and meter;
  ``traceparent`` is not sent, there is no valid span): what the instrumentation's own code costs;
- ``aiportrait.otel`` with the SDK: spans sampled and handed to a batch processor whose exporter
  drops them, metrics aggregated in memory, and ``traceparent`` sent: a realistic production cost.

Run: ``.venv/bin/python benchmarks/otel_overhead.py [--calls 2000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import APP, IN_FLIGHT, TOKEN, cpu_of, drive, server  # noqa: E402

import aiportrait  # noqa: E402
import aiportrait.otel  # noqa: E402


def _noop(event: Any) -> None:
    pass


def _sdk() -> aiportrait.otel.Instrumentation:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return aiportrait.otel.Instrumentation(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )


def plain_with(url: str, hook: Any) -> aiportrait.Session:
    """A Session with ``hook`` (an Instrumentation also gives its ``traceparent`` headers)."""
    return aiportrait.Session(url, APP, TOKEN, max_in_flight=IN_FLIGHT, hooks=[hook])


async def _measure(url: str, n: int, rounds: int) -> None:
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    api_only = aiportrait.otel.Instrumentation(
        tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider()
    )
    with_sdk = _sdk()
    candidates: dict[str, Any] = {
        "no hook": None,
        "no-op hook": _noop,
        "otel, API only": api_only,
        "otel + SDK": with_sdk,
    }
    plain = aiportrait.Session(url, APP, TOKEN, max_in_flight=IN_FLIGHT)
    sessions = {
        name: plain if hook is None else plain_with(url, hook) for name, hook in candidates.items()
    }

    async def run(name: str, count: int) -> float:
        session = sessions[name]
        return await cpu_of(drive(lambda: session.get_job(1), count, IN_FLIGHT))

    try:
        for name in candidates:
            await run(name, max(200, n // 5))  # warm up
        times: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(rounds):
            for name in candidates:
                times[name].append(await run(name, n))
    finally:
        for session in sessions.values():
            await session.aclose()
    base = times["no hook"]
    print(f"client CPU per job query, {IN_FLIGHT} in flight, {n} calls per candidate per round")
    print(f"{'candidate / no hook':<28} {'median':>7} {'min':>6} {'max':>6}")
    for name, values in times.items():
        ratios = [v / b for v, b in zip(values, base, strict=True)]
        print(f"{name:<28} {statistics.median(ratios):7.2f} {min(ratios):6.2f} {max(ratios):6.2f}")


def main() -> None:
    """Run the measure and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with server() as url:
        asyncio.run(_measure(url, args.calls, args.rounds))


if __name__ == "__main__":
    main()
