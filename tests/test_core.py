"""Issue 2: poll feed sources into a store and republish one valid combined Atom feed."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .conftest import FEEDS, free_port, run_cli, write_config

ATOM = "{http://www.w3.org/2005/Atom}"
FORMATS = {
    "rss20.xml": ("application/rss+xml", "Riverbend opens a maker lab & robotics club"),
    "atom10.xml": ("application/atom+xml", "Lakeside wins regional debate title"),
    "rss10.rdf": ("application/rdf+xml", "Reading week starts with a poetry slam"),
    "rss091.xml": ("application/rss+xml", "Café menu for the autumn fair"),
    "atom03.xml": ("application/atom+xml", "Science fair judges announced"),
    "jsonfeed.json": ("application/feed+json", "Episode 77: exam season tips"),
}


def serve_file(httpserver: HTTPServer, path: str, name: str, content_type: str) -> str:
    httpserver.expect_request(path).respond_with_data(
        (FEEDS / name).read_bytes(), content_type=content_type
    )
    return httpserver.url_for(path)


def atom(tmp_path: Path) -> etree._Element:
    return etree.fromstring((tmp_path / "public" / "feed.atom").read_bytes())


def entries(doc: etree._Element) -> list[etree._Element]:
    return doc.findall(f"{ATOM}entry")


def alternate(entry: etree._Element) -> str:
    """Atom's default rel is alternate."""
    return next(
        lk.get("href")
        for lk in entry.findall(f"{ATOM}link")
        if lk.get("rel", "alternate") == "alternate"
    )


def rows(tmp_path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(tmp_path / "data" / "test.db") as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_format_becomes_an_atom_entry(
    tmp_path: Path, httpserver: HTTPServer, name: str
) -> None:
    content_type, title = FORMATS[name]
    url = serve_file(httpserver, f"/{name}", name, content_type)
    config = write_config(tmp_path, [{"name": "src", "url": url}])
    result = run_cli("-c", str(config), "poll")
    assert result.code == 0, result.err
    assert "src  ok new=" in result.out
    titles = [e.findtext(f"{ATOM}title") for e in entries(atom(tmp_path))]
    assert title in titles


def test_entry_fields_are_normalized_and_sanitized(tmp_path: Path, httpserver: HTTPServer) -> None:
    url = serve_file(httpserver, "/rss", "rss20.xml", "application/rss+xml")
    config = write_config(tmp_path, [{"name": "Riverbend", "url": url, "tags": ["district"]}])
    assert run_cli("-c", str(config), "poll").code == 0
    by_title = {e.findtext(f"{ATOM}title"): e for e in entries(atom(tmp_path))}
    lab = by_title["Riverbend opens a maker lab & robotics club"]
    assert alternate(lab) == "http://riverbend.example.org/news/maker-lab"
    content = lab.findtext(f"{ATOM}content")
    assert "<script" not in content and "onclick" not in content and "javascript:" not in content
    assert 'src="http://riverbend.example.org/img/lab.jpg"' in content
    assert 'href="http://riverbend.example.org/docs/plan.pdf"' in content
    assert lab.findtext(f"{ATOM}author/{ATOM}name") == "Mara Quill"
    assert {c.get("term") for c in lab.findall(f"{ATOM}category")} == {"district", "STEM"}
    assert lab.findtext(f"{ATOM}published") == "2026-11-24T14:30:00+00:00"
    assert lab.findtext(f"{ATOM}source/{ATOM}title") == "Riverbend"
    # markup in a title becomes clean text; an enclosure stays an enclosure
    board = by_title["School board approves new literacy plan"]
    enclosure = board.find(f"{ATOM}link[@rel='enclosure']")
    assert enclosure.get("type") == "audio/mpeg" and enclosure.get("length") == "120400"
    assert (
        board.findtext(f"{ATOM}summary")
        == "The board voted 5-2 for a reading program that starts in January."
    )
    # canonical URLs are stored without tracking parameters or fragments
    urls = {r[0] for r in rows(tmp_path, "select url from articles")}
    assert "http://riverbend.example.org/news/maker-lab" in urls
    assert "http://riverbend.example.org/news/winter-concert" in urls


def test_chinese_and_cst_dates_in_feeds_use_our_rules(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    url = serve_file(httpserver, "/cn", "chinese_dates.xml", "application/rss+xml")
    config = write_config(tmp_path, [{"name": "学院新闻", "url": url}])
    assert run_cli("-c", str(config), "poll").code == 0
    published = {
        e.findtext(f"{ATOM}title"): e.findtext(f"{ATOM}published") for e in entries(atom(tmp_path))
    }
    assert published["【学院新闻】我院举办智能制造技能大赛"] == "2026-11-20T07:30:00+00:00"
    assert (
        published["我院与本地企业签署校企合作协议"] == "2026-11-20T02:00:00+00:00"
    )  # CST = +08:00 here


def conditional(body: bytes, content_type: str, etag: str = '"v1"') -> Any:
    """A source that answers 304 to a request carrying its ETag."""

    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag})
        return Response(body, content_type=content_type, headers={"ETag": etag})

    return handler


