"""The store half of a poll, for one source: its articles joined to stories (dedupe decides
which), its health recorded, its report made. The poller holds the write lock and the dedupe
index around these; `load_index` rebuilds that index from the stored fingerprints."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..config import Config, SourceConfig
from ..errors import FetchError
from ..model import Article, PollReport
from ..store import Store, Tx
from .jobs import Outcome, next_poll_at

# The dedupe stage (numpy) is imported where it is first used: a poll with nothing new never
# needs it.
if TYPE_CHECKING:
    from .. import dedupe

log = logging.getLogger("aggregator.poll")


def report_success(
    outcome: Outcome,
    state: str,
    now: datetime,
    new: int = 0,
    updated: int = 0,
    warnings: Sequence[str] = (),
) -> PollReport:
    """Metrics, the log line and the report of one source polled without error."""
    name, fetched = outcome.source.name, outcome.fetched
    duration = time.monotonic() - outcome.started
    metrics.poll_recorded(
        name,
        state,
        new=new,
        at=now.timestamp(),
        fetch_seconds=fetched.elapsed if fetched is not None else None,
        fetched_bytes=(outcome.size or len(fetched.body)) if fetched is not None else 0,
    )
    log.info(
        "source=%s status=%s new=%d updated=%d items=%s duration=%.2fs",
        name,
        state,
        new,
        updated,
        outcome.parsed_count,
        duration,
    )
    return PollReport(
        name,
        state,
        new=new,
        updated=updated,
        warnings=tuple(warnings),
        duration=duration,
        moved_to=fetched.moved_to if fetched else None,
    )


def save_error(
    config: Config, store: Store, outcome: Outcome, now: datetime, duration: float
) -> PollReport:
    source, error = outcome.source, outcome.error
    assert error is not None
    state = outcome.state
    failures = (state.consecutive_failures if state else 0) + 1
    retry_after = error.retry_after if isinstance(error, FetchError) else None
    with store.transaction() as tx:
        tx.record_error(
            source.name,
            now=now,
            error=error.reason,
            http_status=error.http_status,
            next_poll=next_poll_at(
                now,
                config.interval(source),
                failures,
                max_backoff=config.poll.max_backoff,
                retry_after=retry_after,
            ),
        )
    metrics.poll_recorded(source.name, "error")
    log.warning(
        "source=%s status=error error=%r duration=%.2fs", source.name, error.reason, duration
    )
    return PollReport(
        source.name,
        "error",
        error=error.reason,
        http_status=error.http_status,
        duration=duration,
    )


def breakage_warnings(outcome: Outcome) -> list[str]:
    """HTML sources break silently: say when items drop by half or no date parses."""
    warnings = list(dict.fromkeys(outcome.warnings))
    if outcome.source.type != "html" or outcome.parsed_count is None:
        return warnings
    state = outcome.state
    previous = [c for c in (state.item_counts if state else None) or [] if c]
    if previous and outcome.parsed_count < (sum(previous) / len(previous)) / 2:
        warnings.append(
            f"item count fell to {outcome.parsed_count} from about "
            f"{round(sum(previous) / len(previous))}"
        )
    return warnings


def store_articles(
    tx: Tx,
    config: Config,
    dedupe_index: Callable[[], dedupe.Index],
    source: SourceConfig,
    articles: list[Article],
    now: datetime,
    prepared: list[dedupe.Prepared] | None = None,
) -> tuple[list[int], list[int]]:
    """New articles join a story (dedupe decides which) or start one; changed ones update."""
    from .. import dedupe

    if not articles:
        return [], []
    ready = {id(a): p for a, p in zip(articles, prepared, strict=True)} if prepared else {}
    batch = tx.classify(source.name, articles)
    index = dedupe_index() if batch.new and config.dedupe.enabled else None
    if index is not None:  # what other instances sharing the database stored meanwhile
        for row in tx.signatures_after(index.newest_article):
            index.add(_entry(row))
    rows = tx.new_rows(now)
    new_ids = []
    for article in batch.new:
        if index is None:
            new_ids.append(rows.article(article, rows.story(article)))
            continue
        made = ready.get(id(article))
        fp = index.fingerprint_prepared(article, made) if made else index.fingerprint(article)
        decision = index.match(article, fp)
        if decision.story_id is None:
            story_id = rows.story(article)
        else:
            story_id = decision.story_id
            rows.join(story_id, article)
        article_id = rows.article(article, story_id, fp.title_key, fp.doc_number, fp.signature)
        index.add(
            dedupe.Entry(
                article_id,
                story_id,
                article.source,
                article.url,
                article.guid,
                article.text_hash,
                article.published,
                article.title,
                fp,
            )
        )
        new_ids.append(article_id)
    rows.flush()
    for row_id, article in batch.updated:
        tx.update_article(row_id, article, now)
    return new_ids, [row_id for row_id, _ in batch.updated]


def load_index(config: Config, store: Store) -> dedupe.Index:
    from .. import dedupe

    index = dedupe.Index(config.dedupe)
    newest = datetime.now().astimezone()
    for row in store.signatures_since(newest - 2 * config.dedupe.window - timedelta(days=1)):
        index.add(_entry(row))
    return index


def _entry(row: Any) -> dedupe.Entry:
    """An index entry from a stored row (`Store.signatures_since`, `Tx.signatures_after`)."""
    from .. import dedupe

    fp = dedupe.Fingerprint.from_stored(row.title_key or "", row.doc_number, row.signature)
    return dedupe.Entry(
        row.id,
        row.story_id,
        row.source,
        row.url,
        row.guid,
        row.text_hash,
        row.published,
        row.title,
        fp,
    )
