"""SQLAlchemy store: articles, stories, source health, digest ledger.

Every poll of a source is one short transaction (`with store.transaction() as tx:`), so a
crash at any moment leaves the previous state intact and a re-poll repeats nothing.

The modules, each importing only those listed before it: `schema` (tables, migrations),
`rows` (rows <-> model types, `NewRows`: one poll's batched inserts), `writes` (`Tx`: the
writes of one transaction) and `reads` (`Store`: transactions and every read;
`DigestLedger`); an import-linter contract in pyproject.toml holds that order. Here:
`open_store`, and what code outside the package uses.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StorageError
from . import schema
from .reads import DigestLedger, Store, _first_line
from .rows import NewRows, stored_article, story_uid
from .writes import NotModified, Tx, Upserted

__all__ = [
    "DigestLedger",
    "NewRows",
    "NotModified",
    "Store",
    "Tx",
    "Upserted",
    "open_store",
    "stored_article",
    "story_uid",
]


def open_store(url: str) -> Store:
    """Open (and migrate) the database; a storage failure is a StorageError (exit 3)."""
    try:
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///") :]
            if path and not path.startswith(":memory:"):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url, connect_args={"timeout": _BUSY_SECONDS, "check_same_thread": False}
            )
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        with engine.connect() as conn:
            current = schema.recorded_version(conn)
        if current != schema.SCHEMA_VERSION:
            with engine.begin() as conn:
                schema.lock_for_migration(conn)
                schema.migrate(conn)
    except (SQLAlchemyError, OSError, RuntimeError) as exc:
        raise StorageError(f"cannot open database {_safe(url)}: {_first_line(exc)}") from exc
    return Store(engine)


_BUSY_SECONDS = 60


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL lets readers (the web app) run beside a writer; busy_timeout waits out a writer
    in another process instead of failing with 'database is locked'."""
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_SECONDS * 1000}")
    # Switching a new database to WAL needs it to itself, and SQLite answers "locked" at once
    # (without the busy handler) while another process is creating it: retry for as long.
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _safe(url: str) -> str:
    """Never print a database password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url
