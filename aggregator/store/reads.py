"""`Store`, one database: its transactions (the writes are `Tx`'s) and every read, with
`DigestLedger`, the reads of the digest."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StorageError
from ..model import Article, SourceHealth, StoredArticle, Story
from .rows import SIGNATURES, stored_article
from .schema import articles, deliveries, digest_runs, sources, stories
from .writes import Tx


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        try:
            with self.engine.begin() as conn:
                # Writers take the lock up front, before reading what is stored: two instances
                # classifying the same items at once would both insert them. (On SQLite a reader
                # turning writer mid-transaction would also fail at once instead of waiting out
                # the busy timeout.) Readers are not blocked: WAL, and PostgreSQL's SHARE ROW
                # EXCLUSIVE lets plain SELECTs through.
                if self.engine.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                elif self.engine.dialect.name == "postgresql":
                    conn.exec_driver_sql("LOCK TABLE stories, articles IN SHARE ROW EXCLUSIVE MODE")
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
        query = SIGNATURES.where(articles.c.published >= since)
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
