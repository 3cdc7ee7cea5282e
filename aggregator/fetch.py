"""The one module that speaks HTTP.

Timeouts, a total deadline, the body cap (enforced while streaming, so a gzip bomb stops at
the cap), conditional GET, redirects, per-host concurrency, and the charset decision for HTML.
"""

from __future__ import annotations

import codecs
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import charset_normalizer
import requests
from requests.adapters import HTTPAdapter

from .config import PollConfig
from .errors import FetchError
from .model import Fetched

_PERMANENT = (301, 308)


def make_session(poll: PollConfig) -> requests.Session:
    """One session for the whole poll: connection reuse across sources on one host."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=64, pool_maxsize=max(poll.concurrency, 8), max_retries=0)
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
            response = session.get(url, headers=request_headers, timeout=(timeout, timeout), stream=True)
        except requests.Timeout:
            raise FetchError(source, "timeout") from None
        except requests.TooManyRedirects:
            raise FetchError(source, "too many redirects") from None
        except requests.ConnectionError as exc:
            raise FetchError(source, f"connection failed: {_short(exc)}") from None
        except requests.RequestException as exc:
            raise FetchError(source, f"request failed: {_short(exc)}") from None
        with response:
            return _read(response, url, source, poll.max_bytes, deadline, started)


def _read(
    response: requests.Response, url: str, source: str, max_bytes: int, deadline: float, started: float
) -> Fetched:
    headers = {k.lower(): v for k, v in response.headers.items()}
    moved_to = None
    if any(r.status_code in _PERMANENT for r in response.history):
        moved_to = response.url
    if response.status_code == 304:
        return Fetched(url, response.url, 304, headers, b"", headers.get("etag"),
                       headers.get("last-modified"), True, moved_to, time.monotonic() - started)
    if response.status_code >= 400:
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = retry_after_seconds(headers.get("retry-after"), time.time())
        raise FetchError(source, f"HTTP {response.status_code} {response.reason or ''}".strip(),
                         response.status_code, retry_after)
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes and "content-encoding" not in headers:
        raise FetchError(source, f"body of {int(declared)} bytes exceeds the cap of {max_bytes} bytes")
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
        raise FetchError(source, f"body read failed: {_short(exc)}") from None
    return Fetched(url, response.url, response.status_code, headers, b"".join(chunks),
                   headers.get("etag"), headers.get("last-modified"), False, moved_to,
                   time.monotonic() - started)


def _short(exc: BaseException) -> str:
    """The innermost reason, without urllib3's long repr chains."""
    text = str(exc)
    for pattern in (r"\[Errno -?\d+\] ([^'\")]+)", r"Failed to resolve '([^']+)'", r"(Connection refused)"):
        match = re.search(pattern, text)
        if match:
            return match.group(0) if "resolve" in pattern else match.group(1)
    return text[:200]


# --- charset decision for HTML pages -----------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030",
            "big5": "big5hkscs", "iso-8859-1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252"}
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_SINGLE_BYTE = {"cp1252", "windows-1252", "ascii"}


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def header_charset(content_type: str | None) -> str | None:
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type or "", re.I)
    return match.group(1) if match else None


def decide_charset(body: bytes, content_type: str | None) -> str:
    """Header, then <meta>, then BOM, then detection; a declaration that fails to decode
    (or a Western single-byte one over non-Western bytes) yields to confident detection."""
    meta = _META_CHARSET.search(body[:4096])
    declared = _codec(header_charset(content_type)) or _codec(meta.group(1).decode("ascii", "ignore") if meta else None)
    if declared is None:
        for bom, name in _BOMS:
            if body.startswith(bom):
                return name
    if declared and declared not in _SINGLE_BYTE:
        try:
            body.decode(declared)
            return declared
        except UnicodeDecodeError:
            pass
    if declared is None or declared in _SINGLE_BYTE:
        try:
            body.decode("utf-8")
            return "utf-8"
        except UnicodeDecodeError:
            pass
    best = charset_normalizer.from_bytes(body[:200_000]).best()
    if best is not None and best.chaos < 0.2:
        return _codec(best.encoding) or best.encoding
    return declared or "utf-8"


def decode_html(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Return (text, charset used); undecodable bytes are replaced, never raised."""
    charset = decide_charset(body, content_type)
    return body.decode(charset, errors="replace"), charset
