"""Crash safety: `kill -9` during polls, then a full poll: nothing lost, nothing duplicated."""

from __future__ import annotations

import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .conftest import write_config

SOURCES = 200
ENTRIES = 6


def feed(number: int) -> str:
    items = "".join(
        f"<item><title>Source {number} story {i}</title><guid>s{number}-e{i}</guid>"
        f"<link>http://site{number}.example.org/news/{i}</link>"
        f"<pubDate>Mon, {10 + i:02d} Nov 2026 08:00:00 GMT</pubDate>"
        f"<description>Body of story {i} from source {number}.</description></item>"
        for i in range(ENTRIES)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>S{number}</title>{items}</channel></rss>'


def _processes_running(marker: str) -> list[int]:
    """Processes whose command line mentions `marker` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


def test_sigkill_during_poll_loses_and_duplicates_nothing(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    def handler(request: Request) -> Response:
        time.sleep(0.02)
        number = int(request.path.rsplit("/", 1)[1])
        return Response(feed(number), content_type="application/rss+xml")

    httpserver.expect_request(re.compile(r"/feed/\d+")).respond_with_handler(handler)
    sources = [
        {"name": f"src{n:03d}", "url": httpserver.url_for(f"/feed/{n}")} for n in range(SOURCES)
    ]
    config = write_config(
        tmp_path,
        sources,
        output={"max_entries": 5000},
        poll={"concurrency": 16},
        dedupe={"enabled": False},
    )
    command = [sys.executable, "-m", "aggregator.cli", "-c", str(config), "poll"]
    rng = random.Random(20261129)
    kills = attempts = 0
    while kills < 20 and attempts < 60:  # 20 kills at random moments of a poll
        attempts += 1
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 2.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 20, "the polls finished before they could be killed; the test proves nothing"
    # The killed polls' parse workers notice and exit too (they would wait for jobs forever).
    deadline = time.monotonic() + 10
    while _processes_running(str(config)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_running(str(config)) == []
    final = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    with sqlite3.connect(tmp_path / "data" / "test.db") as conn:
        total, distinct = conn.execute(
            "select count(*), count(distinct source || key) from articles"
        ).fetchone()
        stories = conn.execute("select count(*) from stories").fetchone()[0]
        orphans = conn.execute(
            "select count(*) from articles where story_id not in (select id from stories)"
        ).fetchone()[0]
        polled = conn.execute(
            "select count(*) from sources where last_success is not null"
        ).fetchone()[0]
    assert total == distinct == SOURCES * ENTRIES
    assert stories == SOURCES * ENTRIES and orphans == 0
    assert polled == SOURCES
    doc = etree.parse(str(tmp_path / "public" / "feed.atom"))
    ids = doc.xpath("//a:entry/a:id/text()", namespaces={"a": "http://www.w3.org/2005/Atom"})
    assert len(ids) == len(set(ids)) == SOURCES * ENTRIES
