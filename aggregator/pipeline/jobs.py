"""One source's way through a poll: whether it is due, what the fetch-and-parse half carries
for it (`Outcome`), the parse that runs in a worker process, and when it is due next."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias
from zoneinfo import ZoneInfo

from ..config import Config, Rule, SourceConfig
from ..errors import SourceError
from ..fetch import max_age_minutes
from ..model import Article, Fetched
from ..store import Store

# The parse and dedupe stages are imported inside the functions that use them (see
# `__init__.py`): a poll in which every source answers 304 never needs them.
if TYPE_CHECKING:
    from .. import dedupe


@dataclass
class Outcome:
    """What the fetch-and-parse half produced for one source, before storing."""

    source: SourceConfig
    fetched: Fetched | None = None
    articles: list[Article] = field(default_factory=list)
    parsed_count: int | None = None
    ttl_minutes: int | None = None
    warnings: list[str] = field(default_factory=list)
    error: SourceError | None = None
    skipped: bool = False
    size: int = 0  # body bytes, kept after the body itself is handed to a parser
    prepared: list[dedupe.Prepared] | None = None  # dedupe fingerprints made by the parser
    state: Any = None  # the source's stored row as the poll started
    started: float = field(default_factory=time.monotonic)


ParseResult: TypeAlias = "tuple[list[Article], int, int | None, list[dedupe.Prepared] | None]"


def parse_and_normalize(
    source: SourceConfig,
    rules: Sequence[Rule],
    body: bytes,
    headers: dict[str, str],
    final_url: str,
    zone: str,
    now: datetime,
    boilerplate: frozenset[int] | None = None,
) -> ParseResult:
    """Runs in a worker process: bytes in, articles out (picklable both ways). With
    `boilerplate` (dedupe on), the dedupe fingerprints are made here too, off the main thread."""
    from .. import dedupe
    from ..normalize import normalize
    from ..parse.feed import parse_feed

    parsed = parse_feed(body, headers, final_url, source=source.name, tz=ZoneInfo(zone), now=now)
    articles = [a for a in (normalize(i, source, rules, now) for i in parsed.items) if a]
    prepared = None if boilerplate is None else [dedupe.prepare(a, boilerplate) for a in articles]
    return articles, len(parsed.items), parsed.ttl_minutes, prepared


def exit_with_parent(parent: int) -> None:
    """Worker initializer. A worker holds both ends of its job pipe itself, so when the poll
    that forked it is killed (SIGKILL, OOM) it would wait for jobs forever: it watches the
    parent instead and exits once the parent is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def next_poll_at(
    now: datetime,
    interval: timedelta,
    failures: int,
    *,
    max_backoff: timedelta,
    retry_after: float | None = None,
    ttl_minutes: int | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """Success: the interval, raised to the feed's ttl (capped). Failure: interval x 2^n with
    +-10% jitter, capped at max_backoff, never sooner than Retry-After."""
    if failures <= 0:
        wait = interval
        if ttl_minutes:
            wait = max(wait, min(timedelta(minutes=ttl_minutes), max_backoff))
        return now + wait
    jitter = 1 + ((rng or random).random() - 0.5) * 0.2
    wait = min(interval * (2 ** min(failures, 30)) * jitter, max_backoff)
    if retry_after:
        wait = max(wait, timedelta(seconds=min(retry_after, max_backoff.total_seconds())))
    return now + wait


def due_sources(config: Config, store: Store, now: datetime) -> list[SourceConfig]:
    """Enabled sources whose next poll time has come (never polled: due at once)."""
    states = store.source_states()
    due = []
    for source in config.sources:
        if not source.enabled:
            continue
        state = states.get(source.name)
        if (
            state is None
            or state.url != source.url
            or state.last_poll is None
            or state.next_poll is None
            or state.next_poll <= now
        ):
            due.append(source)
    return due


def is_quiet(outcome: Outcome) -> bool:
    fetched = outcome.fetched
    return bool(fetched and fetched.not_modified and outcome.error is None and not outcome.articles)


def item_counts(outcome: Outcome) -> list[int]:
    """The source's last five item counts, this poll's last (breakage checks compare them)."""
    counts = list((outcome.state.item_counts if outcome.state else None) or [])
    if outcome.parsed_count is not None:
        counts = [*counts, outcome.parsed_count][-5:]
    return counts


def lower_bound(outcome: Outcome) -> int | None:
    """A feed's <ttl> and the response's Cache-Control max-age, in minutes: the larger wins."""
    bounds = [outcome.ttl_minutes or 0]
    if outcome.fetched is not None:
        bounds.append(max_age_minutes(outcome.fetched.headers.get("cache-control")))
    return max(bounds) or None
