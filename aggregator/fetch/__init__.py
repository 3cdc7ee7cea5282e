"""The one stage that speaks HTTP.

Timeouts, a total deadline, the body cap (enforced while streaming, so a gzip bomb stops at
the cap), conditional GET, redirects and per-host concurrency. Bodies come back as bytes; how
an HTML page's bytes become text (the charset decision) is in `charset.py` beside this file.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from ..config import PollConfig
from ..errors import FetchError
from ..model import Fetched

_PERMANENT = (301, 308)


_BLOCKED = "resolves to a non-public address"


def is_public_address(ip: str) -> bool:
    """Loopback, private, link-local (cloud metadata), multicast and reserved are not."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class _Guard:
    """Checks the address actually connected to, after DNS, so rebinding can't dodge it."""

    host: str

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        peer = sock.getpeername()[0]
        if not is_public_address(peer):
            sock.close()
            raise NewConnectionError(self, f"{self.host} {_BLOCKED} {peer}")  # type: ignore[arg-type]
        return sock


class _GuardedConnection(_Guard, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_Guard, HTTPSConnection):
    pass


class _GuardedPool(HTTPConnectionPool):
    ConnectionCls = _GuardedConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        super().init_poolmanager(*args, **kwargs)  # type: ignore[arg-type]
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedPool, "https": _GuardedHTTPSPool}


class _Session(requests.Session):
    """Proxy and CA-bundle settings from the environment, read once per scheme and host.

    requests reads them on every request, walking `os.environ` twice (~0.4 ms a request, most
    of the cost of a 304); the environment does not change during a poll.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str], Any] = {}

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        key = urlsplit(url if isinstance(url, str) else str(url))[:2]
        if key not in self._environment:
            self._environment[key] = super().merge_environment_settings(url, {}, None, None, None)
        env = self._environment[key]
        return {
            "proxies": merge_setting(proxies, env["proxies"]) if proxies else dict(env["proxies"]),
            "stream": env["stream"] if stream is None else stream,
            "verify": env["verify"] if verify is None else verify,
            "cert": env["cert"] if cert is None else cert,
        }


def make_session(poll: PollConfig, guarded: bool = False) -> requests.Session:
    """One session for the whole poll: connection reuse across sources on one host. A guarded
    session (for links the aggregator follows on its own) refuses non-public addresses."""
    session = _Session()
    kind = _GuardedAdapter if guarded and not poll.allow_private_hosts else HTTPAdapter
    adapter = kind(pool_connections=64, pool_maxsize=max(poll.concurrency, 8), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(
        {
            "User-Agent": poll.user_agent,
            "Accept": "application/atom+xml, application/rss+xml, application/feed+json, "
            "application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5",
            "Accept-Encoding": "gzip, deflate",
        }
    )
    return session


class HostLimiter:
    """At most `per_host` requests at once to one host name, across all threads."""

    def __init__(self, per_host: int) -> None:
        self.per_host = per_host
        self._lock = threading.Lock()
        self._sems: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        host = (urlsplit(url).hostname or "").lower()
        with self._lock:
            sem = self._sems.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with sem:
            yield


def max_age_minutes(cache_control: str | None) -> int:
    match = re.search(r"(?:^|,)\s*max-age\s*=\s*(\d+)", cache_control or "", re.I)
    return int(match.group(1)) // 60 if match else 0


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """`Retry-After` is either seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def fetch(
    session: requests.Session,
    url: str,
    *,
    source: str,
    poll: PollConfig,
    etag: str | None = None,
    last_modified: str | None = None,
    headers: dict[str, str] | None = None,
    limiter: HostLimiter | None = None,
) -> Fetched:
    """GET `url`; a 304 comes back as `not_modified`, any failure as FetchError."""
    request_headers = dict(headers or {})
    if etag:
        request_headers["If-None-Match"] = etag
    if last_modified:
        request_headers["If-Modified-Since"] = last_modified
    timeout = poll.timeout.total_seconds()
    deadline = time.monotonic() + 3 * timeout
    started = time.monotonic()
    if limiter is None:
        limiter = HostLimiter(poll.per_host)
    with limiter.slot(url):
        try:
            response = session.get(
                url, headers=request_headers, timeout=(timeout, timeout), stream=True
            )
        except requests.Timeout:
            raise FetchError(source, "timeout") from None
        except requests.TooManyRedirects:
            raise FetchError(source, "too many redirects") from None
        except requests.ConnectionError as exc:
            if _BLOCKED in str(exc):
                blocked = re.search(rf"(\S+ {_BLOCKED} \S+?)(?:['\")]|$)", str(exc))
                reason = blocked.group(1) if blocked else f"url {_BLOCKED}"
                raise FetchError(
                    source, f"blocked: {reason} (set poll.allow_private_hosts to allow)"
                ) from None
            raise FetchError(source, f"connection failed: {_short(exc)}") from None
        except requests.RequestException as exc:
            raise FetchError(source, f"request failed: {_short(exc)}") from None
        # A server that trickles bytes never trips the read timeout: at the total deadline the
        # watchdog shuts the socket, which ends the blocked read.
        try:
            with _WATCHDOG.watch(deadline, response), response:
                return _read(response, url, source, poll.max_bytes, deadline, started)
        except FetchError:
            raise
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise FetchError(source, "timeout (total deadline exceeded)") from None
            raise FetchError(source, f"body read failed: {_short(exc)}") from None


