"""The data that flows between stages: frozen dataclasses, no behaviour.

Foreign types (feedparser dicts, bs4 tags, database rows) are converted into these at the
boundary of the stage that meets them, so every other stage sees only these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Enclosure:
    url: str
    type: str = "application/octet-stream"
    title: str = ""
    length: int = 0


@dataclass(frozen=True)
class Item:
    """One entry as a source published it, before normalization."""

    title: str
    link: str | None = None
    guid: str | None = None
    summary: str | None = None  # HTML or text as published
    content: str | None = None  # full HTML body when the source gave one
    author: str | None = None
    published: datetime | None = None  # aware UTC, from our date rules
    updated: datetime | None = None
    tags: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    base_url: str = ""  # what relative links resolve against


@dataclass(frozen=True)
class Article:
    """One normalized copy of a story, as stored."""

    source: str
    key: str  # identity within the source: see normalize.identity_key
    url: str  # canonical URL (tracking parameters and fragment removed)
    link: str  # link as published, absolute
    guid: str | None
    title: str  # clean single-line text
    summary: str  # plain text, short
    content: str | None  # sanitized HTML
    author: str | None
    published: datetime  # aware UTC; time first seen when the source gave none
    source_updated: datetime | None
    tags: tuple[str, ...]
    enclosures: tuple[Enclosure, ...]
    content_hash: str  # over the fields a reader sees; volatile fields left out
    text_hash: str  # over the cleaned body text alone: the exact-duplicate key across sources


@dataclass(frozen=True)
class Fetched:
    """What one HTTP request returned, reduced to what later stages need."""

    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    headers: dict[str, str]
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    moved_to: str | None = None  # set when a permanent redirect was followed
    elapsed: float = 0.0


@dataclass(frozen=True)
class StoredArticle:
    """An article as read back from the store, with its database ids."""

    id: int
    story_id: int
    article: Article
    first_seen: datetime
    updated: datetime


@dataclass(frozen=True)
class Story:
    """A story: one or more copies of the same news, shown once."""

    id: int
    uid: str  # stable: the Atom entry id is derived from it
    first_seen: datetime
    updated: datetime
    published: datetime
    copies: tuple[StoredArticle, ...]  # the preferred copy first, once arranged by dedupe

    @property
    def preferred(self) -> StoredArticle:
        return self.copies[0]

    @property
    def others(self) -> tuple[StoredArticle, ...]:
        return self.copies[1:]


@dataclass(frozen=True)
class SourceHealth:
    name: str
    url: str
    enabled: bool
    last_poll: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_status: str | None = None  # ok | not_modified | error
    consecutive_failures: int = 0
    articles: int = 0
    warnings: tuple[str, ...] = ()
    next_poll: datetime | None = None
    failing_since: datetime | None = None
    moved_to: str | None = None
    removed: bool = False

    def dead(self, now: datetime, after: timedelta) -> bool:
        """Failing for longer than `after` (poll.dead_after): reported, still retried."""
        return bool(self.failing_since and not self.removed and now - self.failing_since > after)


@dataclass(frozen=True)
class PollReport:
    """The outcome of polling one source: one line in the CLI, one log line."""

    source: str
    status: str  # ok | not_modified | error
    new: int = 0
    updated: int = 0
    error: str | None = None
    http_status: int | None = None
    warnings: tuple[str, ...] = ()
    duration: float = 0.0
    moved_to: str | None = None

    def line(self) -> str:
        if self.status == "error":
            text = f"error: {self.error}"
        elif self.status == "skipped":
            text = "skipped (shutting down)"
        elif self.status == "not_modified":
            text = "not modified"
        else:
            text = f"ok new={self.new} updated={self.updated}"
        if self.moved_to:
            text += f" (moved to {self.moved_to}, update config)"
        for warning in self.warnings:
            text += f" [warning: {warning}]"
        return text


@dataclass(frozen=True)
class Parsed:
    """What a parser made of one fetched body."""

    items: tuple[Item, ...]
    title: str = ""
    ttl_minutes: int | None = None
    warnings: tuple[str, ...] = ()
    next_page: str | None = None
