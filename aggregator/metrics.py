"""Prometheus metrics: one registry, incremented where things happen, exposed by the web app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry(auto_describe=True)

polls = Counter(
    "aggregator_polls",
    "Source polls by outcome (ok, not_modified, error).",
    ["source", "outcome"],
    registry=registry,
)
fetch_seconds = Histogram(
    "aggregator_fetch_duration_seconds",
    "Time to fetch one source.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
    registry=registry,
)
fetched_bytes = Counter(
    "aggregator_fetched_bytes", "Body bytes fetched from sources.", registry=registry
)
new_articles = Counter(
    "aggregator_new_articles", "New articles stored, by source.", ["source"], registry=registry
)
stories = Gauge("aggregator_stories", "Stories in the store.", registry=registry)
digest_messages = Counter(
    "aggregator_digest_messages",
    "Digest messages by outcome (sent, failed).",
    ["outcome"],
    registry=registry,
)
sources_backoff = Gauge(
    "aggregator_sources_in_backoff", "Sources with consecutive failures.", registry=registry
)
sources_dead = Gauge(
    "aggregator_sources_dead", "Sources failing for longer than poll.dead_after.", registry=registry
)
last_success = Gauge(
    "aggregator_last_successful_poll_timestamp_seconds",
    "Unix time of the last successful poll, by source.",
    ["source"],
    registry=registry,
)
