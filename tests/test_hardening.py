"""Issue 6: failing sources, hostile input, SSRF, secrets, backoff, dead sources."""

from __future__ import annotations

import gzip
import json
import random
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.pipeline import next_poll_at

from .conftest import FEEDS, run_cli, write_config

ATOM = "{http://www.w3.org/2005/Atom}"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def entries(tmp_path: Path) -> list[etree._Element]:
    return etree.parse(str(tmp_path / "public" / "feed.atom")).getroot().findall(f"{ATOM}entry")


def listing(config: Path) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(run_cli("-c", str(config), "sources", "--json").out)}


# --- backoff policy (pure) -------------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    interval, cap = timedelta(minutes=30), timedelta(hours=24)
    assert next_poll_at(NOW, interval, 0, max_backoff=cap) == NOW + interval
    waits = [next_poll_at(NOW, interval, n, max_backoff=cap, rng=rng) - NOW for n in range(1, 8)]
    for n, wait in enumerate(waits[:5], 1):
        assert interval * 2**n * 0.9 <= wait <= interval * 2**n * 1.1
    assert waits[-1] == cap
    # Retry-After is honoured (never sooner), a feed's ttl / max-age is a lower bound (capped)
    assert next_poll_at(
        NOW, interval, 1, max_backoff=cap, retry_after=7200, rng=rng
    ) == NOW + timedelta(hours=2)
    assert next_poll_at(NOW, interval, 0, max_backoff=cap, ttl_minutes=120) == NOW + timedelta(
        hours=2
    )
    assert next_poll_at(NOW, interval, 0, max_backoff=cap, ttl_minutes=10) == NOW + interval
    assert next_poll_at(NOW, interval, 0, max_backoff=cap, ttl_minutes=100000) == NOW + cap


def test_retry_after_and_failures_set_the_next_poll(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/busy").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7200"}
    )
    config = write_config(tmp_path, [{"name": "busy", "url": httpserver.url_for("/busy")}])
    before = datetime.now(UTC)
    assert "error: HTTP 429" in run_cli("-c", str(config), "poll").out
    row = listing(config)["busy"]
    assert row["backoff"] is True and row["consecutive_failures"] == 1
    assert datetime.fromisoformat(row["next_poll"]) >= before + timedelta(hours=2)
    # a manual poll still polls every enabled source; a success resets the backoff
    httpserver.clear()
    httpserver.expect_request("/busy").respond_with_data((FEEDS / "atom10.xml").read_bytes())
    assert "ok new=2" in run_cli("-c", str(config), "poll").out
    row = listing(config)["busy"]
    assert (
        row["backoff"] is False and row["consecutive_failures"] == 0 and row["last_error"] is None
    )


def test_source_failing_longer_than_dead_after_is_dead(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/gone").respond_with_data("no", status=500)
    config = write_config(tmp_path, [{"name": "gone", "url": httpserver.url_for("/gone")}])
    run_cli("-c", str(config), "poll")
    assert listing(config)["gone"]["status"] == "error"
    with sqlite3.connect(tmp_path / "data" / "test.db") as conn:  # it has been failing for 4 days
        conn.execute(
            "update sources set failing_since = ?",
            ((datetime.now(UTC) - timedelta(days=4)).replace(tzinfo=None).isoformat(" "),),
        )
    assert listing(config)["gone"]["status"] == "dead"
    assert "dead" in run_cli("-c", str(config), "sources").out


def test_permanent_redirect_is_followed_and_reported(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/old").respond_with_data(
        "", status=301, headers={"Location": "/new"}
    )
    httpserver.expect_request("/new").respond_with_data((FEEDS / "atom10.xml").read_bytes())
    config = write_config(tmp_path, [{"name": "moved", "url": httpserver.url_for("/old")}])
    result = run_cli("-c", str(config), "poll")
    assert (
        f"ok new=2 updated=0 (moved to {httpserver.url_for('/new')}, update config)" in result.out
    )
    assert listing(config)["moved"]["moved_to"] == httpserver.url_for("/new")
    assert httpserver.url_for("/old") in (tmp_path / "config.yaml").read_text()  # never rewritten


# --- hostile and broken input ----------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY a "lollollollollollollollollollol">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
]>
<rss version="2.0"><channel><title>x</title>
<item><title>laughs &g;</title><link>http://a.example.org/1</link></item></channel></rss>"""


