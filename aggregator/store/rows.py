"""Rows and model types: a stored row -> `StoredArticle`, an `Article` -> row values, and
`NewRows`, the batched inserts of one source's poll."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.engine import Connection, Row

from ..model import Article, Enclosure, StoredArticle
from .schema import articles, stories

# Built once: executing the same statement object reuses its compiled form.
_INSERT_ARTICLE = articles.insert()
_INSERT_STORY = stories.insert()
# What the dedupe index holds of an article, oldest first (see `load_index` in the pipeline).
SIGNATURES: Select[Any] = select(
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
).order_by(articles.c.id)


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


def story_uid(source: str, key: str) -> str:
    """Stable across rebuilds: derived from the first copy's identity."""
    return str(
        uuid.UUID(bytes=hashlib.sha1(f"{source}\x1f{key}".encode()).digest()[:16], version=5)
    )


class Stamps(Protocol):
    """What `NewRows` needs of its `Tx` (writes.py imports this module, not the reverse)."""

    conn: Connection

    def stamp(self, now: datetime) -> datetime: ...


class NewRows:
    """New stories and articles of one source's poll. Ids are handed out up front (the
    transaction holds the write lock), so dedupe can link copies within the batch, and the
    rows go to the database in one executemany per table at `flush`."""

    def __init__(self, tx: Stamps, now: datetime, next_story: int, next_article: int) -> None:
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
