"""Tables and migrations. The schema is versioned: each step in MIGRATIONS moves it one up."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, whatever the backend keeps."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, where the value is stored as text, both steps in one call: SQLAlchemy's
        text form (`%04d-%02d-%02d %02d:%02d:%02d.%06d`, formatted in Python) is what
        `isoformat(" ", "microseconds")` writes in C. Tens of thousands of values a poll."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the store")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


metadata = MetaData()

meta = Table("meta", metadata, Column("key", String(100), primary_key=True), Column("value", Text))

sources = Table(
    "sources",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("url", Text, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_poll", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("last_status", String(20)),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime),
    Column("http_status", Integer),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("failing_since", UTCDateTime),
    Column("next_poll", UTCDateTime),
    Column("warnings", JSON, nullable=False, default=list),
    Column("item_counts", JSON, nullable=False, default=list),
    Column("moved_to", Text),
    Column("removed", Boolean, nullable=False, default=False),
)

stories = Table(
    "stories",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(64), nullable=False, unique=True),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Column("published", UTCDateTime, nullable=False),
    Index("ix_stories_published", "published"),
    Index("ix_stories_first_seen", "first_seen"),
    Index("ix_stories_updated", "updated"),
)

articles = Table(
    "articles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),
    Column("key", Text, nullable=False),
    Column("guid", Text),
    Column("url", Text, nullable=False),
    Column("link", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("content", Text),
    Column("author", Text),
    Column("published", UTCDateTime, nullable=False),
    Column("source_updated", UTCDateTime),
    Column("tags", JSON, nullable=False),
    Column("enclosures", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("text_hash", String(64), nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Column("story_id", Integer, nullable=False),
    Column("title_key", Text, nullable=False, default=""),
    Column("doc_number", String(100)),
    Column("signature", LargeBinary),
    UniqueConstraint("source", "key", name="uq_articles_source_key"),
    Index("ix_articles_source_url", "source", "url"),
    Index("ix_articles_source_guid", "source", "guid"),
    Index("ix_articles_story", "story_id"),
    Index("ix_articles_updated", "updated"),
    Index("ix_articles_url", "url"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("recipient", String(320), primary_key=True),
    Column("story_id", Integer, primary_key=True),
    Column("sent_at", UTCDateTime, nullable=False),
    Column("message_id", Text, nullable=False),
)

digest_runs = Table(
    "digest_runs",
    metadata,
    Column("recipient", String(320), primary_key=True),
    Column("last_sent", UTCDateTime),
    Column("last_attempt", UTCDateTime),
    Column("last_error", Text),
    Column("failures", Integer, nullable=False, default=0),
    # Set while an instance is sending this recipient's digest: the others leave it alone.
    Column("claimed_until", UTCDateTime),
    Column("claimed_by", String(200)),  # host:pid of that instance
)


def _v1(conn: Connection) -> None:
    metadata.create_all(conn)


def _v2(conn: Connection) -> None:
    """`Tx.stamp` reads max(stories.updated) once a transaction: without an index that is a
    scan of every story, once per source polled."""
    for index in stories.indexes:
        if index.name == "ix_stories_updated":
            index.create(conn, checkfirst=True)


def _v3(conn: Connection) -> None:
    """Digest claims: several instances may run the digest, one sends each recipient's."""
    have = {c["name"] for c in inspect(conn).get_columns("digest_runs")}
    for column in (digest_runs.c.claimed_until, digest_runs.c.claimed_by):
        if column.name not in have:
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE digest_runs ADD COLUMN {column.name} {kind}")


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3]
SCHEMA_VERSION = len(MIGRATIONS)


# Any number of ours: the PostgreSQL advisory lock that one migration at a time holds.
_MIGRATION_LOCK = 0x61676772  # "aggr"


def recorded_version(conn: Connection) -> int | None:
    """The schema version the database says it has; None when it has no schema yet."""
    try:
        row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
    except DBAPIError:  # no meta table: a new database
        return None
    return int(row[0]) if row else None


def lock_for_migration(conn: Connection) -> None:
    """Several instances may open a new (or older) database at the same moment: one creates
    or upgrades the schema, the others wait for it and then find nothing to do."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")


def migrate(conn: Connection) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found before. Run it after
    `lock_for_migration` in the same transaction."""
    meta.create(conn, checkfirst=True)
    row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
    found = int(row[0]) if row else 0
    if found > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {found} is newer than this program ({SCHEMA_VERSION})"
        )
    for step in MIGRATIONS[found:]:
        step(conn)
    if found != SCHEMA_VERSION:
        if row:
            conn.execute(
                meta.update()
                .where(meta.c.key == "schema_version")
                .values(value=str(SCHEMA_VERSION))
            )
        else:
            conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
    conn.execute(text("SELECT 1"))
    return found
