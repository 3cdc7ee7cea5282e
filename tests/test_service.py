"""`aggregator serve` as a real process: the feed, the page, health, 304s, clean shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree
from pytest_httpserver import HTTPServer

from .conftest import FEEDS, free_port, run_cli, write_config

ATOM = "{http://www.w3.org/2005/Atom}"


def wait_for(predicate, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.fixture
def served(
    tmp_path: Path, httpserver: HTTPServer
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    httpserver.expect_request("/atom").respond_with_data(
        (FEEDS / "atom10.xml").read_bytes(), content_type="application/atom+xml"
    )
    httpserver.expect_request("/down").respond_with_data("down", status=502)
    port = free_port()
    config = write_config(
        tmp_path,
        [
            {"name": "Lakeside", "url": httpserver.url_for("/atom")},
            {"name": "Broken", "url": httpserver.url_for("/down")},
        ],
        server={"host": "127.0.0.1", "port": port},
        output={"link": f"http://127.0.0.1:{port}/"},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator.cli", "-c", str(config), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{base}/healthz", timeout=2).ok)
        yield base, config, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_polls_at_start_and_serves_the_feed(
    served: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    base, config, proc = served

    def two_entries() -> requests.Response | None:
        response = requests.get(f"{base}/feed.atom", timeout=5)
        return response if response.content.count(b"<entry>") == 2 else None

    response = wait_for(two_entries)
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    doc = etree.fromstring(response.content)
    assert {e.findtext(f"{ATOM}title") for e in doc.findall(f"{ATOM}entry")} == {
        "Lakeside wins regional debate title",
        "新学期课程改革说明会",
    }
    etag, modified = response.headers["etag"], response.headers["last-modified"]
    again = requests.get(f"{base}/feed.atom", headers={"If-None-Match": etag}, timeout=5)
    assert again.status_code == 304 and again.content == b""
    since = requests.get(f"{base}/feed.atom", headers={"If-Modified-Since": modified}, timeout=5)
    assert since.status_code == 304

    health = wait_for(lambda: _health_with_error(base))
    assert health["status"] == "ok"
    by_name = {s["name"]: s for s in health["sources"]}
    assert by_name["Lakeside"]["last_success"] and by_name["Lakeside"]["articles"] == 2
    assert by_name["Broken"]["last_error"] == "HTTP 502 BAD GATEWAY"

    page = requests.get(f"{base}/", timeout=5)
    assert page.headers["content-type"].startswith("text/html")
    assert "Lakeside wins regional debate title" in page.text
    assert f'href="{base}/feed.atom"' in page.text

    # a manual poll against the same SQLite file while the service runs
    result = run_cli("-c", str(config), "poll")
    assert result.code == 0 and "locked" not in result.out + result.err

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]


def _health_with_error(base: str) -> dict | None:
    health = requests.get(f"{base}/healthz", timeout=5).json()
    names = {s["name"]: s for s in health["sources"]}
    return health if names["Broken"]["last_error"] and names["Lakeside"]["last_success"] else None


def test_sources_json_lists_health_for_scripts(
    served: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    base, config, proc = served
    wait_for(lambda: _health_with_error(base))
    listing = json.loads(run_cli("-c", str(config), "sources", "--json").out)
    assert [r["name"] for r in listing] == ["Lakeside", "Broken"]
    assert listing[1]["status"] == "error" and listing[1]["consecutive_failures"] >= 1
    assert listing[0]["articles"] == 2 and listing[0]["next_poll"]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
