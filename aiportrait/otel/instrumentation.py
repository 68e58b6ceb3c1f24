"""The hook behind :mod:`aiportrait.otel`: events in, spans and metrics out."""

from __future__ import annotations

import contextvars
import re
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .._version import __version__
from ..hooks import (
    AnswerReceived,
    BatchEnded,
    BatchItemEnded,
    BatchStarted,
    CallEnded,
    CallStarted,
    CoolDownEnded,
    CoolDownStarted,
    Event,
    JobEnded,
    JobStateChanged,
    JobWatchStarted,
    OutagePause,
    RetryScheduled,
)
from ..hooks.events import tally_word
from .instruments import Instruments

__all__ = ["Instrumentation", "route"]

_SCOPE = "aiportrait"

_ROUTES = (
    (re.compile(r"^(/api/v1/async_jobs/)[^/]+$"), r"\1{job_id}"),
    (re.compile(r"^(/api/v1/batch_jobs/)[^/]+$"), r"\1{batch_id}"),
)
_JOB_PATH = re.compile(r"^/api/v1/async_jobs/([0-9]+)$")


def route(path: str) -> str:
    """The path's template: ids replaced by ``{job_id}`` / ``{batch_id}`` (low cardinality)."""
    for pattern, template in _ROUTES:
        if pattern.match(path):
            return pattern.sub(template, path)
    return path


class _Call:
    """What a call's span needs between its start and its end."""

    __slots__ = ("attributes", "span", "token")

    def __init__(
        self, span: Span, token: contextvars.Token[Any], attributes: dict[str, Any]
    ) -> None:
        self.span = span
        self.token = token
        self.attributes = attributes  # the metric attributes of this call's tries