class _Watchdog:
    """One thread that shuts the sockets of reads past their deadline (a timer thread per
    request would cost more than a whole 304)."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        # [deadline, tie-breaker, response or None once the read is over], earliest first
        self._heap: list[list[Any]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def watch(self, deadline: float, response: requests.Response) -> Iterator[None]:
        entry = [deadline, next(self._ids), response]
        with self._wake:
            heapq.heappush(self._heap, entry)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="fetch-watchdog")
                self._thread.daemon = True
                self._thread.start()
            if self._heap[0] is entry:
                self._wake.notify()
        try:
            yield
        finally:
            with self._wake:
                entry[2] = None  # read over: nothing to shut, and the response is let go
                self._drop_finished()

    def _drop_finished(self) -> None:
        while self._heap and self._heap[0][2] is None:
            heapq.heappop(self._heap)

    def _run(self) -> None:
        while True:
            with self._wake:
                self._drop_finished()
                if not self._heap:
                    self._wake.wait(60)
                    continue
                deadline, _, response = self._heap[0]
                if deadline > time.monotonic():
                    self._wake.wait(deadline - time.monotonic())
                    continue
                heapq.heappop(self._heap)
                _abort(response)  # under the lock: the read cannot finish and hand it back


_WATCHDOG = _Watchdog()


def _abort(response: requests.Response) -> None:
    sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _read(
    response: requests.Response,
    url: str,
    source: str,
    max_bytes: int,
    deadline: float,
    started: float,
) -> Fetched:
    headers = {k.lower(): v for k, v in response.headers.items()}
    if response.status_code == 304:
        # No body: hand the connection back to the pool rather than closing it with the
        # response (keep-alive for the next source on this host).
        with suppress(Exception):
            response.raw.drain_conn()
            response.raw.release_conn()
    moved_to = None
    if any(r.status_code in _PERMANENT for r in response.history):
        moved_to = response.url
    if response.status_code == 304:
        return Fetched(
            url,
            response.url,
            304,
            headers,
            b"",
            headers.get("etag"),
            headers.get("last-modified"),
            True,
            moved_to,
            time.monotonic() - started,
        )
    if response.status_code >= 400:
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = retry_after_seconds(headers.get("retry-after"), time.time())
        raise FetchError(
            source,
            f"HTTP {response.status_code} {response.reason or ''}".strip(),
            response.status_code,
            retry_after,
        )
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes and "content-encoding" not in headers:
        raise FetchError(
            source, f"body of {int(declared)} bytes exceeds the cap of {max_bytes} bytes"
        )
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(source, f"body exceeds the cap of {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise FetchError(source, "timeout (total deadline exceeded)")
            chunks.append(chunk)
    except requests.Timeout:
        raise FetchError(source, "timeout") from None
    except requests.RequestException as exc:
        if time.monotonic() >= deadline:
            raise FetchError(source, "timeout (total deadline exceeded)") from None
        raise FetchError(source, f"body read failed: {_short(exc)}") from None
    if time.monotonic() >= deadline:
        raise FetchError(source, "timeout (total deadline exceeded)")
    return Fetched(
        url,
        response.url,
        response.status_code,
        headers,
        b"".join(chunks),
        headers.get("etag"),
        headers.get("last-modified"),
        False,
        moved_to,
        time.monotonic() - started,
    )


def _short(exc: BaseException) -> str:
    """The innermost reason, without urllib3's long repr chains."""
    text = str(exc)
    for pattern in (
        r"\[Errno -?\d+\] ([^'\")]+)",
        r"Failed to resolve '([^']+)'",
        r"(Connection refused)",
    ):
        match = re.search(pattern, text)
        if match:
            return match.group(0) if "resolve" in pattern else match.group(1)
    return text[:200]
