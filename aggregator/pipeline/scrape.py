"""Sources without feeds: an `auto` page that links its feed, and `html` list pages read with
selectors, then the new articles' own pages. Fetching goes through the poller's `get` (its
sessions, host limiter and SSRF guard); this module only decides what to fetch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from ..config import Config, SourceConfig
from ..errors import FetchError, ParseError, SourceError
from ..fetch.charset import decode_html
from ..model import Fetched, Item
from ..store import Store
from .jobs import Outcome

# lxml and nh3 come with the parse and normalize stages: imported where they are first used.
if TYPE_CHECKING:
    from typing import Protocol

    from ..parse.article import ArticlePage

    class Get(Protocol):
        """Fetches a URL for a source: `Poller._get`. For the type checker only: a Protocol
        class costs import time, and annotations here are never evaluated."""

        def __call__(
            self,
            source: SourceConfig,
            url: str,
            etag: str | None = None,
            modified: str | None = None,
        ) -> Fetched: ...


log = logging.getLogger("aggregator.poll")


def auto_source(outcome: Outcome, get: Get, etag: str | None, modified: str | None) -> None:
    from ..parse.html import discover_feed, looks_like_feed

    source = outcome.source
    fetched = get(source, source.url, etag, modified)
    outcome.fetched = fetched
    if fetched.not_modified or looks_like_feed(fetched.body, fetched.headers.get("content-type")):
        return
    text, _ = decode_html(fetched.body, fetched.headers.get("content-type"))
    feed_url = discover_feed(text, fetched.final_url)
    if not feed_url:
        raise ParseError(source.name, "this page has no feed: set type: html with selectors")
    log.info("source %s: using the feed %s found on %s", source.name, feed_url, source.url)
    feed = get(source, feed_url)
    # Validators belong to the page we asked for, so the next poll can still get a 304.
    outcome.fetched = replace(feed, etag=fetched.etag, last_modified=fetched.last_modified)


def html_source(
    outcome: Outcome,
    etag: str | None,
    modified: str | None,
    now_fn: Callable[[], datetime],
    *,
    get: Get,
    config: Config,
    store: Store,
    stopping: threading.Event,
) -> None:
    """List page(s) -> items (conditional GET on the first page: unchanged costs nothing),
    then the new articles' pages when the source has a content selector or extract: auto."""
    from ..normalize import normalize
    from ..parse.html import parse_list

    source = outcome.source
    tz = ZoneInfo(source.timezone or config.poll.timezone)

    def get_list_page(url: str, etag: str | None = None, modified: str | None = None) -> Fetched:
        try:
            return get(source, url, etag, modified)
        except FetchError as exc:
            if exc.http_status == 412:  # Ruishu-style WAFs answer scrapers with 412 + JS
                raise FetchError(
                    source.name,
                    "HTTP 412: the site answered with a bot "
                    "challenge (anti-scraping check), not the list",
                    412,
                ) from None
            raise

    first = get_list_page(source.url, etag, modified)
    outcome.fetched = first
    if first.not_modified:
        return
    items: dict[str, Item] = {}  # by link: an item pushed onto the next page counts once
    page, seen = first, {source.url, first.final_url}
    for number in range(1, source.max_pages + 1):
        text, _charset = decode_html(page.body, page.headers.get("content-type"))
        try:
            parsed = parse_list(text, page.final_url, source, tz, now_fn())
        except ParseError as exc:
            if number == 1:
                raise
            outcome.warnings.append(f"list page {number} ({page.final_url}): {exc.reason}")
            break
        outcome.warnings.extend(parsed.warnings)
        for item in parsed.items:
            items.setdefault(item.link or "", item)
        next_url = parsed.next_page
        if number >= source.max_pages or not parsed.items or not next_url or next_url in seen:
            break
        seen.add(next_url)
        try:
            page = get_list_page(next_url)
        except FetchError as exc:
            outcome.warnings.append(f"list page {number + 1} ({next_url}): {exc.reason}")
            break
    if not items:
        raise ParseError(source.name, "selector matched 0 items (has the page been redesigned?)")
    outcome.parsed_count = len(items)
    found = with_article_pages(
        source,
        list(items.values()),
        outcome.warnings,
        list_url=first.final_url,
        now=now_fn(),
        get=get,
        config=config,
        store=store,
        stopping=stopping,
    )
    if stopping.is_set():  # shutting down mid-way: store nothing rather than half
        outcome.skipped = True
        return
    now = now_fn()
    normalized = (normalize(i, source, config.rules, now) for i in found)
    outcome.articles = [a for a in normalized if a]


