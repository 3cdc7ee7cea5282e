"""APScheduler 3 jobs: a short tick polls the sources that are due (the store decides, so
backoff and intervals survive restarts), and outputs are rebuilt after a poll that changed
something. The job never runs twice at once (max_instances=1)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from ..config import Config
from ..pipeline import Poller, build_outputs, due_sources
from ..store import Store

log = logging.getLogger("aggregator.service")

TICK = timedelta(seconds=15)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Service:
    """Owns the poller and the scheduler; `config` may be swapped by a reload."""

    def __init__(self, config: Config, store: Store, now: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.poller = Poller(config, store)
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self._lock = threading.Lock()
        self.config_error: str | None = None

    def start(self) -> None:
        self.scheduler.add_job(self.poll_due, IntervalTrigger(seconds=TICK.total_seconds()),
                               id="poll", max_instances=1, coalesce=True, next_run_time=self.now())
        self.scheduler.start()

    def poll_due(self) -> None:
        """Poll what is due; rebuild the outputs when anything changed."""
        with self._lock:
            config, poller = self.config, self.poller
        try:
            due = due_sources(config, self.store, self.now())
            if not due:
                return
            reports = poller.poll(due, self.now)
            if any(r.new or r.updated for r in reports) or not _outputs_exist(config):
                build_outputs(config, self.store, self.now())
        except Exception:
            log.exception("poll cycle failed; the next tick retries")

    def stop(self) -> None:
        """Let a running poll finish (its transactions are short), then close."""
        self.poller.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.poller.close()


def _outputs_exist(config: Config) -> bool:
    return config.output.atom_path.exists() and config.output.html_path.exists()
