"""Prometheus metrics, collected by the long-running service only.

`serve` calls `enable()` before its first poll; the web app exposes `registry`. A one-shot
command (`poll`, `digest`) has nobody to scrape its metrics, so there the record functions
do nothing and prometheus_client is never imported: labelled children for every source cost
~60 ms of a 1,000-source poll in which every source answers 304.
"""

from __future__ import annotations


class Metrics:
    """The registry and its metrics."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.polls = Counter(
            "aggregator_polls",
            "Source polls by outcome (ok, not_modified, error).",
            ["source", "outcome"],
            registry=registry,
        )
        self.fetch_seconds = Histogram(
            "aggregator_fetch_duration_seconds",
            "Time to fetch one source.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=registry,
        )
        self.fetched_bytes = Counter(
            "aggregator_fetched_bytes", "Body bytes fetched from sources.", registry=registry
        )
        self.new_articles = Counter(
            "aggregator_new_articles",
            "New articles stored, by source.",
            ["source"],
            registry=registry,
        )
        self.stories = Gauge("aggregator_stories", "Stories in the store.", registry=registry)
        self.digest_messages = Counter(
            "aggregator_digest_messages",
            "Digest messages by outcome (sent, failed).",
            ["outcome"],
            registry=registry,
        )
        self.sources_backoff = Gauge(
            "aggregator_sources_in_backoff", "Sources with consecutive failures.", registry=registry
        )
        self.sources_dead = Gauge(
            "aggregator_sources_dead",
            "Sources failing for longer than poll.dead_after.",
            registry=registry,
        )
        self.last_success = Gauge(
            "aggregator_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll, by source.",
            ["source"],
            registry=registry,
        )


_enabled: Metrics | None = None


def enable() -> Metrics:
    """Start collecting (idempotent); returns the metrics for the exposition endpoint."""
    global _enabled
    if _enabled is None:
        _enabled = Metrics()
    return _enabled


def poll_recorded(
    source: str,
    outcome: str,
    *,
    new: int = 0,
    at: float | None = None,
    fetch_seconds: float | None = None,
    fetched_bytes: int = 0,
) -> None:
    """One source polled: `outcome` is ok, not_modified or error; `at` the success time."""
    m = _enabled
    if m is None:
        return
    m.polls.labels(source, outcome).inc()
    if outcome == "error":
        return
    m.new_articles.labels(source).inc(new)
    if at is not None:
        m.last_success.labels(source).set(at)
    if fetch_seconds is not None:
        m.fetch_seconds.observe(fetch_seconds)
        m.fetched_bytes.inc(fetched_bytes)


def digest_recorded(outcome: str) -> None:
    """One digest message: sent or failed."""
    if _enabled is not None:
        _enabled.digest_messages.labels(outcome).inc()