def test_conditional_get_second_poll_is_not_modified(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    handler = conditional((FEEDS / "atom10.xml").read_bytes(), "application/atom+xml")
    httpserver.expect_request("/feed").respond_with_handler(handler)
    config = write_config(tmp_path, [{"name": "Lakeside", "url": httpserver.url_for("/feed")}])
    first = run_cli("-c", str(config), "poll")
    assert "Lakeside  ok new=2 updated=0" in first.out
    second = run_cli("-c", str(config), "poll")
    assert "Lakeside  not modified" in second.out
    last_request, last_response = httpserver.log[-1]
    assert last_request.headers.get("If-None-Match") == '"v1"'
    assert last_response.status_code == 304
    assert rows(tmp_path, "select count(*) from articles") == [(2,)]


def test_repoll_creates_no_duplicates_and_updates_changed_entries(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    body = (FEEDS / "rss20.xml").read_text()
    state = {"body": body}
    httpserver.expect_request("/rss").respond_with_handler(
        lambda r: Response(state["body"], content_type="application/rss+xml")
    )
    config = write_config(tmp_path, [{"name": "Riverbend", "url": httpserver.url_for("/rss")}])
    assert "ok new=3 updated=0" in run_cli("-c", str(config), "poll").out
    assert "ok new=0 updated=0" in run_cli("-c", str(config), "poll").out
    state["body"] = body.replace(
        "Winter concert schedule", "Winter concert schedule (changed venue)"
    )
    # the same URL with a tracking parameter is the same article, not a new one
    state["body"] = state["body"].replace(
        "news/literacy-plan/", "news/literacy-plan?utm_campaign=x"
    )
    assert "ok new=0 updated=1" in run_cli("-c", str(config), "poll").out
    assert rows(tmp_path, "select count(*) from articles") == [(3,)]
    titles = [e.findtext(f"{ATOM}title") for e in entries(atom(tmp_path))]
    assert "Winter concert schedule (changed venue)" in titles


def test_atom_document_is_complete_and_ordered(tmp_path: Path, httpserver: HTTPServer) -> None:
    sources = [
        {"name": n, "url": serve_file(httpserver, f"/{n}", n, t)} for n, (t, _) in FORMATS.items()
    ]
    config = write_config(tmp_path, sources)
    assert run_cli("-c", str(config), "poll").code == 0
    doc = atom(tmp_path)
    assert doc.tag == f"{ATOM}feed"
    assert doc.findtext(f"{ATOM}id") == "urn:example:test-news"
    assert doc.findtext(f"{ATOM}title") == "Test News"
    assert doc.findtext(f"{ATOM}author/{ATOM}name") == "Test Desk"
    rels = {link.get("rel"): link.get("href") for link in doc.findall(f"{ATOM}link")}
    assert rels == {
        "self": "http://127.0.0.1:8080/feed.atom",
        "alternate": "http://127.0.0.1:8080/",
    }
    items = entries(doc)
    assert len(items) == 9
    ids = [e.findtext(f"{ATOM}id") for e in items]
    assert len(set(ids)) == len(ids) and all(i.startswith("urn:uuid:") for i in ids)
    updated = [e.findtext(f"{ATOM}updated") for e in items]
    assert len(set(updated)) == len(updated), "entries must not share an updated value"
    assert doc.findtext(f"{ATOM}updated") == max(updated, key=_instant)
    published = [_instant(e.findtext(f"{ATOM}published")) for e in items]
    assert published == sorted(published, reverse=True)
    for entry in items:
        for tag in ("id", "title", "updated", "published", "summary"):
            assert entry.find(f"{ATOM}{tag}") is not None, tag
        assert alternate(entry).startswith("http")
        for stamp in (entry.findtext(f"{ATOM}updated"), entry.findtext(f"{ATOM}published")):
            assert _RFC3339(stamp), stamp


def _RFC3339(value: str) -> bool:
    import re

    return bool(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value))


def _instant(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


def test_max_entries_limits_the_feed(tmp_path: Path, httpserver: HTTPServer) -> None:
    url = serve_file(httpserver, "/rss", "rss20.xml", "application/rss+xml")
    config = write_config(tmp_path, [{"name": "r", "url": url}], output={"max_entries": 2})
    assert run_cli("-c", str(config), "poll").code == 0
    assert len(entries(atom(tmp_path))) == 2
    assert run_cli("-c", str(config), "build").code == 0


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("404", "error: HTTP 404"),
        ("500", "error: HTTP 500"),
        ("html", "error: got an HTML page, not a feed"),
        ("big", "exceeds the cap of 100000 bytes"),
        ("slow", "error: timeout"),
        ("refused", "error: connection failed"),
        ("garbage", "error: not a usable feed"),
        ("empty", "error: empty body"),
    ],
)
def test_a_failing_source_never_stops_the_others(
    tmp_path: Path, httpserver: HTTPServer, kind: str, expected: str
) -> None:
    good = serve_file(httpserver, "/good", "atom10.xml", "application/atom+xml")
    if kind == "404":
        httpserver.expect_request("/bad").respond_with_data("gone", status=404)
    elif kind == "500":
        httpserver.expect_request("/bad").respond_with_data("oops", status=500)
    elif kind == "html":
        httpserver.expect_request("/bad").respond_with_data(
            "<!doctype html><html><body><p>Welcome</p></body></html>", content_type="text/html"
        )
    elif kind == "big":
        httpserver.expect_request("/bad").respond_with_data(
            b"<rss>" + b" " * 300_000, content_type="text/xml"
        )
    elif kind == "slow":
        httpserver.expect_request("/bad").respond_with_handler(
            lambda r: (time.sleep(3), Response("late"))[1]
        )
    elif kind == "garbage":
        httpserver.expect_request("/bad").respond_with_data(
            b"\x00\x01 this is not xml", content_type="text/xml"
        )
    elif kind == "empty":
        httpserver.expect_request("/bad").respond_with_data(b"", content_type="application/rss+xml")
    bad = f"http://127.0.0.1:{free_port()}/bad" if kind == "refused" else httpserver.url_for("/bad")
    config = write_config(
        tmp_path,
        [{"name": "bad", "url": bad}, {"name": "good", "url": good}],
        poll={"timeout": "1s", "max_bytes": "100KB"},
    )
    result = run_cli("-c", str(config), "poll")
    assert result.code == 0
    bad_line = next(line for line in result.out.splitlines() if line.startswith("bad "))
    assert expected in bad_line
    assert "good  ok new=2" in result.out
    assert len(entries(atom(tmp_path))) == 2
    # recorded on the source, shown by `sources`
    listing = json.loads(run_cli("-c", str(config), "sources", "--json").out)
    bad_row = next(r for r in listing if r["name"] == "bad")
    assert bad_row["status"] == "error" and bad_row["consecutive_failures"] == 1
    assert expected.removeprefix("error: ") in bad_row["last_error"]
    assert run_cli("-c", str(config), "poll", "--fail-on-error").code == 1


