"""Logging for every command: `--log-level`, `--log-format text|json`, redacted secrets."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from .errors import redact


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def _redact_record(record: logging.LogRecord) -> bool:
    """Secrets never reach a log line: credentials in URLs are cut from every message."""
    message = record.getMessage()
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    return True


def setup_logging(command: str, level: str | None, log_format: str) -> None:
    """One handler on stderr for the whole process: text or JSON lines, secrets redacted.
    The service logs what it does (INFO); one-shot commands only what went wrong."""
    level = level or ("INFO" if command == "serve" else "WARNING")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_redact_record)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if level.upper() != "DEBUG":  # one line per job run every few seconds is noise
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
