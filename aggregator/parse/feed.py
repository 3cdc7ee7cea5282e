"""Feed bytes -> Items, with feedparser (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, RDF, JSON Feed).

feedparser gets bytes and headers, never a URL, and runs with its own sanitizer and URI
resolver off: normalize sanitizes once with nh3, which is several times faster.
"""

from __future__ import annotations

import calendar
import io
import json
import re
from datetime import UTC, datetime, tzinfo
from typing import Any

import feedparser

from ..errors import ParseError
from ..model import Enclosure, Item, Parsed
from . import tuning  # noqa: F401  (makes feedparser faster, same results)
from .dates import looks_chinese_or_ambiguous, parse_date

_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_ENTITY_DECL = re.compile(rb"<!DOCTYPE[^>\[]*\[.*?\]\s*>", re.S | re.I)


def parse_feed(
    body: bytes, headers: dict[str, str], final_url: str, *, source: str, tz: tzinfo, now: datetime
) -> Parsed:
    """Parse a feed; an unusable body is a ParseError naming the source."""
    if not body.strip():
        raise ParseError(source, "empty body")
    if body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        return parse_json_feed(body, final_url, source=source, tz=tz, now=now)
    # An internal DTD subset is only ever used for entity tricks (billion laughs, XXE): drop it.
    body = _ENTITY_DECL.sub(b"", body, count=1)
    response_headers = {
        "content-location": final_url,
        "content-type": headers.get("content-type", ""),
    }
    try:
        parsed = feedparser.parse(
            # A stream, never bytes: feedparser treats a short bytes body as a file path or a
            # URL to open itself (a server answering "/etc/passwd" would get it published).
            io.BytesIO(body),
            response_headers=response_headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except (UnicodeError, ValueError) as exc:  # e.g. &#xD800; in feedparser's loose parser
        raise ParseError(source, f"not a usable feed: {type(exc).__name__}: {exc}") from None
    entries = parsed.get("entries") or []
    if not entries and (not parsed.get("version") or parsed.get("bozo")):
        if _HTML_START.match(body[:2048]):
            raise ParseError(source, "got an HTML page, not a feed (set type: html or type: auto)")
        reason = parsed.get("bozo_exception")
        raise ParseError(source, f"not a usable feed: {reason or 'no entries'}")
    items = tuple(_item(entry, final_url, tz, now) for entry in entries)
    feed = parsed.get("feed", {})
    ttl = feed.get("ttl")
    return Parsed(
        items=items,
        title=str(feed.get("title", "")),
        ttl_minutes=int(ttl) if str(ttl or "").isdigit() else None,
    )


def _item(entry: Any, base: str, tz: tzinfo, now: datetime) -> Item:
    link = entry.get("link")
    if not link:
        link = next((lk.get("href") for lk in entry.get("links") or [] if lk.get("href")), None)
    content = None
    feed_url = base
    for part in entry.get("content") or []:
        if part.get("value"):
            content = part["value"]
            base = part.get("base") or base
            break
    if base == feed_url and link and link.startswith(("http://", "https://")):
        base = link  # no xml:base: relative links in a body mean the article's own page
    summary = entry.get("summary")
    if summary and content and summary.strip() == content.strip():
        summary = None
    return Item(
        title=str(entry.get("title") or ""),
        link=link,
        guid=entry.get("id") or None,
        summary=summary,
        content=content,
        author=entry.get("author") or None,
        published=_date(entry, "published", tz, now) or _date(entry, "created", tz, now),
        updated=_date(entry, "updated", tz, now),
        tags=tuple(t for t in (_tag(tag) for tag in entry.get("tags") or []) if t),
        enclosures=_enclosures(entry),
        base_url=base,
    )


def _date(entry: Any, key: str, tz: tzinfo, now: datetime) -> datetime | None:
    """Our rules for Chinese or zone-ambiguous text (feedparser misreads those), else feedparser's."""
    if key not in entry:  # entry.get('updated') would silently fall back to published
        return None
    raw = str(entry.get(key) or "")
    if raw and looks_chinese_or_ambiguous(raw):
        return parse_date(raw, tz, now)
    struct = entry.get(f"{key}_parsed")
    if struct:
        try:
            return datetime.fromtimestamp(calendar.timegm(struct), UTC)
        except (OverflowError, ValueError, OSError):
            pass
    return parse_date(raw, tz, now) if raw else None


def _tag(tag: Any) -> str:
    return str(tag.get("label") or tag.get("term") or "").strip()


def _enclosures(entry: Any) -> tuple[Enclosure, ...]:
    seen: dict[str, Enclosure] = {}
    for link in entry.get("links") or []:
        href = link.get("href")
        if link.get("rel") == "enclosure" and href and href not in seen:
            length = str(link.get("length") or "0")
            seen[href] = Enclosure(
                href,
                link.get("type") or "application/octet-stream",
                link.get("title") or "",
                int(length) if length.isdigit() else 0,
            )
    return tuple(seen.values())


def parse_json_feed(
    body: bytes, final_url: str, *, source: str, tz: tzinfo, now: datetime
) -> Parsed:
    """JSON Feed 1.0/1.1 (feedparser 6 reads only XML)."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParseError(source, f"not a usable feed: invalid JSON: {exc}") from None
    if not isinstance(data, dict) or "jsonfeed.org" not in str(data.get("version", "")):
        raise ParseError(source, "not a usable feed: JSON without a jsonfeed.org version")
    items = []
    for entry in data.get("items") or []:
        if not isinstance(entry, dict):
            continue
        authors = entry.get("authors") or (
            [entry["author"]] if isinstance(entry.get("author"), dict) else []
        )
        items.append(
            Item(
                title=str(entry.get("title") or ""),
                link=str(entry.get("url") or entry.get("external_url") or "") or None,
                guid=str(entry.get("id") or "") or None,
                summary=str(entry.get("summary") or "") or None,
                content=str(entry.get("content_html") or "")
                or (
                    _text_as_html(entry.get("content_text")) if entry.get("content_text") else None
                ),
                author=next(
                    (str(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")),
                    None,
                ),
                published=parse_date(str(entry.get("date_published") or ""), tz, now),
                updated=parse_date(str(entry.get("date_modified") or ""), tz, now),
                tags=tuple(str(t) for t in entry.get("tags") or [] if t),
                enclosures=tuple(
                    Enclosure(
                        str(a["url"]),
                        str(a.get("mime_type") or "application/octet-stream"),
                        str(a.get("title") or ""),
                        int(a.get("size_in_bytes") or 0),
                    )
                    for a in entry.get("attachments") or []
                    if isinstance(a, dict) and a.get("url")
                ),
                base_url=str(data.get("home_page_url") or final_url),
            )
        )
    return Parsed(items=tuple(items), title=str(data.get("title") or ""))


def _text_as_html(text: object) -> str:
    from html import escape

    return "".join(f"<p>{escape(p)}</p>" for p in str(text).split("\n\n") if p.strip())
