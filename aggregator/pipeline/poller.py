"""`Poller`: the poll loop. Fetches run on a thread pool, parses on a process pool (or inline
for a few sources), and each source is stored as soon as it is parsed."""

from __future__ import annotations

import gc
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config import Config, SourceConfig
from ..errors import ParseError, SourceError
from ..fetch import HostLimiter, fetch, make_session
from ..model import Fetched, PollReport
from ..store import NotModified, Store
from .jobs import (
    Outcome,
    exit_with_parent,
    is_quiet,
    item_counts,
    lower_bound,
    next_poll_at,
    parse_and_normalize,
)
from .save import breakage_warnings, load_index, report_success, save_error, store_articles
from .scrape import auto_source, html_source

# The parse and dedupe stages are imported where they are first used (see `__init__.py`).
if TYPE_CHECKING:
    from .. import dedupe

log = logging.getLogger("aggregator.poll")

#: Below this many fetched bodies the process pool costs more than it saves.
POOL_THRESHOLD = 6


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
                    elif is_quiet(outcome):
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
            # Workers are forked with the parse stages already imported (they start ready
            # instead of each importing them again), and with every object of this process
            # frozen, so the workers' collections never write to the inherited objects and
            # their pages stay shared (gc.freeze's documented use; ~20 MB less at 1,000 sources).
            from .. import dedupe, normalize  # noqa: F401
            from ..parse import feed  # noqa: F401

            workers = self.config.poll.workers or os.cpu_count() or 1
            pool = ProcessPoolExecutor(
                max_workers=workers, initializer=exit_with_parent, initargs=(os.getpid(),)
            )
            gc.freeze()
            try:
                pool.submit(int).result()  # forks the workers now (all at once when forking)
            finally:
                gc.unfreeze()  # this process collects as before
            self._pool = pool
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
                html_source(
                    outcome,
                    etag,
                    modified,
                    now_fn,
                    get=self._get,
                    config=self.config,
                    store=self.store,
                    stopping=self.stopping,
                )
            elif source.type == "auto":
                auto_source(outcome, self._get, etag, modified)
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
                    ttl_minutes=lower_bound(o),
                ),
                o.fetched.etag if o.fetched else None,
                o.fetched.last_modified if o.fetched else None,
                o.fetched.moved_to if o.fetched else None,
            )
            for o in outcomes
        ]
        with self._write_lock, self.store.transaction() as tx:
            tx.record_not_modified(polls, now)
        return [report_success(o, "not_modified", now) for o in outcomes]

    def _save(self, outcome: Outcome, now: datetime) -> PollReport:
        """One transaction per source. A failure rolls back everything of this source."""
        source = outcome.source
        fetched = outcome.fetched
        with self._write_lock:
            if outcome.error is not None:
                return save_error(
                    self.config, self.store, outcome, now, time.monotonic() - outcome.started
                )
            warnings = breakage_warnings(outcome)
            try:
                with self.store.transaction() as tx:
                    new, updated = store_articles(
                        tx,
                        self.config,
                        self._dedupe_index,
                        source,
                        outcome.articles,
                        now,
                        outcome.prepared,
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
                        item_counts=item_counts(outcome),
                        next_poll=next_poll_at(
                            now,
                            self.config.interval(source),
                            0,
                            max_backoff=self.config.poll.max_backoff,
                            ttl_minutes=lower_bound(outcome),
                        ),
                    )
            except Exception:
                self._index = None  # it may hold entries of the rolled-back transaction
                raise
        return report_success(outcome, state, now, len(new), len(updated), warnings)

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
