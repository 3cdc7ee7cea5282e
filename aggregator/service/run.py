"""`aggregator serve`: scheduler in background threads, uvicorn in the foreground.

SIGTERM and Ctrl-C stop uvicorn first, then the scheduler, which lets a running poll finish
(each source's transaction is short; sources not yet fetched are skipped).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import uvicorn

from .. import metrics
from ..config import load_config
from ..pipeline import build_outputs
from ..store import open_store
from .http import create_app
from .scheduler import Service

log = logging.getLogger("aggregator.service")


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its shutdown, which would end us before the scheduler
    stops and exit non-zero; here a signal only asks the server to exit."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(sig: int, frame: FrameType | None) -> None:
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(config_path: str) -> int:
    config = load_config(config_path)
    store = open_store(config.database)
    metrics.enable()  # the service is what /metrics is scraped from
    build_outputs(config, store, datetime.now(UTC))  # serve something at once, even before a poll
    service = Service(config, store, config_path=Path(config_path))
    app = create_app(lambda: service.config, store, config_error=lambda: service.config_error)
    server = _Server(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
    )
    service.start()
    signal.signal(signal.SIGHUP, lambda sig, frame: service.request_reload())
    log.info(
        "serving http://%s:%d/feed.atom (%d sources)",
        config.server.host,
        config.server.port,
        len(config.sources),
    )
    try:
        server.run()
    finally:
        log.info("shutting down: waiting for a running poll to finish")
        service.stop()
        store.close()
    return 0
