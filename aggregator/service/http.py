"""The web app (Starlette, served by uvicorn): the feed, the page, health, metrics.

The feed bytes and their ETag are cached in memory and reloaded when the file changes on disk,
so a rebuild by the scheduler or by a manual `aggregator poll` is picked up at once.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .. import digest, metrics
from ..config import Config
from ..health import health_entries
from ..store import Store


@dataclass(frozen=True)
class _Cached:
    key: tuple[int, int]
    body: bytes
    gzipped: bytes  # compressed once per file change, not per request
    etag: str
    last_modified: str
    mtime: float


class FileCache:
    """One file's bytes, revalidated with a stat per request (microseconds)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cached: _Cached | None = None
        self._lock = threading.Lock()

    def get(self) -> _Cached | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._cached
        if cached is not None and cached.key == key:
            return cached
        with self._lock:
            body = self.path.read_bytes()  # the file is replaced atomically, never half-written
            etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest()[:20] + '"'
            modified = format_datetime(datetime.fromtimestamp(int(stat.st_mtime), UTC), usegmt=True)
            packed = gzip.compress(body, compresslevel=6, mtime=0)
            self._cached = _Cached(key, body, packed, etag, modified, float(int(stat.st_mtime)))
            return self._cached


def _conditional(request: Request, cached: _Cached, media_type: str) -> Response:
    packed = "gzip" in request.headers.get("accept-encoding", "").lower()
    etag = cached.etag[:-1] + '-gz"' if packed else cached.etag
    headers = {
        "ETag": etag,
        "Last-Modified": cached.last_modified,
        "Cache-Control": "max-age=60",
        "Vary": "Accept-Encoding",
    }
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
        if etag in tags or cached.etag in tags or inm.strip() == "*":
            return Response(status_code=304, headers=headers)
    elif (ims := request.headers.get("if-modified-since")) is not None:
        try:
            if parsedate_to_datetime(ims).timestamp() >= cached.mtime:
                return Response(status_code=304, headers=headers)
        except (TypeError, ValueError, IndexError):
            pass
    if packed:
        headers["Content-Encoding"] = "gzip"
        return Response(cached.gzipped, media_type=media_type, headers=headers)
    return Response(cached.body, media_type=media_type, headers=headers)


def health_document(
    config: Config, store: Store, now: datetime, config_error: str | None = None
) -> dict[str, Any]:
    """The /healthz JSON: `ok` is false when any enabled source is dead or the config is broken.
    The per-source entries come from `aggregator.health`, like those of `aggregator sources`."""
    sources, dead = health_entries(config, store, now)
    status = "degraded" if dead or config_error else "ok"
    document: dict[str, Any] = {
        "ok": status == "ok",
        "status": status,
        "dead_sources": dead,
        "sources": sources,
    }
    if config_error:
        document["config_error"] = config_error
    return document


def create_app(
    get_config: Callable[[], Config],
    store: Store,
    *,
    extra_routes: list[Route] | None = None,
    config_error: Callable[[], str | None] = lambda: None,
) -> Starlette:
    config = get_config()
    feeds = FileCache(Path(config.output.atom_path))
    pages = FileCache(Path(config.output.html_path))

    def serving(
        cache: FileCache, media_type: str, what: str
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            cached = cache.get()
            if cached is None:
                message = f"The {what} has not been built yet.\n"
                return Response(message, status_code=503, media_type="text/plain")
            return _conditional(request, cached, media_type)

        return endpoint

    feed = serving(feeds, "application/atom+xml; charset=utf-8", "feed")
    index = serving(pages, "text/html; charset=utf-8", "page")

    def healthz(request: Request) -> Response:
        return JSONResponse(health_document(get_config(), store, datetime.now(UTC), config_error()))

    def digest_preview(request: Request) -> Response:
        """Today's digest as a recipient would get it; sends nothing, marks nothing."""
        config = get_config()
        if config.digest is None or not config.digest.recipients:
            return Response("No digest is configured.\n", status_code=404, media_type="text/plain")
        wanted = request.query_params.get("recipient") or config.digest.recipients[0].address
        recipient = next((r for r in config.digest.recipients if r.address == wanted), None)
        if recipient is None:
            return Response("Unknown recipient.\n", status_code=404, media_type="text/plain")
        now = datetime.now(UTC)
        prepared = digest.prepare(config, store, now, [recipient.address])
        item = prepared[0] if prepared else digest.build_digest(config, recipient, [], now)
        part = item.message.get_body(("html",))
        html = part.get_content() if part is not None else ""
        return HTMLResponse(html)

    def metrics_endpoint(request: Request) -> Response:
        config, now = get_config(), datetime.now(UTC)
        health = store.health()
        collected = metrics.enable()
        collected.sources_backoff.set(
            sum(1 for h in health if h.consecutive_failures and not h.removed)
        )
        collected.sources_dead.set(sum(1 for h in health if h.dead(now, config.poll.dead_after)))
        for h in health:
            if h.last_success:
                collected.last_success.labels(h.name).set(h.last_success.timestamp())
        collected.stories.set(store.counts()["stories"])
        return Response(generate_latest(collected.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/feed.atom", feed),
        Route("/", index),
        Route("/healthz", healthz),
        Route("/digest/preview", digest_preview),
        Route("/metrics", metrics_endpoint),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes)
