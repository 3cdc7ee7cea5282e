"""`Tx`, the writes of one transaction: articles, stories, source health, digest ledger."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.engine import Connection

from ..model import Article
from .rows import SIGNATURES, NewRows, _values
from .schema import articles, deliveries, digest_runs, sources, stories

_TICK = timedelta(microseconds=1)
# Built once (a statement built per call is looked up in the compiled cache each time).
_SIGNATURES_AFTER = SIGNATURES.where(articles.c.id > bindparam("after"))


@dataclass(frozen=True)
class Upserted:
    new: list[Article]
    updated: list[tuple[int, Article]]


# A source's stored articles with any of these keys, GUIDs or URLs (built once: building the
# statement each time cost more than running it).
_EXISTING = select(
    articles.c.id, articles.c.key, articles.c.guid, articles.c.url, articles.c.content_hash
).where(
    articles.c.source == bindparam("b_source"),
    or_(
        articles.c.key.in_(bindparam("b_keys", expanding=True)),
        articles.c.guid.in_(bindparam("b_guids", expanding=True)),
        articles.c.url.in_(bindparam("b_urls", expanding=True)),
    ),
)
# What a writer needs to know first, in one round trip: the highest ids (new ones are handed
# out above them) and the newest `updated` stamps (new stamps go above them).
_HEAD = select(
    select(func.coalesce(func.max(stories.c.id), 0)).scalar_subquery(),
    select(func.coalesce(func.max(articles.c.id), 0)).scalar_subquery(),
    select(func.max(articles.c.updated)).scalar_subquery(),
    select(func.max(stories.c.updated)).scalar_subquery(),
)


@functools.cache
def _source_update(columns: tuple[str, ...]) -> Any:
    """UPDATE sources SET these columns, built once per column set (building and cache-keying
    a statement costs more than running it)."""
    return (
        sources.update()
        .where(sources.c.name == bindparam("b_name"))
        .values({c: bindparam(c, type_=sources.c[c].type) for c in columns})
    )


@dataclass(frozen=True, slots=True)
class NotModified:
    """One source's 304, for `Tx.record_not_modified`."""

    name: str
    next_poll: datetime | None
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None


