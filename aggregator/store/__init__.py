"""SQLAlchemy store: articles, stories, source health, digest ledger.

Every poll of a source is one short transaction (`with store.transaction() as tx:`), so a
crash at any moment leaves the previous state intact and a re-poll repeats nothing.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, event, func, or_, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StorageError
from ..model import Article, Enclosure, SourceHealth, StoredArticle, Story
from . import schema
from .schema import articles, deliveries, digest_runs, sources, stories

_TICK = timedelta(microseconds=1)


def open_store(url: str) -> Store:
    """Open (and migrate) the database; a storage failure is a StorageError (exit 3)."""
    try:
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///") :]
            if path and not path.startswith(":memory:"):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        with engine.begin() as conn:
            schema.migrate(conn)
    except (SQLAlchemyError, OSError, RuntimeError) as exc:
        raise StorageError(f"cannot open database {_safe(url)}: {_first_line(exc)}") from exc
    return Store(engine)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets readers (the web app) run beside a writer; busy_timeout waits out a writer
    in another process instead of failing with 'database is locked'."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def _safe(url: str) -> str:
    """Never print a database password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


@dataclass(frozen=True)
class Upserted:
    new: list[Article]
    updated: list[tuple[int, Article]]


# Built once: executing the same statement object reuses its compiled form.
_INSERT_ARTICLE = articles.insert()
_INSERT_STORY = stories.insert()
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


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        try:
            with self.engine.begin() as conn:
                if self.engine.dialect.name == "sqlite":
                    # Take the write lock up front: a reader turning writer mid-transaction
                    # could otherwise fail at once instead of waiting out the busy timeout.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield Tx(conn)
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {_first_line(exc)}") from exc

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {_first_line(exc)}") from exc

    # --- reads ---------------------------------------------------------------------------------

    def source_states(self) -> dict[str, Row[Any]]:
        with self.reading() as conn:
            return {row.name: row for row in conn.execute(select(sources))}

    def health(self) -> list[SourceHealth]:
        with self.reading() as conn:
            counts: dict[str, int] = {
                row[0]: int(row[1])
                for row in conn.execute(
                    select(articles.c.source, func.count()).group_by(articles.c.source)
                )
            }
            return [
                SourceHealth(
                    name=r.name,
                    url=r.url,
                    enabled=not r.removed,
                    last_poll=r.last_poll,
                    last_success=r.last_success,
                    last_error=r.last_error,
                    last_error_at=r.last_error_at,
                    last_status=r.last_status,
                    consecutive_failures=r.consecutive_failures or 0,
                    articles=int(counts.get(r.name, 0)),
                    warnings=tuple(r.warnings or ()),
                    next_poll=r.next_poll,
                    failing_since=r.failing_since,
                    moved_to=r.moved_to,
                    removed=bool(r.removed),
                )
                for r in conn.execute(select(sources).order_by(sources.c.name))
            ]

    def known_links(self, source: str, urls: Iterable[str]) -> set[str]:
        """Which of these canonical URLs the source already has (to skip refetching pages)."""
        wanted = list(set(urls))
        found: set[str] = set()
        with self.reading() as conn:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                found.update(
                    conn.execute(
                        select(articles.c.url).where(
                            articles.c.source == source, articles.c.url.in_(chunk)
                        )
                    ).scalars()
                )
        return found

    def articles_by_urls(self, source: str, urls: Sequence[str]) -> dict[str, Article]:
        """A source's stored articles by canonical URL, in one query per 500 URLs."""
        found: dict[str, Article] = {}
        with self.reading() as conn:
            for i in range(0, len(urls), 500):
                query = select(articles).where(
                    articles.c.source == source, articles.c.url.in_(list(urls[i : i + 500]))
                )
                for row in conn.execute(query):
                    found[row.url] = stored_article(row).article
        return found

    def recent_stories(
        self, limit: int, since: datetime | None = None, first_seen_after: datetime | None = None
    ) -> list[Story]:
        """Newest stories by published date, each with all its copies."""
        query = (
            select(stories).order_by(stories.c.published.desc(), stories.c.id.desc()).limit(limit)
        )
        if since is not None:
            query = query.where(stories.c.published >= since)
        if first_seen_after is not None:
            query = query.where(stories.c.first_seen > first_seen_after)
        with self.reading() as conn:
            rows = conn.execute(query).all()
            return self._stories(conn, rows)

    def _stories(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[Story]:
        if not rows:
            return []
        copies: dict[int, list[StoredArticle]] = {}
        ids = [r.id for r in rows]
        for i in range(0, len(ids), 500):
            query = select(articles).where(articles.c.story_id.in_(ids[i : i + 500]))
            for row in conn.execute(query.order_by(articles.c.published, articles.c.id)):
                copies.setdefault(row.story_id, []).append(stored_article(row))
        return [
            Story(
                id=r.id,
                uid=r.uid,
                first_seen=r.first_seen,
                updated=r.updated,
                published=r.published,
                copies=tuple(copies[r.id]),
            )
            for r in rows
            if r.id in copies
        ]

    def article_by_url(self, url: str) -> StoredArticle | None:
        with self.reading() as conn:
            row = conn.execute(
                select(articles).where(or_(articles.c.url == url, articles.c.link == url)).limit(1)
            ).first()
            return stored_article(row) if row else None

    def dedupe_keys(self, article_id: int) -> tuple[str, str | None, bytes | None]:
        """The fingerprint stored with an article (title key, document number, signature)."""
        with self.reading() as conn:
            row = conn.execute(
                select(articles.c.title_key, articles.c.doc_number, articles.c.signature).where(
                    articles.c.id == article_id
                )
            ).one()
            return row.title_key or "", row.doc_number, row.signature

    def signatures_since(self, since: datetime) -> Iterator[Any]:
        """Rows the dedupe index is rebuilt from at start-up, oldest first."""
        query = (
            select(
                articles.c.id,
                articles.c.story_id,
                articles.c.source,
                articles.c.url,
                articles.c.guid,
                articles.c.text_hash,
                articles.c.title_key,
                articles.c.doc_number,
                articles.c.signature,
                articles.c.published,
                articles.c.title,
            )
            .where(articles.c.published >= since)
            .order_by(articles.c.id)
        )
        with self.reading() as conn:
            yield from conn.execute(query.execution_options(yield_per=5000))

    def last_change(self) -> datetime | None:
        """When anything the outputs show last changed (stamps only move forward)."""
        with self.reading() as conn:
            stamp: datetime | None = conn.execute(select(func.max(stories.c.updated))).scalar()
            return stamp

    def counts(self) -> dict[str, int]:
        with self.reading() as conn:
            return {
                "articles": conn.execute(select(func.count()).select_from(articles)).scalar_one(),
                "stories": conn.execute(select(func.count()).select_from(stories)).scalar_one(),
            }


def stored_article(row: Row[Any]) -> StoredArticle:
    article = Article(
        source=row.source,
        key=row.key,
        url=row.url,
        link=row.link,
        guid=row.guid,
        title=row.title,
        summary=row.summary,
        content=row.content,
        author=row.author,
        published=row.published,
        source_updated=row.source_updated,
        tags=tuple(row.tags or ()),
        enclosures=tuple(Enclosure(**e) for e in row.enclosures or ()),
        content_hash=row.content_hash,
        text_hash=row.text_hash,
    )
    return StoredArticle(
        id=row.id,
        story_id=row.story_id,
        article=article,
        first_seen=row.first_seen,
        updated=row.updated,
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


def story_uid(source: str, key: str) -> str:
    """Stable across rebuilds: derived from the first copy's identity."""
    return str(
        uuid.UUID(bytes=hashlib.sha1(f"{source}\x1f{key}".encode()).digest()[:16], version=5)
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

    def new_rows(self, now: datetime) -> NewRows:
        """A writer for one batch of new stories and articles (two executemany calls)."""
        if self.conn.dialect.name == "postgresql":  # ids are handed out here, not by sequences
            self.conn.exec_driver_sql("LOCK TABLE stories, articles IN SHARE ROW EXCLUSIVE MODE")
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
        self._digest_run(recipient, now, last_sent=now, last_error=None, failures=0)

    def record_digest_failure(self, recipient: str, error: str, now: datetime) -> None:
        row = self.conn.execute(
            select(digest_runs.c.failures).where(digest_runs.c.recipient == recipient)
        ).first()
        self._digest_run(
            recipient, now, last_error=error, failures=(row.failures if row else 0) + 1
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


class NewRows:
    """New stories and articles of one source's poll. Ids are handed out up front (the
    transaction holds the write lock), so dedupe can link copies within the batch, and the
    rows go to the database in one executemany per table at `flush`."""

    def __init__(self, tx: Tx, now: datetime, next_story: int, next_article: int) -> None:
        self.tx, self.now = tx, now
        self._next_story, self._next_article = next_story, next_article
        self._stories: dict[int, dict[str, Any]] = {}
        self._articles: list[dict[str, Any]] = []
        self._joins: dict[int, datetime] = {}  # existing story -> earliest published joining it

    def story(self, article: Article) -> int:
        story_id, self._next_story = self._next_story, self._next_story + 1
        self._stories[story_id] = {
            "id": story_id,
            "uid": story_uid(article.source, article.key),
            "first_seen": self.now,
            "updated": self.tx.stamp(self.now),
            "published": article.published,
        }
        return story_id

    def join(self, story_id: int, article: Article) -> None:
        """A copy joins a story: its `updated` moves, its id (and Atom entry id) stays."""
        pending = self._stories.get(story_id)
        if pending is not None:
            pending["updated"] = self.tx.stamp(self.now)
            pending["published"] = min(pending["published"], article.published)
        else:
            earliest = self._joins.get(story_id, article.published)
            self._joins[story_id] = min(earliest, article.published)

    def article(
        self,
        article: Article,
        story_id: int,
        title_key: str = "",
        doc_number: str | None = None,
        signature: bytes | None = None,
    ) -> int:
        article_id, self._next_article = self._next_article, self._next_article + 1
        values = _values(article)
        values.update(
            id=article_id,
            first_seen=self.now,
            updated=self.tx.stamp(self.now),
            story_id=story_id,
            title_key=title_key,
            doc_number=doc_number,
            signature=signature,
        )
        self._articles.append(values)
        return article_id

    def flush(self) -> None:
        conn = self.tx.conn
        if self._stories:
            conn.execute(_INSERT_STORY, list(self._stories.values()))
        if self._articles:
            conn.execute(_INSERT_ARTICLE, self._articles)
        if self._joins:
            earliest = func.min if conn.dialect.name == "sqlite" else func.least
            statement = (
                stories.update()
                .where(stories.c.id == bindparam("b_id"))
                .values(
                    updated=bindparam("b_updated"),
                    published=earliest(
                        stories.c.published,
                        bindparam("b_published", type_=stories.c.published.type),
                    ),
                )
            )
            conn.execute(
                statement,
                [
                    {
                        "b_id": story_id,
                        "b_updated": self.tx.stamp(self.now),
                        "b_published": published,
                    }
                    for story_id, published in self._joins.items()
                ],
            )


def _inserted_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _values(article: Article) -> dict[str, Any]:
    return dict(
        source=article.source,
        key=article.key,
        guid=article.guid,
        url=article.url,
        link=article.link,
        title=article.title,
        summary=article.summary,
        content=article.content,
        author=article.author,
        published=article.published,
        source_updated=article.source_updated,
        tags=list(article.tags),
        enclosures=[e.__dict__ for e in article.enclosures],
        content_hash=article.content_hash,
        text_hash=article.text_hash,
    )


def _undelivered_query(recipient: str, floor: datetime) -> Any:
    delivered = select(deliveries.c.story_id).where(deliveries.c.recipient == recipient)
    return (
        select(stories)
        .where(stories.c.first_seen > floor, stories.c.id.not_in(delivered))
        .order_by(stories.c.first_seen, stories.c.id)
    )


class DigestLedger:
    """Reads the digest needs: what a recipient has not been sent, and when they last were."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def undelivered(self, recipient: str, floor: datetime) -> list[Story]:
        with self.store.reading() as conn:
            return self.store._stories(
                conn, conn.execute(_undelivered_query(recipient, floor)).all()
            )

    def last_sent(self, recipient: str) -> datetime | None:
        with self.store.reading() as conn:
            return conn.execute(
                select(digest_runs.c.last_sent).where(digest_runs.c.recipient == recipient)
            ).scalar()

    def failures(self, recipient: str) -> int:
        with self.store.reading() as conn:
            return int(
                conn.execute(
                    select(digest_runs.c.failures).where(digest_runs.c.recipient == recipient)
                ).scalar()
                or 0
            )

    def last_run(self) -> datetime | None:
        with self.store.reading() as conn:
            return conn.execute(select(func.max(digest_runs.c.last_attempt))).scalar()
