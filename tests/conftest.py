"""Shared test parts: a config writer, the CLI driven in-process, fixture files, an SMTP
server on 127.0.0.1 (aiosmtpd) that keeps what it accepts."""

from __future__ import annotations

import contextlib
import email
import email.policy
import io
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from aggregator.cli import main

DATA = Path(__file__).parent / "data"
FEEDS = DATA / "feeds"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str) -> Result:
    """Run `aggregator ARGS` in this process, as a user would type it."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return Result(code, out.getvalue(), err.getvalue())


def write_config(folder: Path, sources: list[dict[str, Any]], **sections: Any) -> Path:
    data: dict[str, Any] = {
        "database": "sqlite:///data/test.db",
        "poll": {"timeout": "5s", "concurrency": 4, "timezone": "Asia/Shanghai"},
        "output": {
            "title": "Test News",
            "id": "urn:example:test-news",
            "link": "http://127.0.0.1:8080/",
            "author": "Test Desk",
        },
        "sources": sources,
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cli() -> Callable[..., Result]:
    return run_cli


@pytest.fixture
def aggregator_exe() -> list[str]:
    """The installed console script's equivalent, for tests that need a real process."""
    return [sys.executable, "-m", "aggregator.cli"]


@pytest.fixture(scope="session")
def make_httpserver() -> Any:
    """Sources on 127.0.0.1, threaded: a slow source must not hold up the others."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


class Inbox:
    """An SMTP handler that keeps what it accepted, or refuses on demand."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Any] = []
        self.mode = "accept"  # accept | reject | drop

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.mode == "reject":
            return "554 5.7.1 Message rejected by policy"
        if self.mode == "drop":
            session.transport.close()
            return "421 closing"
        self.envelopes.append(envelope)
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()
