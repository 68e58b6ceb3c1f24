"""OpenTelemetry traces and metrics for every call, watched job and batch (``aiportrait[otel]``).

One line, before the Sessions are built, turns it on for all of them::

    import aiportrait.otel

    aiportrait.otel.instrument()  # the global tracer and meter providers, or pass your own

It is built on :mod:`aiportrait.hooks`: :func:`instrument` adds one global hook (an
:class:`Instrumentation`), :func:`uninstrument` removes it. For one Session only, pass an
:class:`Instrumentation` in its hooks: ``Session(..., hooks=[aiportrait.otel.Instrumentation()])``.

What it makes:

* one ``CLIENT`` span per call (all its tries), named ``"{method} {route}"`` as the HTTP
  conventions ask (``POST /api/v1/aigc_images/create``, ``POST /api/v1/async_jobs/{job_id}``),
  with ``http.request.method``, ``server.address``, ``server.port``, ``url.template``,
  ``http.response.status_code``, ``http.request.resend_count``, ``error.type`` and
  ``aiportrait.*`` attributes (kind, AppId, the service's request id, job id, attempts,
  outcome); a span event per retry (with its reason) and per 429 cool-down;
* one span per watched job, from the watch's start to the job's end (``aiportrait job``),
  with a span event per state change; the polls' spans are its children;
* one span per batch (``aiportrait create_many`` / ``aiportrait train_many``) with the item
  counts; its items' calls and watches are its children;
* metrics: calls by route, kind and outcome, retries by reason, 429 answers, cool-down seconds,
  calls in flight, ``http.client.request.duration`` per try, polls per job, job duration,
  the service's create ``cost_time``, and batch items by outcome.

A span with no watch or batch above it is a child of the current span (your web request's, a
Temporal activity's), found through the current context when the call starts: nothing here
sets a global provider or a global context. Each try carries the W3C ``traceparent`` (the
global propagator's headers), outside the request signature, so a service that traces sees the
call's span as its parent.

Nothing secret goes in a span, event or metric: no token, no ``Authorization`` value, no image
data or image URL, no error message (only the error's type and the service's code).
"""

from __future__ import annotations

try:
    from opentelemetry import metrics, trace
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "aiportrait.otel needs the OpenTelemetry API: pip install 'aiportrait[otel]'"
    ) from exc

from .. import hooks
from .instrumentation import Instrumentation

__all__ = ["Instrumentation", "instrument", "instrumented", "uninstrument"]

_installed: Instrumentation | None = None


def instrument(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    propagate: bool = True,
) -> Instrumentation:
    """Trace and measure every Session built from now on; returns the hook it added.

    Calling it again replaces the earlier instrumentation (with the new providers).
    See :class:`Instrumentation` for the arguments.
    """
    global _installed
    uninstrument()
    _installed = Instrumentation(
        tracer_provider=tracer_provider, meter_provider=meter_provider, propagate=propagate
    )
    hooks.add_hook(_installed)
    return _installed


def uninstrument() -> None:
    """Undo :func:`instrument` (nothing happens if it was not called)."""
    global _installed
    if _installed is not None:
        hooks.remove_hook(_installed)
        _installed.close()
        _installed = None


def instrumented() -> bool:
    """True between :func:`instrument` and :func:`uninstrument`."""
    return _installed is not None
