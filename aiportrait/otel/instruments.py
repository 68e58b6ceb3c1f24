"""The OpenTelemetry metric instruments of one :class:`~aiportrait.otel.Instrumentation`."""

from __future__ import annotations

from opentelemetry import metrics

__all__ = ["Instruments"]

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_JOB_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200)
_POLL_BUCKETS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144)


class Instruments:
    """The counters and histograms, each made once from one meter."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.calls = meter.create_counter(
            "aiportrait.client.calls", unit="{call}", description="Calls, by route and outcome"
        )
        self.retries = meter.create_counter(
            "aiportrait.client.retries", unit="{retry}", description="Retries, by reason"
        )
        self.throttled = meter.create_counter(
            "aiportrait.client.rate_limited",
            unit="{response}",
            description="429 answers (each starts or extends the shared cool-down)",
        )
        self.cooldown = meter.create_histogram(
            "aiportrait.client.cooldown.duration",
            unit="s",
            description="Length of each 429 cool-down, during which every call waited",
        )
        self.outage = meter.create_histogram(
            "aiportrait.client.outage.duration",
            unit="s",
            description="Length of each outage pause, during which trains and creates waited",
        )
        self.in_flight = meter.create_up_down_counter(
            "aiportrait.client.active_calls", unit="{call}", description="Calls in progress"
        )
        self.duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of each HTTP try",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.polls = meter.create_histogram(
            "aiportrait.job.polls",
            unit="{poll}",
            description="Polls made per watched job",
            explicit_bucket_boundaries_advisory=_POLL_BUCKETS,
        )
        self.job_duration = meter.create_histogram(
            "aiportrait.job.duration",
            unit="s",
            description="Duration of watched jobs (trainings), watch start to end seen",
            explicit_bucket_boundaries_advisory=_JOB_BUCKETS,
        )
        self.cost_time = meter.create_histogram(
            "aiportrait.create.cost_time",
            unit="s",
            description="The service's cost_time of each portrait created",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.items = meter.create_counter(
            "aiportrait.batch.items", unit="{item}", description="Batch items, by outcome"
        )
