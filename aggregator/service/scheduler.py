"""APScheduler 3 jobs: a short tick polls the sources that are due (the store decides, so
backoff and intervals survive restarts), and outputs are rebuilt after a poll that changed
something. The job never runs twice at once (max_instances=1)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .. import digest
from ..config import Config, load_config
from ..errors import ConfigError
from ..pipeline import Poller, build_outputs, due_sources
from ..store import DigestLedger, Store

log = logging.getLogger("aggregator.service")

TICK = timedelta(seconds=15)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Service:
    """Owns the poller and the scheduler; `config` may be swapped by a reload."""

    def __init__(
        self,
        config: Config,
        store: Store,
        now: Callable[[], datetime] = utcnow,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self._config_mtime = _mtime(config_path)
        self.store = store
        self.now = now
        self.poller = Poller(config, store)
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self._lock = threading.Lock()
        self.config_error: str | None = None

    def start(self) -> None:
        self.scheduler.add_job(
            self.poll_due,
            IntervalTrigger(seconds=TICK.total_seconds()),
            id="poll",
            max_instances=1,
            coalesce=True,
            next_run_time=self.now(),
        )
        self._schedule_digest(start_up=True)
        if self.config_path is not None:
            self.scheduler.add_job(
                self._watch_config,
                IntervalTrigger(seconds=2),
                id="config-watch",
                max_instances=1,
                coalesce=True,
            )
        self.scheduler.start()

    def _watch_config(self) -> None:
        mtime = _mtime(self.config_path)
        if mtime != self._config_mtime:
            self._config_mtime = mtime
            self.reload()

    def request_reload(self) -> None:
        """From a signal handler (SIGHUP): do the work in a scheduler thread."""
        self.scheduler.add_job(self.reload, id="config-reload", replace_existing=True)

    def reload(self) -> None:
        """Apply a changed config; an invalid one is rejected and the old one keeps running."""
        assert self.config_path is not None
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            self.config_error = str(exc)
            log.error("config reload rejected, keeping the running config: %s", exc)
            return
        with self._lock:
            self.config = config
            self.poller.config = config
            self.config_error = None
        with self.store.transaction() as tx:
            tx.sync_sources([(s.name, s.url) for s in config.sources])
        self._schedule_digest()
        build_outputs(config, self.store, self.now())
        log.info("config reloaded: %d sources", len(config.sources))

    def _schedule_digest(self, start_up: bool = False) -> None:
        config = self.config
        if config.digest is None or not config.digest.recipients:
            if self.scheduler.get_job("digest"):
                self.scheduler.remove_job("digest")
            return
        self.scheduler.add_job(
            self.run_digest,
            digest.cron_trigger(config.digest),
            id="digest",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )
        if start_up and digest.missed_run(
            config.digest, DigestLedger(self.store).last_run(), self.now()
        ):
            log.info("a digest was missed while the service was down: sending it now")
            self.scheduler.add_job(
                self.run_digest,
                DateTrigger(self.now() + timedelta(seconds=20)),
                id="digest-missed",
                replace_existing=True,
            )

    def run_digest(self, only: list[str] | None = None) -> None:
        """The scheduled digest; failed recipients are retried alone, with backoff."""
        config = self.config
        if config.digest is None:
            return
        try:
            results = digest.run_digest(config, self.store, self.now(), only=only or [])
        except Exception:
            log.exception("digest run failed")
            return
        failed = [r.recipient for r in results if r.status == "failed"]
        if failed:
            ledger = DigestLedger(self.store)
            delay = digest.retry_delay(max(ledger.failures(a) for a in failed))
            log.warning("digest: %d recipient(s) failed; retrying in %s", len(failed), delay)
            self.scheduler.add_job(
                self.run_digest,
                DateTrigger(self.now() + delay),
                args=[failed],
                id="digest-retry",
                replace_existing=True,
            )

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


def _mtime(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime if path else None
    except OSError:
        return None


def _outputs_exist(config: Config) -> bool:
    return config.output.atom_path.exists() and config.output.html_path.exists()
