"""`aggregator preview`: fetch a page once, store nothing, show what the selectors extract.

    aggregator preview URL_OR_NAME [--type html --item CSS --title CSS --link CSS --date CSS]

Prints how the page was decoded, then a table (date, title, absolute link, summary start) and
the warnings a poll would record (items without a link or date, a bot challenge, ...).
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from .config import Config, Selectors, SourceConfig
from .errors import SourceError, UsageError
from .fetch import HostLimiter, fetch, make_session
from .fetch.charset import charset_decision
from .model import Item, Parsed
from .normalize import clean_text, normalize
from .parse.feed import parse_feed
from .parse.html import discover_feed, looks_like_feed, parse_list

SELECTOR_FLAGS = ("item", "title", "link", "date", "summary", "content", "next-page")
TITLE_COLUMNS = 70
SUMMARY_COLUMNS = 30


def _source(args: argparse.Namespace, config: Config) -> SourceConfig:
    """The configured source, or an ad-hoc one for a URL, with the command line's selectors."""
    target: str = args.target
    named = config.source(target)
    if named is None and not target.startswith(("http://", "https://")):
        raise UsageError(f"{target!r} is neither a configured source name nor an http(s) URL")
    given = {
        flag.replace("-", "_"): value
        for flag in SELECTOR_FLAGS
        if (value := getattr(args, flag.replace("-", "_"), None))
    }
    kind = args.type or ("html" if given else named.type if named else "auto")
    selectors = named.selectors if named else None
    if given or (kind == "html" and selectors is None):
        merged = {**(selectors.model_dump() if selectors else {}), **given}
        try:
            selectors = Selectors.model_validate(merged)
        except ValidationError as exc:
            raise UsageError(_selector_errors(exc)) from None
    base: dict[str, Any] = named.model_dump() if named else {"name": "preview", "url": target}
    base.update(type=kind, selectors=selectors.model_dump() if selectors else None)
    return SourceConfig.model_validate(base)


def _selector_errors(exc: ValidationError) -> str:
    missing = [f"--{e['loc'][0]}" for e in exc.errors() if e["type"] == "missing"]
    problems = [
        f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
        if e["type"] != "missing"
    ]
    if missing:
        needed = f"an html preview needs --item, --title and --link (missing {', '.join(missing)})"
        problems.insert(0, needed)
    return "; ".join(problems)


def preview(args: argparse.Namespace, config: Config, now: datetime) -> int:
    """Exit 0 when items were found, 1 when none (or the fetch failed), 2 for usage errors."""
    source = _source(args, config)
    tz = ZoneInfo(source.timezone or config.poll.timezone)
    session = make_session(config.poll)
    limiter = HostLimiter(config.poll.per_host)
    notes: list[str] = []
    warnings: list[str] = []
    try:
        fetched = fetch(
            session,
            source.url,
            source=source.name,
            poll=config.poll,
            headers=source.headers,
            limiter=limiter,
        )
        notes.append(
            f"fetched {fetched.final_url}: HTTP {fetched.status}, {len(fetched.body)} bytes"
        )
        kind = source.type
        content_type = fetched.headers.get("content-type")
        if kind == "auto":
            if looks_like_feed(fetched.body, content_type):
                kind = "feed"
            else:
                charset, _ = charset_decision(fetched.body, content_type)
                feed_url = discover_feed(
                    fetched.body.decode(charset, errors="replace"), fetched.final_url
                )
                if not feed_url:
                    print("\n".join(notes))
                    print("this page has no feed: give selectors (--item, --title, --link, --date)")
                    return 2
                notes.append(f"the page links to the feed {feed_url}; using it")
                fetched = fetch(
                    session,
                    feed_url,
                    source=source.name,
                    poll=config.poll,
                    headers=source.headers,
                    limiter=limiter,
                )
                kind = "feed"
        if kind == "feed":
            parsed = parse_feed(
                fetched.body, fetched.headers, fetched.final_url, source=source.name, tz=tz, now=now
            )
            undated = sum(i.published is None and i.updated is None for i in parsed.items)
            if undated:
                warnings.append(f"{undated} item(s) without a parsed date")
        else:
            charset, how = charset_decision(fetched.body, content_type)
            notes.append(f"encoding: {charset} ({how})")
            text = fetched.body.decode(charset, errors="replace")
            if "\ufffd" in text:
                warnings.append(f"{text.count(chr(0xFFFD))} undecodable byte sequence(s) replaced")
            parsed = parse_list(text, fetched.final_url, source, tz, now)
            selectors = source.selectors
            if selectors is not None and not selectors.date:
                warnings.append("no date selector: a poll dates items when it first sees them")
            if selectors is not None and (selectors.content or source.extract == "auto"):
                notes.append("article pages are fetched by `poll` (content selector), not here")
    except SourceError as exc:
        print("\n".join(notes))
        blocked = exc.http_status == 412 and "challenge" not in exc.reason
        hint = " (a bot challenge: the site blocks scripted clients)" if blocked else ""
        print(f"error: {exc.reason}{hint}")
        return 1
    finally:
        session.close()
    _print(parsed, source, config, tz, now, notes, [*parsed.warnings, *warnings], args.limit)
    return 0 if parsed.items else 1