def test_unknown_source_name_is_a_usage_error(tmp_path: Path) -> None:
    config = write_config(tmp_path, [{"name": "a", "url": "http://127.0.0.1:9/feed"}])
    result = run_cli("-c", str(config), "poll", "--source", "nope")
    assert result.code == 2
    assert "unknown source 'nope'" in result.err and "Traceback" not in result.err


def test_sources_table_shows_health(tmp_path: Path, httpserver: HTTPServer) -> None:
    good = serve_file(httpserver, "/good", "atom10.xml", "application/atom+xml")
    httpserver.expect_request("/bad").respond_with_data("no", status=503)
    config = write_config(
        tmp_path,
        [{"name": "good", "url": good}, {"name": "bad", "url": httpserver.url_for("/bad")}],
    )
    run_cli("-c", str(config), "poll")
    table = run_cli("-c", str(config), "sources").out.splitlines()
    assert table[0].split()[:3] == ["NAME", "STATUS", "LAST"]
    good_line = next(line for line in table if line.startswith("good"))
    bad_line = next(line for line in table if line.startswith("bad"))
    assert " ok " in good_line and " 2 " in good_line
    assert "error" in bad_line and "HTTP 503" in bad_line


def test_many_sources_through_the_worker_pool_then_all_not_modified(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    body = (FEEDS / "rss20.xml").read_text()

    validators_on_304 = [True]

    def handler(request: Request) -> Response:
        number = request.path.rsplit("/", 1)[1]
        etag = f'"feed-{number}"'
        if request.headers.get("If-None-Match") == etag:
            return Response(status=304, headers={"ETag": etag} if validators_on_304[0] else {})
        text = body.replace("riverbend.example.org", f"site{number}.example.org").replace(
            "riverbend-2026", f"site{number}-2026"
        )
        return Response(text, content_type="application/rss+xml", headers={"ETag": etag})

    import re

    httpserver.expect_request(re.compile(r"/many/\d+")).respond_with_handler(handler)
    sources = [{"name": f"s{n}", "url": httpserver.url_for(f"/many/{n}")} for n in range(12)]
    config = write_config(tmp_path, sources, dedupe={"enabled": False})
    first = run_cli("-c", str(config), "poll")
    assert first.out.count("ok new=3 updated=0") == 12, first.out
    second = run_cli("-c", str(config), "poll")
    assert second.out.count("not modified") == 12, second.out
    assert rows(tmp_path, "select count(*) from articles") == [(36,)]
    polled = rows(tmp_path, "select count(*) from sources where last_status = 'not_modified'")
    assert polled == [(12,)]
    # A 304 that repeats no validator keeps the stored one: the next poll still asks with it.
    validators_on_304[0] = False
    assert run_cli("-c", str(config), "poll").out.count("not modified") == 12
    assert rows(tmp_path, "select count(*) from sources where etag like '\"feed-%'") == [(12,)]
    assert run_cli("-c", str(config), "poll").out.count("not modified") == 12


def test_conditional_gets_reuse_kept_alive_connections(tmp_path: Path) -> None:
    """A 304 hands its connection back to the pool (pytest-httpserver closes every
    connection, so this source is a stdlib HTTP/1.1 server that counts them)."""
    import http.server
    import threading

    body = (FEEDS / "rss20.xml").read_bytes()
    connections: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            connections.append(1)

        def do_GET(self) -> None:
            etag = f'"{self.path}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            text = body.replace(b"riverbend", self.path.strip("/").encode())
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(text)))
            self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        sources = [{"name": f"s{n}", "url": f"{base}/site{n}"} for n in range(20)]
        config = write_config(tmp_path, sources, dedupe={"enabled": False})
        assert run_cli("-c", str(config), "poll").out.count("ok new=3") == 20
        connections.clear()
        second = run_cli("-c", str(config), "poll")
        assert second.out.count("not modified") == 20, second.out
        assert 1 <= len(connections) <= 2, len(connections)  # poll.per_host defaults to 2
    finally:
        server.shutdown()
        server.server_close()