def with_article_pages(
    source: SourceConfig,
    items: list[Item],
    warnings: list[str],
    list_url: str | None = None,
    now: datetime | None = None,
    *,
    get: Get,
    config: Config,
    store: Store,
    stopping: threading.Event,
) -> list[Item]:
    """Fetch each NEW article page once (never a known one), at most per_host at a time,
    with the poll's session, timeouts and body cap. Known articles keep their stored body
    (the list alone would blank it). Links to another host than the list page's are only
    followed with follow_offsite. A failing page keeps the list fields and is a warning."""
    from ..normalize import canonical_url
    from ..parse.article import extract_article, repair_title, restore_title

    selectors = source.selectors
    if not selectors or not (selectors.content or source.extract == "auto"):
        return items
    now = now or datetime.now().astimezone()
    tz = ZoneInfo(source.timezone or config.poll.timezone)
    homes = {(urlsplit(u).hostname or "").lower() for u in (source.url, list_url) if u}
    links = {canonical_url(i.link): i.link for i in items if i.link}
    known = store.known_links(source.name, list(links))
    todo: dict[str, str] = {}
    offsite = 0
    for url, link in links.items():
        if url in known:
            continue
        if not source.follow_offsite and (urlsplit(link).hostname or "").lower() not in homes:
            offsite += 1
            continue
        todo[url] = link
    if offsite:
        log.info(
            "source %s: %d offsite article link(s) not fetched (follow_offsite is off)",
            source.name,
            offsite,
        )
    lock = threading.Lock()
    failed: dict[str, int] = {}
    missed: list[str] = []

    def one(link: str) -> tuple[ArticlePage, str] | None:
        if stopping.is_set():
            return None
        try:
            page = get(source, link)
            text, _ = decode_html(page.body, page.headers.get("content-type"))
            extracted = extract_article(text, page.final_url, source, tz, now)
        except SourceError as exc:
            reason = exc.reason
        except Exception as exc:  # one odd page must not fail the source
            log.exception("source %s: article page %s", source.name, link)
            reason = f"{type(exc).__name__}: {exc}"
        else:
            if extracted.content is None:
                with lock:
                    missed.append(link)
            return extracted, page.final_url
        log.warning("source %s: article page %s: %s", source.name, link, reason)
        with lock:
            failed[reason] = failed.get(reason, 0) + 1
        return None

    results: dict[str, tuple[ArticlePage, str]] = {}
    if todo:
        workers = max(1, min(config.poll.per_host, len(todo)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="article") as pages:
            for url, result in zip(todo, pages.map(one, todo.values()), strict=True):
                if result is not None:
                    results[url] = result
    if missed:
        what = "content selector matched" if selectors.content else "extract: auto found"
        warnings.append(f"{what} nothing on {len(missed)} article page(s), e.g. {missed[0]}")
    if failed:
        reasons = ", ".join(f"{reason} ×{count}" for reason, count in failed.items())
        warnings.append(f"{sum(failed.values())} article page(s) could not be fetched ({reasons})")

    stored = store.articles_by_urls(source.name, [u for u in links if u in known])

    def stored_body(item: Item, url: str) -> Item:
        """A known article's body, title and attachments as stored, so re-reading the list
        (which has none of them) is not mistaken for a change that blanks them."""
        article = stored.get(url)
        if article is None or not article.content:
            return item
        return replace(
            item,
            title=restore_title(item.title, article.title),
            content=article.content,
            enclosures=article.enclosures,
        )

    out = []
    for item in items:
        url = canonical_url(item.link) if item.link else ""
        if url in results:
            extracted, final_url = results[url]
            item = replace(
                item,
                title=repair_title(item.title, extracted.title),
                content=extracted.content or item.content,
                base_url=final_url if extracted.content else item.base_url,
                enclosures=item.enclosures + extracted.attachments,
                published=item.published or extracted.published,
            )
        elif url in known and item.content is None:
            item = stored_body(item, url)
        out.append(item)
    return out