class Tx:
    """The writes of one transaction. Timestamps handed out by `stamp()` are unique and
    increasing, so no two entries ever share an Atom `updated` value."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._last: datetime | None = None

    def stamp(self, now: datetime) -> datetime:
        if self._last is None:
            self._seed_stamp(now, *self.conn.execute(_HEAD).one()[2:])
        assert self._last is not None
        self._last = max(now, self._last + _TICK)
        return self._last

    def _seed_stamp(self, now: datetime, *newest: datetime | None) -> None:
        if self._last is None:
            self._last = max(x for x in (now - _TICK, *newest) if x is not None)

    def classify(self, source: str, batch: Sequence[Article]) -> Upserted:
        """Split a source's batch into new articles and changed ones (with their row ids); the
        same key, GUID or canonical URL within a source is the same article, and an article
        whose content hash is unchanged is neither."""
        existing = self._existing(source, batch)
        new: list[Article] = []
        changed: list[tuple[int, Article]] = []
        claimed: set[str] = set()
        seen_ids: set[int] = set()
        for article in batch:
            match = (
                existing.get(("key", article.key))
                or (existing.get(("guid", article.guid)) if article.guid else None)
                or (existing.get(("url", article.url)) if article.url else None)
            )
            if match is None:
                marks = [
                    f"{kind}\x1f{value}"
                    for kind, value in (
                        ("key", article.key),
                        ("guid", article.guid),
                        ("url", article.url),
                    )
                    if value
                ]
                if not claimed.intersection(marks):  # the same item twice in one batch
                    claimed.update(marks)
                    new.append(article)
                continue
            row_id, content_hash = match
            if row_id not in seen_ids and content_hash != article.content_hash:
                changed.append((row_id, article))
            seen_ids.add(row_id)
        return Upserted(new, changed)

    def _existing(
        self, source: str, batch: Sequence[Article]
    ) -> dict[tuple[str, str], tuple[int, str]]:
        found: dict[tuple[str, str], tuple[int, str]] = {}
        if not batch:
            return found
        for i in range(0, len(batch), 300):
            chunk = batch[i : i + 300]
            params = {
                "b_source": source,
                "b_keys": [a.key for a in chunk],
                "b_guids": [a.guid for a in chunk if a.guid],
                "b_urls": [a.url for a in chunk if a.url],
            }
            for row in self.conn.execute(_EXISTING, params):
                value = (row.id, row.content_hash)
                found[("key", row.key)] = value
                if row.guid:
                    found.setdefault(("guid", row.guid), value)
                if row.url:
                    found.setdefault(("url", row.url), value)
        return found

    def signatures_after(self, article_id: int) -> list[Any]:
        """Articles stored after `article_id`, by other instances sharing the database: read
        inside this transaction, which holds the write lock, so none can be missing."""
        return list(self.conn.execute(_SIGNATURES_AFTER, {"after": article_id}))

    def new_rows(self, now: datetime) -> NewRows:
        """A writer for one batch of new stories and articles (two executemany calls). Ids are
        handed out here, not by sequences: the transaction holds the write lock."""
        story, article, newest, newest_story = self.conn.execute(_HEAD).one()
        self._seed_stamp(now, newest, newest_story)
        return NewRows(self, now, int(story) + 1, int(article) + 1)

    def update_article(self, row_id: int, article: Article, now: datetime) -> None:
        """A changed entry: its row and its story's `updated` move; identity stays as first stored."""
        values = _values(article)
        values.pop("key")
        values["updated"] = self.stamp(now)
        self.conn.execute(articles.update().where(articles.c.id == row_id).values(values))
        story_id = self.conn.execute(
            select(articles.c.story_id).where(articles.c.id == row_id)
        ).scalar()
        if story_id:
            self.conn.execute(
                stories.update().where(stories.c.id == story_id).values(updated=self.stamp(now))
            )

    # --- source health -------------------------------------------------------------------------

    def sync_sources(self, configured: Sequence[tuple[str, str]]) -> None:
        """Known sources match the config; removed ones stay (with their articles), marked."""
        rows = {
            r.name: r
            for r in self.conn.execute(select(sources.c.name, sources.c.url, sources.c.removed))
        }
        names = {name for name, _ in configured}
        for name, url in configured:
            row = rows.get(name)
            if row is None:
                self.conn.execute(
                    sources.insert().values(
                        name=name,
                        url=url,
                        warnings=[],
                        item_counts=[],
                        consecutive_failures=0,
                        removed=False,
                    )
                )
            elif row.url != url or row.removed:
                # A changed URL is a different resource: forget its validators.
                values: dict[str, Any] = {"url": url, "removed": False}
                if row.url != url:
                    values.update(etag=None, last_modified=None, moved_to=None)
                self.conn.execute(sources.update().where(sources.c.name == name).values(values))
        for name, row in rows.items():
            if name not in names and not row.removed:
                self.conn.execute(
                    sources.update().where(sources.c.name == name).values(removed=True)
                )

    def record_success(
        self,
        name: str,
        *,
        now: datetime,
        etag: str | None,
        last_modified: str | None,
        status: str,
        warnings: Sequence[str],
        next_poll: datetime | None,
        moved_to: str | None,
        item_counts: Sequence[int],
    ) -> None:
        """`item_counts`: the source's recent item counts, this poll's last."""
        values: dict[str, Any] = dict(
            last_poll=now,
            last_success=now,
            last_status=status,
            consecutive_failures=0,
            failing_since=None,
            warnings=list(warnings),
            next_poll=next_poll,
            moved_to=moved_to,
            item_counts=list(item_counts),
            http_status=None,
        )
        if status != "not_modified" or etag or last_modified:
            values.update(etag=etag, last_modified=last_modified)
        if status == "not_modified":
            values.pop("warnings")  # nothing was re-read: the last poll's warnings still hold
        self.conn.execute(_source_update(tuple(values)), {"b_name": name, **values})

    def record_not_modified(self, polls: Sequence[NotModified], now: datetime) -> None:
        """A 304 changes only bookkeeping: one statement for every quiet source of a poll. A
        validator the 304 repeats replaces the stored one; one it omits is kept."""
        if not polls:
            return
        self.conn.execute(
            sources.update()
            .where(sources.c.name == bindparam("b_name"))
            .values(
                last_poll=now,
                last_success=now,
                last_status="not_modified",
                consecutive_failures=0,
                failing_since=None,
                next_poll=bindparam("b_next"),
                moved_to=bindparam("b_moved"),
                http_status=None,
                etag=func.coalesce(bindparam("b_etag"), sources.c.etag),
                last_modified=func.coalesce(bindparam("b_modified"), sources.c.last_modified),
            ),
            [
                {
                    "b_name": p.name,
                    "b_next": p.next_poll,
                    "b_moved": p.moved_to,
                    "b_etag": p.etag,
                    "b_modified": p.last_modified,
                }
                for p in polls
            ],
        )

    def record_error(
        self,
        name: str,
        *,
        now: datetime,
        error: str,
        http_status: int | None,
        next_poll: datetime | None,
    ) -> None:
        row = self.conn.execute(
            select(sources.c.consecutive_failures, sources.c.failing_since).where(
                sources.c.name == name
            )
        ).first()
        failures = (row.consecutive_failures or 0) + 1 if row else 1
        self.conn.execute(
            sources.update()
            .where(sources.c.name == name)
            .values(
                last_poll=now,
                last_status="error",
                last_error=error,
                last_error_at=now,
                http_status=http_status,
                consecutive_failures=failures,
                failing_since=(row.failing_since if row and row.failing_since else now),
                next_poll=next_poll,
            )
        )

    # --- digest ledger -------------------------------------------------------------------------

    def mark_delivered(
        self, recipient: str, story_ids: Iterable[int], message_id: str, now: datetime
    ) -> None:
        for story_id in story_ids:
            exists = self.conn.execute(
                select(deliveries.c.story_id).where(
                    deliveries.c.recipient == recipient, deliveries.c.story_id == story_id
                )
            ).first()
            if not exists:
                self.conn.execute(
                    deliveries.insert().values(
                        recipient=recipient, story_id=story_id, sent_at=now, message_id=message_id
                    )
                )
        self._digest_run(
            recipient,
            now,
            last_sent=now,
            last_error=None,
            failures=0,
            claimed_until=None,
            claimed_by=None,
        )

    def claim_digest(
        self,
        recipient: str,
        now: datetime,
        until: datetime,
        claimant: str,
        abandoned: Callable[[str], bool] = lambda claimant: False,
    ) -> datetime | None:
        """Take the recipient's digest for `claimant` until `until`. Returns None when taken,
        else when another claimant's claim ends: it is left alone until then, unless
        `abandoned` says that claimant is gone (a crashed process on this host)."""
        row = self.conn.execute(
            select(digest_runs.c.claimed_until, digest_runs.c.claimed_by).where(
                digest_runs.c.recipient == recipient
            )
        ).first()
        if (
            row is not None
            and row.claimed_until is not None
            and row.claimed_until > now
            and row.claimed_by != claimant
            and not abandoned(row.claimed_by or "")
        ):
            claimed: datetime = row.claimed_until
            return claimed
        values = {"claimed_until": until, "claimed_by": claimant}
        if row is None:
            self.conn.execute(
                digest_runs.insert().values(recipient=recipient, failures=0, **values)
            )
        else:
            self.conn.execute(
                digest_runs.update().where(digest_runs.c.recipient == recipient).values(values)
            )
        return None

    def release_digest(self, recipient: str) -> None:
        self.conn.execute(
            digest_runs.update()
            .where(digest_runs.c.recipient == recipient)
            .values(claimed_until=None, claimed_by=None)
        )

    def record_digest_failure(self, recipient: str, error: str, now: datetime) -> None:
        row = self.conn.execute(
            select(digest_runs.c.failures).where(digest_runs.c.recipient == recipient)
        ).first()
        self._digest_run(
            recipient,
            now,
            last_error=error,
            failures=(row.failures if row else 0) + 1,
            claimed_until=None,
            claimed_by=None,
        )

    def _digest_run(self, recipient: str, now: datetime, **values: Any) -> None:
        values["last_attempt"] = now
        exists = self.conn.execute(
            select(digest_runs.c.recipient).where(digest_runs.c.recipient == recipient)
        ).first()
        if exists:
            self.conn.execute(
                digest_runs.update().where(digest_runs.c.recipient == recipient).values(values)
            )
        else:
            values.setdefault("failures", 0)
            self.conn.execute(digest_runs.insert().values(recipient=recipient, **values))