def xxe(secret: Path) -> bytes:
    return f"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>
<rss version="2.0"><channel><title>x</title>
<item><title>leak &xxe;</title><link>http://a.example.org/2</link><description>d</description></item>
</channel></rss>""".encode()


def trickle(request: Request) -> Response:
    def body() -> Iterator[bytes]:
        yield b'<?xml version="1.0"?><rss version="2.0"><channel>'
        for _ in range(100):
            time.sleep(0.25)
            yield b" "

    return Response(body(), content_type="application/rss+xml")


def hostile(kind: str, tmp_path: Path) -> Response:
    if kind == "laughs":
        return Response(BILLION_LAUGHS, content_type="application/rss+xml")
    if kind == "xxe":
        secret = tmp_path / "secret.txt"
        secret.write_text("TOP-SECRET-VALUE")
        return Response(xxe(secret), content_type="application/rss+xml")
    if kind == "gzip_bomb":
        return Response(
            gzip.compress(b" " * 5_000_000),
            headers={"Content-Encoding": "gzip"},
            content_type="application/rss+xml",
        )
    if kind == "garbage_utf8":
        body = (
            b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
            b"<item><title>bad \xff\xfe bytes \x01\x02 and \x1b[31m escape</title>"
            b"<link>http://a.example.org/3</link><description>ok \x0c text</description></item>"
            b"</channel></rss>"
        )
        return Response(body, content_type="application/rss+xml")
    if kind == "huge_title":
        body = (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>'
            + "标题" * 50_000
            + "</title><link>http://a.example.org/4</link></item></channel></rss>"
        )
        return Response(body, content_type="application/rss+xml")
    if kind == "nested":
        content = "<div>" * 50_000 + "deep" + "</div>" * 50_000
        body = (
            '<?xml version="1.0"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
            "<channel><title>t</title><item><title>nested</title><link>http://a.example.org/5</link>"
            f"<content:encoded><![CDATA[{content}]]></content:encoded></item></channel></rss>"
        )
        return Response(body, content_type="application/rss+xml")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["laughs", "xxe", "gzip_bomb", "garbage_utf8", "huge_title", "nested", "trickle"]
)
def test_hostile_input_is_contained(tmp_path: Path, httpserver: HTTPServer, kind: str) -> None:
    if kind == "trickle":
        httpserver.expect_request("/bad").respond_with_handler(trickle)
    else:
        httpserver.expect_request("/bad").respond_with_handler(lambda r: hostile(kind, tmp_path))
    httpserver.expect_request("/good").respond_with_data((FEEDS / "atom10.xml").read_bytes())
    config = write_config(
        tmp_path,
        [
            {"name": "bad", "url": httpserver.url_for("/bad")},
            {"name": "good", "url": httpserver.url_for("/good")},
        ],
        poll={"timeout": "1s", "max_bytes": "1MB"},
    )
    started = time.monotonic()
    result = run_cli("-c", str(config), "poll")
    assert result.code == 0 and "Traceback" not in result.err
    assert time.monotonic() - started < 15
    assert "good  ok new=2" in result.out
    bad_line = next(line for line in result.out.splitlines() if line.startswith("bad "))
    document = (tmp_path / "public" / "feed.atom").read_bytes()
    etree.fromstring(document)  # always well-formed
    assert b"TOP-SECRET-VALUE" not in document and b"lollollol" * 100 not in document
    if kind == "gzip_bomb":
        assert "exceeds the cap" in bad_line
    elif kind == "trickle":
        assert "timeout (total deadline exceeded)" in bad_line
    elif kind in ("huge_title", "garbage_utf8", "nested"):
        titles = [e.findtext(f"{ATOM}title") for e in entries(tmp_path)]
        assert all(len(t) <= 500 and "\n" not in t for t in titles)
        if kind == "garbage_utf8":
            assert any(t.startswith("bad") and "\x01" not in t and "\x1b" not in t for t in titles)


# --- SSRF guard --------------------------------------------------------------------------------


def _list_page(link: str) -> str:
    return (
        f'<html><body><ul class="news"><li><a href="{link}">校外链接新闻</a><span>2026-11-20</span></li>'
        "</ul></body></html>"
    )


@pytest.mark.parametrize("allow", [False, True])
def test_followed_links_to_private_addresses_are_blocked(
    tmp_path: Path, httpserver: HTTPServer, allow: bool
) -> None:
    offsite = (
        f"http://localhost:{httpserver.port}/article/1.html"  # another host name, loopback address
    )
    httpserver.expect_request("/list").respond_with_data(
        _list_page(offsite), content_type="text/html; charset=utf-8"
    )
    httpserver.expect_request("/article/1.html").respond_with_data(
        '<html><body><div class="body"><p>内部正文</p></div></body></html>',
        content_type="text/html",
    )
    source = {
        "name": "list",
        "url": httpserver.url_for("/list"),
        "type": "html",
        "follow_offsite": True,
        "selectors": {
            "item": "ul.news li",
            "title": "a",
            "link": "a@href",
            "date": "span",
            "content": "div.body",
        },
    }
    config = write_config(tmp_path, [source], poll={"allow_private_hosts": allow})
    result = run_cli("-c", str(config), "poll")
    assert "list  ok new=1" in result.out
    fetched = [r for r, _ in httpserver.log if r.path == "/article/1.html"]
    content = entries(tmp_path)[0].findtext(f"{ATOM}content") or ""
    if allow:
        assert fetched and "内部正文" in content
    else:
        assert not fetched and "内部正文" not in content


# --- secrets -----------------------------------------------------------------------------------


def test_credentials_in_urls_never_reach_output_or_logs(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, [{"name": "private", "url": "http://reader:hunter2@127.0.0.1:9/feed"}]
    )
    result = run_cli("-c", str(config), "--log-level", "DEBUG", "--log-format", "json", "poll")
    assert "private  error: connection failed" in result.out
    assert "hunter2" not in result.out + result.err
    lines = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    assert any("source=private status=error" in line["message"] for line in lines)
    listed = run_cli("-c", str(config), "sources", "--json").out
    assert "hunter2" not in listed and "http://***@127.0.0.1:9/feed" in listed


def test_never_more_than_per_host_requests_at_once(tmp_path: Path, httpserver: HTTPServer) -> None:
    import threading

    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    body = (FEEDS / "atom10.xml").read_bytes()

    def handler(request: Request) -> Response:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.3)
        with lock:
            state["now"] -= 1
        return Response(body, content_type="application/atom+xml")

    import re

    httpserver.expect_request(re.compile(r"/host/\d+")).respond_with_handler(handler)
    sources = [{"name": f"h{n}", "url": httpserver.url_for(f"/host/{n}")} for n in range(8)]
    config = write_config(
        tmp_path, sources, poll={"concurrency": 8, "per_host": 2}, dedupe={"enabled": False}
    )
    result = run_cli("-c", str(config), "poll")
    assert result.out.count(" ok new=") == 8
    assert state["peak"] == 2


@pytest.mark.parametrize("kind", ["path", "url"])
def test_a_body_naming_a_file_or_url_is_never_opened(
    tmp_path: Path, httpserver: HTTPServer, kind: str
) -> None:
    secret = tmp_path / "secret-feed.xml"
    secret.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        "<title>LOCAL-FILE-LEAKED</title><link>http://a.example.org/x</link></item></channel></rss>"
    )
    httpserver.expect_request("/secret").respond_with_data(secret.read_bytes())
    body = str(secret) if kind == "path" else httpserver.url_for("/secret")
    httpserver.expect_request("/bad").respond_with_data(body, content_type="application/rss+xml")
    config = write_config(tmp_path, [{"name": "bad", "url": httpserver.url_for("/bad")}])
    result = run_cli("-c", str(config), "poll")
    assert "bad  error: not a usable feed" in result.out
    assert b"LOCAL-FILE-LEAKED" not in (tmp_path / "public" / "feed.atom").read_bytes()
    assert [r.path for r, _ in httpserver.log].count("/secret") == 0