class Instrumentation:
    """A hook (see :mod:`aiportrait.hooks`) that makes OpenTelemetry spans and metrics.

    Args:
        tracer_provider: where the spans go (default: the global one, read when a span starts).
        meter_provider: where the metrics go (default: the global one).
        propagate: send the current trace context (``traceparent``) with each request.

    Register it with :func:`aiportrait.hooks.add_hook` (what :func:`instrument` does) or in one
    Session's ``hooks``. It keeps the span of each call in progress in a context variable (the
    call's task), and the spans of watches and batches by their ids until they end.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        propagate: bool = True,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self._call: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
            f"aiportrait_otel_call_{id(self)}", default=None
        )
        self._spans: dict[int, Span] = {}  # watches and batches in progress, by id
        self._metrics = Instruments(meter)
        self._propagate = propagate

    def __repr__(self) -> str:
        return f"<aiportrait.otel.Instrumentation propagate={self._propagate}>"

    def close(self) -> None:
        """Stop sending ``traceparent`` for this instrumentation (spans in progress stay open)."""
        self._propagate = False

    def headers(self) -> Mapping[str, str]:
        """The current trace context's headers (``traceparent``, ``tracestate``) for a request
        (the Session's transport asks before each try); none when not propagating."""
        if not self._propagate:
            return {}
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    def __call__(self, event: Event) -> None:
        """Turn one event into spans and metrics (never raises into the call: see hooks)."""
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    # -- calls ---------------------------------------------------------------------------

    def _call_started(self, event: CallStarted) -> None:
        template = route(event.path)
        attributes: dict[str, Any] = {
            "http.request.method": event.method,
            "server.address": event.server_address,
            "url.template": template,
            "aiportrait.kind": event.kind,
        }
        if event.server_port is not None:
            attributes["server.port"] = event.server_port
        span_attributes = dict(attributes)
        span_attributes["url.path"] = event.path
        if event.app_id:
            span_attributes["aiportrait.app_id"] = event.app_id
        match = _JOB_PATH.match(event.path)
        if match:
            span_attributes["aiportrait.job_id"] = int(match.group(1))
        parent = self._parent(event.within)
        span = self._tracer.start_span(
            f"{event.method} {template}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=span_attributes,
        )
        # The call's span is the current one while its tries run (in the call's task): the
        # traceparent it sends and any span made below it (an aiohttp instrumentation) are its.
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        self._call.set(_Call(span, token, attributes))
        self._metrics.in_flight.add(1, {"aiportrait.kind": event.kind})

    def _answer(self, event: AnswerReceived) -> None:
        call = self._call.get()
        attributes = dict(call.attributes) if call is not None else _call_attributes(event)
        if event.status:
            attributes["http.response.status_code"] = event.status
        if event.error is not None:
            attributes["error.type"] = type(event.error).__name__
        self._metrics.duration.record(event.seconds, attributes)
        if event.status == 429:
            self._metrics.throttled.add(1, {"url.template": route(event.path)})

    def _retry(self, event: RetryScheduled) -> None:
        self._metrics.retries.add(
            1, {"url.template": route(event.path), "aiportrait.retry.reason": event.reason}
        )
        call = self._call.get()
        if call is not None:
            call.span.add_event(
                "aiportrait.retry",
                {
                    "aiportrait.attempt": event.attempt,
                    "aiportrait.retry.reason": event.reason,
                    "aiportrait.retry.wait": event.wait,
                },
            )

    def _cooldown_started(self, event: CoolDownStarted) -> None:
        call = self._call.get()
        if call is not None:
            attributes: dict[str, Any] = {"aiportrait.cooldown.seconds": event.seconds}
            if event.retry_after is not None:
                attributes["aiportrait.retry_after"] = event.retry_after
            call.span.add_event("aiportrait.cooldown", attributes)

    def _cooldown_ended(self, event: CoolDownEnded) -> None:
        self._metrics.cooldown.record(event.seconds)

    def _outage(self, event: OutagePause) -> None:
        """A pause's start is an event on the span of the call that saw the last failure;
        its end, a length in the ``aiportrait.client.outage.duration`` histogram."""
        if not event.paused:
            self._metrics.outage.record(event.seconds)
            return
        call = self._call.get()
        if call is not None:
            call.span.add_event(
                "aiportrait.outage",
                {"aiportrait.outage.reason": event.reason, "aiportrait.failures": event.failures},
            )

    def _call_ended(self, event: CallEnded) -> None:
        template = route(event.path)
        self._metrics.calls.add(
            1,
            {
                "http.request.method": event.method,
                "url.template": template,
                "aiportrait.kind": event.kind,
                "aiportrait.outcome": event.outcome,
            },
        )
        if event.cost_time is not None:
            self._metrics.cost_time.record(event.cost_time)
        call = self._call.get()
        if call is None:  # instrumented while the call was under way
            return
        self._call.set(None)
        self._metrics.in_flight.add(-1, {"aiportrait.kind": event.kind})
        span = call.span
        attributes: dict[str, Any] = {
            "aiportrait.outcome": event.outcome,
            "aiportrait.attempts": event.attempts,
        }
        if event.attempts > 1:
            attributes["http.request.resend_count"] = event.attempts - 1
        if event.status:
            attributes["http.response.status_code"] = event.status
        if event.request_id:
            attributes["aiportrait.request_id"] = event.request_id
        if event.job_id is not None:
            attributes["aiportrait.job_id"] = event.job_id
        if event.cost_time is not None:
            attributes["aiportrait.cost_time"] = event.cost_time
        if event.error is not None:
            kind = type(event.error).__name__
            attributes["error.type"] = kind
            code = getattr(event.error, "code", "")
            if isinstance(code, str) and code:
                attributes["aiportrait.error.code"] = code
            span.set_status(Status(StatusCode.ERROR, kind))
        span.set_attributes(attributes)
        span.end()
        otel_context.detach(call.token)  # in another context, OpenTelemetry logs it

    # -- watches ---------------------------------------------------------------------------

    def _job_started(self, event: JobWatchStarted) -> None:
        span = self._tracer.start_span(
            "aiportrait job",
            context=self._parent(event.within),
            kind=SpanKind.INTERNAL,
            attributes={"aiportrait.job_id": event.job_id},
        )
        self._spans[event.id] = span

    def _job_changed(self, event: JobStateChanged) -> None:
        span = self._spans.get(event.id)
        if span is not None:
            attributes: dict[str, Any] = {
                "aiportrait.job.state": event.state.name,
                "aiportrait.job.elapsed": event.elapsed,
                "aiportrait.job.polls": event.polls,
            }
            if event.previous is not None:
                attributes["aiportrait.job.previous_state"] = event.previous.name
            span.add_event("aiportrait.job.state_changed", attributes)

    def _job_ended(self, event: JobEnded) -> None:
        outcome = {"aiportrait.job.outcome": event.outcome}
        self._metrics.polls.record(event.polls, outcome)
        if event.outcome in ("succeeded", "failed"):
            self._metrics.job_duration.record(event.seconds, outcome)
        span = self._spans.pop(event.id, None)
        if span is None:
            return
        attributes: dict[str, Any] = {
            "aiportrait.job.outcome": event.outcome,
            "aiportrait.job.polls": event.polls,
            "aiportrait.job.seconds": event.seconds,
        }
        if event.state is not None:
            attributes["aiportrait.job.state"] = event.state.name
        if event.error is not None:
            attributes["error.type"] = type(event.error).__name__
        if event.outcome in ("failed", "timeout", "error"):
            span.set_status(Status(StatusCode.ERROR, f"job {event.outcome}"))
        span.set_attributes(attributes)
        span.end()

    # -- batches ---------------------------------------------------------------------------

    def _batch_started(self, event: BatchStarted) -> None:
        span = self._tracer.start_span(
            f"aiportrait {event.kind}_many",
            context=self._parent(event.within),
            kind=SpanKind.INTERNAL,
            attributes={"aiportrait.batch.kind": event.kind, "aiportrait.batch.limit": event.limit},
        )
        self._spans[event.id] = span

    def _batch_item(self, event: BatchItemEnded) -> None:
        attributes: dict[str, str] = {
            "aiportrait.batch.kind": event.kind,
            "aiportrait.outcome": tally_word(event.status, event.resumed),
        }
        if event.error_type:
            attributes["error.type"] = event.error_type
        self._metrics.items.add(1, attributes)

    def _batch_ended(self, event: BatchEnded) -> None:
        span = self._spans.pop(event.id, None)
        if span is None:
            return
        span.set_attributes(
            {
                "aiportrait.batch.items": event.items,
                "aiportrait.batch.ok": event.ok,
                "aiportrait.batch.failed": event.failed,
                "aiportrait.batch.unknown": event.unknown,
                "aiportrait.batch.resumed": event.resumed,
            }
        )
        if event.error is not None:
            span.set_attribute("error.type", type(event.error).__name__)
            span.set_status(Status(StatusCode.ERROR, type(event.error).__name__))
        span.end()

    def _parent(self, within: int | None) -> otel_context.Context | None:
        """The context to start a span in: the watch's or batch's span, else the current."""
        if within is not None:
            span = self._spans.get(within)
            if span is not None:
                return trace.set_span_in_context(span)
        return None  # the current context


def _call_attributes(event: AnswerReceived) -> dict[str, Any]:
    return {
        "http.request.method": event.method,
        "url.template": route(event.path),
        "aiportrait.kind": event.kind,
    }


_HANDLERS: dict[type, Any] = {
    CallStarted: Instrumentation._call_started,
    AnswerReceived: Instrumentation._answer,
    RetryScheduled: Instrumentation._retry,
    CoolDownStarted: Instrumentation._cooldown_started,
    CoolDownEnded: Instrumentation._cooldown_ended,
    OutagePause: Instrumentation._outage,
    CallEnded: Instrumentation._call_ended,
    JobWatchStarted: Instrumentation._job_started,
    JobStateChanged: Instrumentation._job_changed,
    JobEnded: Instrumentation._job_ended,
    BatchStarted: Instrumentation._batch_started,
    BatchItemEnded: Instrumentation._batch_item,
    BatchEnded: Instrumentation._batch_ended,
}
