"""The poll, end to end. The whole flow, kept true:

    sources = due(config, store, now)            # all enabled ones for a manual poll
    fetched = fetch(sources)                      # threads; conditional GET; per-host limit
    items   = parse(fetched)                      # worker processes: feedparser / selectors
    arts    = normalize(items)                    # URLs, titles, nh3 sanitize, hashes, rules
    with store.transaction():                     # one per source: all or nothing
        upsert(arts); assign stories (dedupe); record source health
    build_outputs()                               # Atom + page, written atomically

One broken source yields a report with status `error`; the others go on.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from . import metrics
from .config import Config, Rule, SourceConfig
from .errors import FetchError, ParseError, SourceError
from .fetch import HostLimiter, decode_html, fetch, make_session, max_age_minutes
from .model import Article, Fetched, Item, PollReport
from .store import NotModified, Store, Tx

# The parsing, dedupe and output stages (numpy, lxml, feedparser, nh3, Jinja2, feedgen) are
# imported where they are first used: a poll in which every source answers 304 never needs
# them, and for such a poll interpreter start-up and imports are most of the wall time.
if TYPE_CHECKING:
    from . import dedupe
    from .parse.html import ArticlePage

log = logging.getLogger("aggregator.poll")

#: Below this many fetched bodies the process pool costs more than it saves.
POOL_THRESHOLD = 6


@dataclass
class Outcome:
    """What the fetch-and-parse half produced for one source, before storing."""

    source: SourceConfig
    fetched: Fetched | None = None
    articles: list[Article] = field(default_factory=list)
    parsed_count: int | None = None
    ttl_minutes: int | None = None
    warnings: list[str] = field(default_factory=list)
    error: SourceError | None = None
    skipped: bool = False
    size: int = 0  # body bytes, kept after the body itself is handed to a parser
    prepared: list[dedupe.Prepared] | None = None  # dedupe fingerprints made by the parser
    state: Any = None  # the source's stored row as the poll started
    started: float = field(default_factory=time.monotonic)


ParseResult: TypeAlias = "tuple[list[Article], int, int | None, list[dedupe.Prepared] | None]"


def parse_and_normalize(
    source: SourceConfig,
    rules: Sequence[Rule],
    body: bytes,
    headers: dict[str, str],
    final_url: str,
    zone: str,
    now: datetime,
    boilerplate: frozenset[int] | None = None,
) -> ParseResult:
    """Runs in a worker process: bytes in, articles out (picklable both ways). With
    `boilerplate` (dedupe on), the dedupe fingerprints are made here too, off the main thread."""
    from . import dedupe
    from .normalize import normalize
    from .parse.feed import parse_feed

    parsed = parse_feed(body, headers, final_url, source=source.name, tz=ZoneInfo(zone), now=now)
    articles = [a for a in (normalize(i, source, rules, now) for i in parsed.items) if a]
    prepared = None if boilerplate is None else [dedupe.prepare(a, boilerplate) for a in articles]
    return articles, len(parsed.items), parsed.ttl_minutes, prepared


def next_poll_at(
    now: datetime,
    interval: timedelta,
    failures: int,
    *,
    max_backoff: timedelta,
    retry_after: float | None = None,
    ttl_minutes: int | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """Success: the interval, raised to the feed's ttl (capped). Failure: interval x 2^n with
    +-10% jitter, capped at max_backoff, never sooner than Retry-After."""
    if failures <= 0:
        wait = interval
        if ttl_minutes:
            wait = max(wait, min(timedelta(minutes=ttl_minutes), max_backoff))
        return now + wait
    jitter = 1 + ((rng or random).random() - 0.5) * 0.2
    wait = min(interval * (2 ** min(failures, 30)) * jitter, max_backoff)
    if retry_after:
        wait = max(wait, timedelta(seconds=min(retry_after, max_backoff.total_seconds())))
    return now + wait


class Poller:
    """Long-lived poll state: HTTP session, host limiter, worker pool, dedupe index."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.session = make_session(config.poll)
        self.guarded = make_session(config.poll, guarded=True)  # for links we follow on our own
        self.limiter = HostLimiter(config.poll.per_host)
        self._index: dedupe.Index | None = None
        self._index_lock = threading.Lock()
        self._pruned = datetime.now().astimezone()
        self._pool: Executor | None = None
        self._write_lock = threading.RLock()
        self.stopping = threading.Event()  # set on shutdown: sources not yet fetched are skipped

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.session.close()
        self.guarded.close()

    # --- the flow ------------------------------------------------------------------------------

    def poll(
        self, sources: Sequence[SourceConfig], now_fn: Callable[[], datetime]
    ) -> list[PollReport]:
        """Poll these sources once; returns one report per source in config order. Each source
        is stored as soon as it is parsed, and at most `window` sources are in flight, so
        memory stays flat however many sources there are."""
        if not sources:
            return []
        with self.store.transaction() as tx:
            tx.sync_sources([(s.name, s.url) for s in self.config.sources])
        states = self.store.source_states()
        reports: dict[str, PollReport] = {}
        workers = min(self.config.poll.concurrency, len(sources))
        use_pool = len(sources) >= POOL_THRESHOLD
        window = threading.BoundedSemaphore(max(2 * workers, 4 * (os.cpu_count() or 1)))

        def fetch_one(source: SourceConfig) -> Outcome:
            window.acquire()
            return self._fetch_source(source, states.get(source.name), now_fn)

        # Completed futures arrive on one queue: `concurrent.futures.wait` would re-register
        # a waiter on every pending future at each call, quadratic in the number of sources.
        finished: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        parsing: dict[Future[Any], Outcome] = {}
        quiet: list[Outcome] = []
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as threads:
            for source in sources:
                threads.submit(fetch_one, source).add_done_callback(finished.put)
            outstanding = len(sources)
            while outstanding:
                future = finished.get()
                outstanding -= 1
                if future in parsing:
                    outcome = parsing.pop(future)
                    self._take_parsed(outcome, future)
                else:
                    outcome = future.result()
                    if self._needs_parse(outcome):
                        args = self._parse_args(outcome, now_fn())
                        if use_pool:
                            parsed = self._parse_pool().submit(parse_and_normalize, *args)
                            parsing[parsed] = outcome
                            outstanding += 1
                            parsed.add_done_callback(finished.put)
                            continue
                        self._parse_inline(outcome, args)
                try:
                    name = outcome.source.name
                    if outcome.skipped:
                        reports[name] = PollReport(name, "skipped")
                    elif _quiet(outcome):
                        quiet.append(outcome)
                    else:
                        reports[name] = self._save(outcome, now_fn())
                finally:
                    window.release()
                if len(quiet) >= 500 or (quiet and not outstanding):
                    for report in self._save_quiet(quiet, now_fn()):
                        reports[report.source] = report
                    quiet = []
        return [reports[s.name] for s in sources]

    @staticmethod
    def _needs_parse(outcome: Outcome) -> bool:
        fetched = outcome.fetched
        return (
            fetched is not None
            and not fetched.not_modified
            and outcome.error is None
            and not outcome.skipped
            and outcome.source.type in ("feed", "auto")
            and not outcome.articles
        )

    def _take_parsed(self, outcome: Outcome, future: Future[Any]) -> None:
        try:
            outcome.articles, outcome.parsed_count, outcome.ttl_minutes, outcome.prepared = (
                future.result()
            )
        except SourceError as exc:
            outcome.error = exc
        except Exception as exc:  # a parser crash is this source's problem only
            outcome.error = ParseError(outcome.source.name, f"{type(exc).__name__}: {exc}")

    def _parse_args(self, outcome: Outcome, now: datetime) -> tuple[Any, ...]:
        fetched = outcome.fetched
        assert fetched is not None
        zone = outcome.source.timezone or self.config.poll.timezone
        outcome.size = len(fetched.body)
        outcome.fetched = replace(fetched, body=b"")  # the worker has it now; don't hold it twice
        boilerplate = None
        if self.config.dedupe.enabled:
            index = self._index  # not loaded yet: nothing learned yet in this process either
            boilerplate = (
                index.boilerplate(outcome.source.name) if index is not None else frozenset()
            )
        return (
            outcome.source,
            self.config.rules,
            fetched.body,
            fetched.headers,
            fetched.final_url,
            zone,
            now,
            boilerplate,
        )

    def _parse_inline(self, outcome: Outcome, args: tuple[Any, ...]) -> None:
        try:
            outcome.articles, outcome.parsed_count, outcome.ttl_minutes, outcome.prepared = (
                parse_and_normalize(*args)
            )
        except SourceError as exc:
            outcome.error = exc
        except Exception as exc:
            outcome.error = ParseError(outcome.source.name, f"{type(exc).__name__}: {exc}")

    def _parse_pool(self) -> Executor:
        if self._pool is None:
            # The workers are forked at the first job: with the parse stages imported here
            # first they start ready, instead of each importing them again.
            from . import dedupe, normalize  # noqa: F401
            from .parse import feed  # noqa: F401

            workers = self.config.poll.workers or os.cpu_count() or 1
            self._pool = ProcessPoolExecutor(max_workers=workers)
        return self._pool

    def _fetch_source(
        self, source: SourceConfig, state: Any, now_fn: Callable[[], datetime]
    ) -> Outcome:
        outcome = Outcome(source, state=state)
        if self.stopping.is_set():
            outcome.skipped = True
            return outcome
        try:
            etag = state.etag if state is not None else None
            modified = state.last_modified if state is not None else None
            if source.type == "html":
                self._html_source(outcome, etag, modified, now_fn)
            elif source.type == "auto":
                self._auto_source(outcome, etag, modified, now_fn)
            else:
                outcome.fetched = self._get(source, source.url, etag, modified)
        except SourceError as exc:
            outcome.error = exc
        except Exception as exc:  # never let one source take the poll down
            log.exception("unexpected failure polling %s", source.name)
            outcome.error = SourceError(source.name, f"{type(exc).__name__}: {exc}")
        return outcome

    def _get(
        self, source: SourceConfig, url: str, etag: str | None = None, modified: str | None = None
    ) -> Fetched:
        """The source's own host is trusted (it may be private on purpose); any other host the
        aggregator was led to goes through the SSRF guard."""
        own = (urlsplit(url).hostname or "").lower() == (
            urlsplit(source.url).hostname or ""
        ).lower()
        return fetch(
            self.session if own else self.guarded,
            url,
            source=source.name,
            poll=self.config.poll,
            etag=etag,
            last_modified=modified,
            headers=source.headers,
            limiter=self.limiter,
        )

    # --- sources without feeds -----------------------------------------------------------------

    def _auto_source(
        self,
        outcome: Outcome,
        etag: str | None,
        modified: str | None,
        now_fn: Callable[[], datetime],
    ) -> None:
        from .parse.html import discover_feed, looks_like_feed

        source = outcome.source
        fetched = self._get(source, source.url, etag, modified)
        outcome.fetched = fetched
        if fetched.not_modified or looks_like_feed(
            fetched.body, fetched.headers.get("content-type")
        ):
            return
        text, _ = decode_html(fetched.body, fetched.headers.get("content-type"))
        feed_url = discover_feed(text, fetched.final_url)
        if not feed_url:
            raise ParseError(source.name, "this page has no feed: set type: html with selectors")
        log.info("source %s: using the feed %s found on %s", source.name, feed_url, source.url)
        feed = self._get(source, feed_url)
        # Validators belong to the page we asked for, so the next poll can still get a 304.
        outcome.fetched = replace(feed, etag=fetched.etag, last_modified=fetched.last_modified)

    def _html_source(
        self,
        outcome: Outcome,
        etag: str | None,
        modified: str | None,
        now_fn: Callable[[], datetime],
    ) -> None:
        """List page(s) -> items (conditional GET on the first page: unchanged costs nothing),
        then the new articles' pages when the source has a content selector or extract: auto."""
        from .normalize import normalize
        from .parse.html import parse_list

        source = outcome.source
        tz = ZoneInfo(source.timezone or self.config.poll.timezone)

        def get_list_page(
            url: str, etag: str | None = None, modified: str | None = None
        ) -> Fetched:
            try:
                return self._get(source, url, etag, modified)
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
            raise ParseError(
                source.name, "selector matched 0 items (has the page been redesigned?)"
            )
        outcome.parsed_count = len(items)
        found = self._with_article_pages(
            source, list(items.values()), outcome.warnings, list_url=first.final_url, now=now_fn()
        )
        if self.stopping.is_set():  # shutting down mid-way: store nothing rather than half
            outcome.skipped = True
            return
        now = now_fn()
        normalized = (normalize(i, source, self.config.rules, now) for i in found)
        outcome.articles = [a for a in normalized if a]

    def _with_article_pages(
        self,
        source: SourceConfig,
        items: list[Item],
        warnings: list[str],
        list_url: str | None = None,
        now: datetime | None = None,
    ) -> list[Item]:
        """Fetch each NEW article page once (never a known one), at most per_host at a time,
        with the poll's session, timeouts and body cap. Known articles keep their stored body
        (the list alone would blank it). Links to another host than the list page's are only
        followed with follow_offsite. A failing page keeps the list fields and is a warning."""
        from .normalize import canonical_url
        from .parse.html import extract_article, repair_title, restore_title

        selectors = source.selectors
        if not selectors or not (selectors.content or source.extract == "auto"):
            return items
        now = now or datetime.now().astimezone()
        tz = ZoneInfo(source.timezone or self.config.poll.timezone)
        homes = {(urlsplit(u).hostname or "").lower() for u in (source.url, list_url) if u}
        links = {canonical_url(i.link): i.link for i in items if i.link}
        known = self.store.known_links(source.name, list(links))
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
            if self.stopping.is_set():
                return None
            try:
                page = self._get(source, link)
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
            workers = max(1, min(self.config.poll.per_host, len(todo)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="article") as pages:
                for url, result in zip(todo, pages.map(one, todo.values()), strict=True):
                    if result is not None:
                        results[url] = result
        if missed:
            what = "content selector matched" if selectors.content else "extract: auto found"
            warnings.append(f"{what} nothing on {len(missed)} article page(s), e.g. {missed[0]}")
        if failed:
            reasons = ", ".join(f"{reason} ×{count}" for reason, count in failed.items())
            warnings.append(
                f"{sum(failed.values())} article page(s) could not be fetched ({reasons})"
            )

        stored = self.store.articles_by_urls(source.name, [u for u in links if u in known])

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

    # --- store ---------------------------------------------------------------------------------

    def _save_quiet(self, outcomes: list[Outcome], now: datetime) -> list[PollReport]:
        """Not-modified sources change only their bookkeeping: one statement for all."""
        polls = [
            NotModified(
                o.source.name,
                next_poll_at(
                    now,
                    self.config.interval(o.source),
                    0,
                    max_backoff=self.config.poll.max_backoff,
                    ttl_minutes=_lower_bound(o),
                ),
                o.fetched.etag if o.fetched else None,
                o.fetched.last_modified if o.fetched else None,
                o.fetched.moved_to if o.fetched else None,
            )
            for o in outcomes
        ]
        with self._write_lock, self.store.transaction() as tx:
            tx.record_not_modified(polls, now)
        return [self._report(o, "not_modified", now) for o in outcomes]

    def _save(self, outcome: Outcome, now: datetime) -> PollReport:
        """One transaction per source. A failure rolls back everything of this source."""
        source = outcome.source
        fetched = outcome.fetched
        with self._write_lock:
            if outcome.error is not None:
                return self._save_error(outcome, now, time.monotonic() - outcome.started)
            warnings = self._breakage_warnings(outcome)
            try:
                with self.store.transaction() as tx:
                    new, updated = self._store_articles(
                        tx, source, outcome.articles, now, outcome.prepared
                    )
                    state = "not_modified" if fetched and fetched.not_modified else "ok"
                    tx.record_success(
                        source.name,
                        now=now,
                        etag=fetched.etag if fetched else None,
                        last_modified=fetched.last_modified if fetched else None,
                        status=state,
                        warnings=warnings,
                        moved_to=fetched.moved_to if fetched else None,
                        item_counts=_item_counts(outcome),
                        next_poll=next_poll_at(
                            now,
                            self.config.interval(source),
                            0,
                            max_backoff=self.config.poll.max_backoff,
                            ttl_minutes=_lower_bound(outcome),
                        ),
                    )
            except Exception:
                self._index = None  # it may hold entries of the rolled-back transaction
                raise
        return self._report(outcome, state, now, len(new), len(updated), warnings)

    def _report(
        self,
        outcome: Outcome,
        state: str,
        now: datetime,
        new: int = 0,
        updated: int = 0,
        warnings: Sequence[str] = (),
    ) -> PollReport:
        """Metrics, the log line and the report of one source polled without error."""
        name, fetched = outcome.source.name, outcome.fetched
        duration = time.monotonic() - outcome.started
        metrics.polls.labels(name, state).inc()
        metrics.new_articles.labels(name).inc(new)
        metrics.last_success.labels(name).set(now.timestamp())
        if fetched is not None:
            metrics.fetch_seconds.observe(fetched.elapsed)
            metrics.fetched_bytes.inc(outcome.size or len(fetched.body))
        log.info(
            "source=%s status=%s new=%d updated=%d items=%s duration=%.2fs",
            name,
            state,
            new,
            updated,
            outcome.parsed_count,
            duration,
        )
        return PollReport(
            name,
            state,
            new=new,
            updated=updated,
            warnings=tuple(warnings),
            duration=duration,
            moved_to=fetched.moved_to if fetched else None,
        )

    def _save_error(self, outcome: Outcome, now: datetime, duration: float) -> PollReport:
        source, error = outcome.source, outcome.error
        assert error is not None
        state = outcome.state
        failures = (state.consecutive_failures if state else 0) + 1
        retry_after = error.retry_after if isinstance(error, FetchError) else None
        with self.store.transaction() as tx:
            tx.record_error(
                source.name,
                now=now,
                error=error.reason,
                http_status=error.http_status,
                next_poll=next_poll_at(
                    now,
                    self.config.interval(source),
                    failures,
                    max_backoff=self.config.poll.max_backoff,
                    retry_after=retry_after,
                ),
            )
        metrics.polls.labels(source.name, "error").inc()
        log.warning(
            "source=%s status=error error=%r duration=%.2fs", source.name, error.reason, duration
        )
        return PollReport(
            source.name,
            "error",
            error=error.reason,
            http_status=error.http_status,
            duration=duration,
        )

    def _breakage_warnings(self, outcome: Outcome) -> list[str]:
        """HTML sources break silently: say when items drop by half or no date parses."""
        warnings = list(dict.fromkeys(outcome.warnings))
        if outcome.source.type != "html" or outcome.parsed_count is None:
            return warnings
        state = outcome.state
        previous = [c for c in (state.item_counts if state else None) or [] if c]
        if previous and outcome.parsed_count < (sum(previous) / len(previous)) / 2:
            warnings.append(
                f"item count fell to {outcome.parsed_count} from about "
                f"{round(sum(previous) / len(previous))}"
            )
        return warnings

    def _store_articles(
        self,
        tx: Tx,
        source: SourceConfig,
        articles: list[Article],
        now: datetime,
        prepared: list[dedupe.Prepared] | None = None,
    ) -> tuple[list[int], list[int]]:
        """New articles join a story (dedupe decides which) or start one; changed ones update."""
        from . import dedupe

        if not articles:
            return [], []
        ready = {id(a): p for a, p in zip(articles, prepared, strict=True)} if prepared else {}
        batch = tx.classify(source.name, articles)
        index = self._dedupe_index() if batch.new and self.config.dedupe.enabled else None
        rows = tx.new_rows(now)
        new_ids = []
        for article in batch.new:
            if index is None:
                new_ids.append(rows.article(article, rows.story(article)))
                continue
            made = ready.get(id(article))
            fp = index.fingerprint_prepared(article, made) if made else index.fingerprint(article)
            decision = index.match(article, fp)
            if decision.story_id is None:
                story_id = rows.story(article)
            else:
                story_id = decision.story_id
                rows.join(story_id, article)
            article_id = rows.article(article, story_id, fp.title_key, fp.doc_number, fp.signature)
            index.add(
                dedupe.Entry(
                    article_id,
                    story_id,
                    article.source,
                    article.url,
                    article.guid,
                    article.text_hash,
                    article.published,
                    article.title,
                    fp,
                )
            )
            new_ids.append(article_id)
        rows.flush()
        for row_id, article in batch.updated:
            tx.update_article(row_id, article, now)
        return new_ids, [row_id for row_id, _ in batch.updated]

    def _dedupe_index(self) -> dedupe.Index:
        """Built lazily from the stored fingerprints: a poll with nothing new never pays for it."""

        with self._index_lock:
            now = datetime.now().astimezone()
            if self._index is None:
                self._index = load_index(self.config, self.store)
                self._pruned = now
            elif now - self._pruned > timedelta(days=1):  # a long-running service stays bounded
                self._index.prune(now - 2 * self.config.dedupe.window - timedelta(days=1))
                self._pruned = now
            return self._index


def _quiet(outcome: Outcome) -> bool:
    fetched = outcome.fetched
    return bool(fetched and fetched.not_modified and outcome.error is None and not outcome.articles)


def _item_counts(outcome: Outcome) -> list[int]:
    """The source's last five item counts, this poll's last (breakage checks compare them)."""
    counts = list((outcome.state.item_counts if outcome.state else None) or [])
    if outcome.parsed_count is not None:
        counts = [*counts, outcome.parsed_count][-5:]
    return counts


def _lower_bound(outcome: Outcome) -> int | None:
    """A feed's <ttl> and the response's Cache-Control max-age, in minutes: the larger wins."""
    bounds = [outcome.ttl_minutes or 0]
    if outcome.fetched is not None:
        bounds.append(max_age_minutes(outcome.fetched.headers.get("cache-control")))
    return max(bounds) or None


def load_index(config: Config, store: Store) -> dedupe.Index:
    from . import dedupe

    index = dedupe.Index(config.dedupe)
    newest = datetime.now().astimezone()
    for row in store.signatures_since(newest - 2 * config.dedupe.window - timedelta(days=1)):
        fp = dedupe.Fingerprint.from_stored(row.title_key or "", row.doc_number, row.signature)
        index.add(
            dedupe.Entry(
                row.id,
                row.story_id,
                row.source,
                row.url,
                row.guid,
                row.text_hash,
                row.published,
                row.title,
                fp,
            )
        )
    return index


def due_sources(config: Config, store: Store, now: datetime) -> list[SourceConfig]:
    """Enabled sources whose next poll time has come (never polled: due at once)."""
    states = store.source_states()
    due = []
    for source in config.sources:
        if not source.enabled:
            continue
        state = states.get(source.name)
        if (
            state is None
            or state.url != source.url
            or state.last_poll is None
            or state.next_poll is None
            or state.next_poll <= now
        ):
            due.append(source)
    return due


def build_outputs(config: Config, store: Store, now: datetime) -> int:
    """Rebuild the Atom file and the page from the store; returns the number of entries."""
    from . import dedupe
    from .outputs import write_atomic
    from .outputs.atom import render_atom
    from .outputs.page import render_page

    priorities = {s.name: s.priority for s in config.sources}
    stories = [
        dedupe.arrange(s, priorities) for s in store.recent_stories(config.output.max_entries)
    ]
    urls = {s.name: s.url for s in config.sources}
    write_atomic(Path(config.output.atom_path), render_atom(stories, config.output, urls, now))
    write_atomic(Path(config.output.html_path), render_page(stories, config.output, urls, now))
    return len(stories)