def test_an_older_schema_is_migrated_and_a_newer_one_refused(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        (FEEDS / "rss20.xml").read_bytes(), content_type="application/rss+xml"
    )
    config = write_config(tmp_path, [{"name": "Riverbend", "url": httpserver.url_for("/feed")}])
    assert run_cli("-c", str(config), "poll").code == 0
    db = tmp_path / "data" / "test.db"
    with sqlite3.connect(db) as conn:  # back to the first schema version
        conn.execute("DROP INDEX ix_stories_updated")
        conn.execute("ALTER TABLE digest_runs DROP COLUMN claimed_until")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    assert run_cli("-c", str(config), "build").code == 0
    indexes = rows(tmp_path, "select name from sqlite_master where type = 'index'")
    assert ("ix_stories_updated",) in indexes
    columns = [r[1] for r in rows(tmp_path, "pragma table_info(digest_runs)")]
    assert "claimed_until" in columns
    assert rows(tmp_path, "select value from meta where key = 'schema_version'") == [("3",)]
    assert rows(tmp_path, "select count(*) from articles") == [(3,)]
    with sqlite3.connect(db) as conn:  # written by a newer program
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    result = run_cli("-c", str(config), "poll")
    assert result.code == 3
    assert "schema version 99 is newer than this program (3)" in result.err
    assert "Traceback" not in result.err


