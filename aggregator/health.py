"""The health of each source: the one place that reads it for `aggregator sources` and `/healthz`.

Both start from `store.health()` and the config, so they agree on when a source is dead, what
its status is and when its last error is shown. `sources` adds scheduling detail (backoff, next
poll, a permanent redirect) and the sources that are gone from the config but still stored.
`now` comes from the caller: only cli and service read the clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from .config import Config, SourceConfig
from .errors import redact
from .model import SourceHealth
from .store import Store


def health_entries(config: Config, store: Store, now: datetime) -> tuple[list[dict[str, Any]], int]:
    """The `/healthz` entry of each configured source, and how many enabled sources are dead."""
    entries = []
    dead = 0
    for source, h, is_dead in _configured(config, _by_name(store), now):
        dead += is_dead and source.enabled
        entries.append(_entry(source, h, is_dead))
    return entries, dead


def source_rows(config: Config, store: Store, now: datetime) -> list[dict[str, Any]]:
    """`aggregator sources [--json]`: each configured source, then each removed one still stored."""
    health = _by_name(store)
    rows = [_row(source, h, is_dead) for source, h, is_dead in _configured(config, health, now)]
    rows += [_removed(h) for name, h in health.items() if config.source(name) is None]
    return rows


def _by_name(store: Store) -> dict[str, SourceHealth]:
    return {h.name: h for h in store.health()}


def _configured(
    config: Config, health: dict[str, SourceHealth], now: datetime
) -> Iterator[tuple[SourceConfig, SourceHealth | None, bool]]:
    """Each configured source in config order, its stored health (None before its first poll),
    and whether it is dead: failing for longer than poll.dead_after."""
    for source in config.sources:
        h = health.get(source.name)
        yield source, h, bool(h and h.dead(now, config.poll.dead_after))


def _entry(source: SourceConfig, h: SourceHealth | None, dead: bool) -> dict[str, Any]:
    """What both documents say about a configured source; as is, the `/healthz` entry. The
    status comes from polling alone (a disabled source too); the error only while the last
    poll failed, its time even after a recovery."""
    return {
        "name": source.name,
        "url": redact(source.url),
        "enabled": source.enabled,
        "status": "dead" if dead else (h.last_status if h and h.last_status else "never polled"),
        "last_poll": _iso(h.last_poll if h else None),
        "last_success": _iso(h.last_success if h else None),
        "last_error": h.last_error if h and h.last_status == "error" else None,
        "last_error_at": _iso(h.last_error_at if h else None),
        "consecutive_failures": h.consecutive_failures if h else 0,
        "warnings": list(h.warnings) if h else [],
        "articles": h.articles if h else 0,
    }


def _row(source: SourceConfig, h: SourceHealth | None, dead: bool) -> dict[str, Any]:
    """The `sources` row: the shared entry plus scheduling detail. A disabled source says so;
    an empty error is none, and the error's time shows only with the error."""
    entry = _entry(source, h, dead)
    error = entry["last_error"] or None
    return {
        "name": entry["name"],
        "type": source.type,
        "url": entry["url"],
        "status": entry["status"] if source.enabled else "disabled",
        "last_poll": entry["last_poll"],
        "last_success": entry["last_success"],
        "last_error": error,
        "last_error_at": entry["last_error_at"] if error else None,
        "consecutive_failures": entry["consecutive_failures"],
        "failing_since": _iso(h.failing_since if h else None),
        "backoff": bool(h and h.consecutive_failures),
        "next_poll": _iso(h.next_poll if h else None),
        "articles": entry["articles"],
        "warnings": entry["warnings"],
        "moved_to": h.moved_to if h else None,
    }


def _removed(h: SourceHealth) -> dict[str, Any]:
    """A source gone from the config that the store still has: its history, nothing pending."""
    return {
        "name": h.name,
        "type": "-",
        "url": redact(h.url),
        "status": "removed",
        "last_poll": _iso(h.last_poll),
        "last_success": _iso(h.last_success),
        "last_error": None,
        "last_error_at": None,
        "consecutive_failures": h.consecutive_failures,
        "failing_since": None,
        "backoff": False,
        "next_poll": None,
        "articles": h.articles,
        "warnings": [],
        "moved_to": None,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
