"""One small error tree. Each error names its subject and chains its cause."""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """URLs with credentials (user:password@host) lose the credentials in any message."""
    return _CREDENTIALS.sub("***@", text)


class AggregatorError(Exception):
    """Base of every expected error: the CLI prints it without a traceback."""

    exit_code = 1


class ConfigError(AggregatorError):
    """The config file is missing or invalid; the message names the key path and line."""

    exit_code = 2


class UsageError(AggregatorError):
    exit_code = 2


class StorageError(AggregatorError):
    exit_code = 3


class SourceError(AggregatorError):
    """A source could not be polled; recorded on the source, the others go on."""

    def __init__(self, source: str, reason: str, http_status: int | None = None) -> None:
        reason = redact(reason)
        super().__init__(f"{source!r}: {reason}")
        self.source = source
        self.reason = reason
        self.http_status = http_status


class FetchError(SourceError):
    """HTTP failure: DNS, connect, timeout, status >= 400, body over the cap."""

    def __init__(
        self,
        source: str,
        reason: str,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(source, reason, http_status)
        self.retry_after = retry_after


class ParseError(SourceError):
    """The body is not a usable feed or list page."""