def test_stored_timestamps_keep_sqlalchemys_sqlite_text_form(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    """The store writes SQLite timestamps itself (one C call a value): the text must be
    what SQLAlchemy's own DateTime writes, or old and new rows would sort differently."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import DateTime
    from sqlalchemy.dialects import sqlite

    from aggregator.store.schema import UTCDateTime

    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None and theirs is not None
    zone = timezone(timedelta(hours=8))
    for value in (
        datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=zone),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(987, 6, 5, 4, 3, 2, tzinfo=UTC),
    ):
        assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive"):
        ours(datetime(2026, 11, 29))
    httpserver.expect_request("/feed").respond_with_data(
        (FEEDS / "rss20.xml").read_bytes(), content_type="application/rss+xml"
    )
    config = write_config(tmp_path, [{"name": "Riverbend", "url": httpserver.url_for("/feed")}])
    assert run_cli("-c", str(config), "poll").code == 0
    stored = rows(tmp_path, "select published, first_seen, updated from articles")
    assert len(stored) == 3
    for texts in stored:
        for text in texts:
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", text), text


def test_a_poll_where_nothing_changed_imports_no_parsing_stage(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    """Start-up is most of such a poll: the parse, dedupe, output and metrics libraries load
    only when a source has something new."""
    import subprocess
    import sys

    handler = conditional((FEEDS / "rss20.xml").read_bytes(), "application/rss+xml")
    httpserver.expect_request("/feed").respond_with_handler(handler)
    config = write_config(tmp_path, [{"name": "Riverbend", "url": httpserver.url_for("/feed")}])
    heavy = ("numpy", "feedparser", "lxml", "nh3", "jinja2", "feedgen", "prometheus_client")
    script = (
        "import sys\n"
        "from aggregator.cli import main\n"
        f"code = main(['-c', {str(config)!r}, 'poll'])\n"
        f"print('loaded:', sorted(m for m in {heavy!r} if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    cold = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert cold.returncode == 0 and "ok new=3" in cold.stdout, cold.stderr
    assert "'feedparser'" in cold.stdout  # the check can fail: a poll that parses loads them
    warm = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert warm.returncode == 0 and "not modified" in warm.stdout, warm.stderr
    assert "loaded: []" in warm.stdout
    # The command closes the store on its way out, so SQLite folds its write-ahead log into
    # the database file instead of leaving it for the next run to checkpoint.
    command = [sys.executable, "-m", "aggregator.cli", "-c", str(config), "poll"]
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert not (tmp_path / "data" / "test.db-wal").exists()