def _width(text: str) -> int:
    """Display columns: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit(text: str, columns: int) -> str:
    """Cut to at most `columns` display columns, with an ellipsis when cut."""
    if _width(text) <= columns:
        return text
    out, used = [], 0
    for ch in text:
        used += _width(ch)
        if used > columns - 1:
            break
        out.append(ch)
    return "".join(out) + "…"


def _pad(text: str, columns: int) -> str:
    return text + " " * (columns - _width(text))


def _rows(
    items: Sequence[Item], source: SourceConfig, config: Config, tz: tzinfo, now: datetime
) -> tuple[list[tuple[str, str, str, str, str]], int]:
    """Table rows as a poll would store them (title cleanup, filters and rules applied)."""
    rows = []
    dropped = 0
    for number, item in enumerate(items, 1):
        article = normalize(item, source, config.rules, now)
        if article is not None:
            title = article.title
        else:  # dropped: still show the title as the poll would have cleaned it
            title = clean_text(item.title)
            if source.title_cleanup:
                title = re.sub(source.title_cleanup, "", title).strip()
        title = _fit(title, TITLE_COLUMNS)
        extra = [t for t in article.tags if t not in source.tags] if article else []
        if article is None:
            dropped += 1
            title += "  (dropped: include/exclude/rules)"
        elif extra:
            title += "  [" + ", ".join(extra) + "]"
        date = item.published or item.updated
        shown = date.astimezone(tz).isoformat(timespec="minutes") if date else "(no date)"
        summary = clean_text(item.summary or item.content)
        rows.append(
            (
                str(number),
                shown,
                title,
                item.link or "(no link)",
                _fit(summary, SUMMARY_COLUMNS) if summary else "-",
            )
        )
    return rows, dropped


def _print(
    parsed: Parsed,
    source: SourceConfig,
    config: Config,
    tz: tzinfo,
    now: datetime,
    notes: list[str],
    warnings: list[str],
    limit: int,
) -> None:
    for note in notes:
        print(note)
    total = len(parsed.items)
    shown = parsed.items[: max(limit, 0)]
    head = f"{total} items" + (f" (showing {len(shown)})" if len(shown) < total else "")
    print(head + (f"; next page: {parsed.next_page}" if parsed.next_page else ""))
    rows, dropped = _rows(shown, source, config, tz, now)
    if rows:
        table = [("#", "DATE", "TITLE", "LINK", "SUMMARY"), *rows]
        widths = [max(_width(row[i]) for row in table) for i in range(4)]
        for row in table:
            padded = (_pad(cell, width) for cell, width in zip(row[1:4], widths[1:], strict=True))
            cells = [row[0].rjust(widths[0]), *padded]
            print("  ".join([*cells, row[4]]).rstrip())
    if dropped:
        warnings.append(f"{dropped} item(s) shown would be dropped by include/exclude/rules")
    if not total:
        warnings.append("selector matched 0 items" if source.type == "html" else "no items")
    for warning in dict.fromkeys(warnings):
        print(f"warning: {warning}")
