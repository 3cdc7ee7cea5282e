"""Feed bytes -> Items, with feedparser (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, RDF, JSON Feed).

feedparser gets bytes and headers, never a URL, and runs with its own sanitizer and URI
resolver off: normalize sanitizes once with nh3, which is several times faster.
"""

from __future__ import annotations

import calendar
import copy
import functools
import io
import json
import re
import types
import xml.sax.expatreader
import xml.sax.xmlreader
from datetime import UTC, datetime, tzinfo
from typing import Any

import feedparser
import feedparser.api
import feedparser.mixin
import feedparser.urls
import feedparser.util

from ..errors import ParseError
from ..model import Enclosure, Item, Parsed
from .dates import looks_chinese_or_ambiguous, parse_date


class _BufferedExpatReader(xml.sax.expatreader.ExpatParser):
    """expat with `buffer_text`: one `characters` call per run of text instead of one per
    line and entity (`&lt;p&gt;` is three), each a trip through feedparser's handlers. What
    feedparser sees is the same text, joined. About a tenth of its time on HTML bodies."""

    def reset(self) -> None:
        super().reset()
        expat: Any = self._parser  # type: ignore[attr-defined]  # typeshed leaves it out
        expat.buffer_text = True
        expat.buffer_size = 1 << 16


def create_parser() -> xml.sax.xmlreader.XMLReader:
    """The `xml.sax` driver hook: feedparser asks `xml.sax.make_parser` for its parser by
    module name (`PREFERRED_XML_PARSERS`), so naming this module gives it the reader above.
    feedparser's own first choice, drv_libxml2, is not installed: each parse tried and
    failed to import it."""
    return _BufferedExpatReader()


def _copy_feedparser_dict(self: Any, memo: dict[int, Any]) -> Any:
    """`copy.deepcopy` of a FeedParserDict, as the generic path does it (new instance,
    attributes, then each item through `__setitem__`) without `__reduce_ex__`: feedparser
    deep-copies its content parameters for every title, summary and content it stores."""
    copied = type(self)()
    memo[id(self)] = copied
    if self.__dict__:
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
    for key, value in dict.items(self):
        copied[copy.deepcopy(key, memo)] = copy.deepcopy(value, memo)
    return copied


# FeedParserDict maps some keys (`channel` -> `feed`, `description` -> `summary` ...) and
# computes a few (`category`, `enclosures`, `license`, the `updated` fallbacks); every other
# key is a plain dict lookup, through two Python calls and often a KeyError, some 3,000
# times a feed (its handlers look up their content parameters with `get`). These do plain
# keys in C and hand the rest to feedparser's own methods, kept here.
_COMPUTED_KEYS = frozenset({"category", "enclosures", "license", "updated", "updated_parsed"})
# Every identifier in feedparser 6.0's __getitem__; a version that names another key may
# compute it too, and keeps its own lookups.
_GETITEM_NAMES = _COMPUTED_KEYS | {"enclosure", "href", "links", "published", "published_parsed"}
_GETITEM_NAMES |= {"rel", "tags", "term"}
_SLOW_LOOKUPS: dict[str, Any] = {}


def _names_in(code: types.CodeType) -> set[str]:
    names = {c for c in code.co_consts if isinstance(c, str) and c.isidentifier()}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


def _fast_plain_keys(cls: Any) -> None:
    if _names_in(cls.__getitem__.__code__) != _GETITEM_NAMES:
        return
    slow = _SLOW_LOOKUPS
    slow.update(get=cls.get, __contains__=cls.__contains__, __getitem__=cls.__getitem__)
    special = _COMPUTED_KEYS | frozenset(cls.keymap)

    def get(self: Any, key: Any, default: Any = None) -> Any:
        if key in special:
            return slow["get"](self, key, default)
        return dict.get(self, key, default)

    def contains(self: Any, key: Any) -> bool:
        if key in special:
            return bool(slow["__contains__"](self, key))
        return dict.__contains__(self, key)

    def getitem(self: Any, key: Any) -> Any:
        if key in special:
            return slow["__getitem__"](self, key)
        return dict.__getitem__(self, key)

    cls.get, cls.__contains__, cls.__getitem__ = get, contains, getitem
    cls.has_key = contains


def _speed_up_feedparser() -> None:
    """Changes that leave feedparser's results as they were (a corpus test checks): the
    reader, the deepcopy and the lookups above, and a cache for its base URI resolution (at
    every start tag it resolves the inherited base against itself, `make_safe_absolute_uri(
    base, base)` -> `urljoin`: a fifth of its time on a typical feed; the function is pure).
    Each only where feedparser is still built the way it relies on; else nothing changes."""
    mixin: Any = feedparser.mixin
    urls: Any = feedparser.urls
    if getattr(mixin, "make_safe_absolute_uri", None) is getattr(urls, "make_safe_absolute_uri", 0):
        mixin.make_safe_absolute_uri = functools.lru_cache(maxsize=256)(urls.make_safe_absolute_uri)
    api: Any = feedparser.api
    if getattr(api, "PREFERRED_XML_PARSERS", None) == ["drv_libxml2"]:
        api.PREFERRED_XML_PARSERS = [__name__]
    parser_dict: Any = feedparser.util.FeedParserDict
    if issubclass(parser_dict, dict) and not hasattr(parser_dict, "__deepcopy__"):
        parser_dict.__deepcopy__ = _copy_feedparser_dict
        _fast_plain_keys(parser_dict)


_speed_up_feedparser()

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
