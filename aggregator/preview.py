"""`aggregator preview`: fetch a page once, store nothing, show what the selectors extract."""

from __future__ import annotations

import argparse
from datetime import datetime
from zoneinfo import ZoneInfo

from .config import Config, Selectors, SourceConfig
from .errors import ConfigError, SourceError, UsageError
from .fetch import HostLimiter, decode_html, fetch, make_session
from .normalize import clean_text, truncate
from .parse.feed import parse_feed
from .parse.html import discover_feed, looks_like_feed, parse_list


def _source(args: argparse.Namespace, config: Config) -> SourceConfig:
    target: str = args.target
    named = config.source(target)
    if named is None and not target.startswith(("http://", "https://")):
        raise UsageError(f"{target!r} is neither a configured source name nor an http(s) URL")
    selectors = named.selectors if named else None
    given = {k: getattr(args, k.replace("-", "_")) for k in ("item", "title", "link", "date", "summary",
                                                           "content", "next-page")}
    if any(given.values()):
        base = selectors.model_dump() if selectors else {}
        base.update({k.replace("-", "_"): v for k, v in given.items() if v})
        try:
            selectors = Selectors.model_validate(base)
        except ValueError as exc:
            raise ConfigError(f"selectors: {exc}") from None
    kind = args.type or (named.type if named else ("html" if selectors else "auto"))
    if kind == "html" and selectors is None:
        raise UsageError("an html preview needs --item, --title and --link selectors")
    base_source = named.model_dump() if named else {"name": "preview", "url": target}
    base_source.update(type=kind, selectors=selectors.model_dump() if selectors else None)
    return SourceConfig.model_validate(base_source)


def preview(args: argparse.Namespace, config: Config, now: datetime) -> int:
    source = _source(args, config)
    tz = ZoneInfo(source.timezone or config.poll.timezone)
    session = make_session(config.poll)
    limiter = HostLimiter(config.poll.per_host)
    try:
        fetched = fetch(session, source.url, source=source.name, poll=config.poll, headers=source.headers,
                        limiter=limiter)
        notes = [f"fetched {fetched.final_url}: HTTP {fetched.status}, {len(fetched.body)} bytes"]
        kind = source.type
        if kind == "auto":
            if looks_like_feed(fetched.body, fetched.headers.get("content-type")):
                kind = "feed"
            else:
                text, _ = decode_html(fetched.body, fetched.headers.get("content-type"))
                feed_url = discover_feed(text, fetched.final_url)
                if not feed_url:
                    print("\n".join(notes))
                    print("this page has no feed: give selectors (--item, --title, --link, --date)")
                    return 2
                notes.append(f"page links to the feed {feed_url}; using it")
                fetched = fetch(session, feed_url, source=source.name, poll=config.poll, limiter=limiter)
                kind = "feed"
        if kind == "feed":
            parsed = parse_feed(fetched.body, fetched.headers, fetched.final_url, source=source.name,
                                tz=tz, now=now)
        else:
            text, charset = decode_html(fetched.body, fetched.headers.get("content-type"))
            notes.append(f"encoding: {charset}")
            parsed = parse_list(text, fetched.final_url, source, tz, now)
    except SourceError as exc:
        print(f"error: {exc.reason}")
        return 1
    finally:
        session.close()
    _print(parsed.items[: args.limit], len(parsed.items), notes, parsed.warnings, parsed.next_page)
    return 0


def _print(items: tuple, total: int, notes: list[str], warnings: tuple[str, ...], next_page: str | None) -> None:
    for note in notes:
        print(note)
    print(f"{total} items" + (f"; next page: {next_page}" if next_page else ""))
    for number, item in enumerate(items, 1):
        date = item.published.isoformat() if item.published else "(no date)"
        print(f"{number:>3}. {clean_text(item.title)}")
        print(f"     {item.link or '(no link)'}")
        print(f"     {date}")
        summary = clean_text(item.summary or item.content)
        if summary:
            print(f"     {truncate(summary, 80)}")
    missing_date = sum(1 for i in items if i.published is None)
    if missing_date:
        print(f"warning: {missing_date} item(s) without a parsed date")
    for warning in warnings:
        print(f"warning: {warning}")
