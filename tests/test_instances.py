"""Several instances on one database (README, "Running several instances"): a service beside
a cron `poll`, or instances on several hosts sharing PostgreSQL. Each runs against a real
SQLite file and a real PostgreSQL server started for the tests on 127.0.0.1."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from aggregator.config import load_config
from aggregator.pipeline import Poller
from aggregator.store import open_store

from .conftest import Inbox, free_port, run_cli, write_config

WIRE_TITLE = "Ministry sets out a three-year plan for rural teacher training"
WIRE_BODY = (
    "<p>The education ministry published a plan on Tuesday that funds two hundred training "
    "centres for teachers in rural counties over the next three years.</p>"
    "<p>Each centre will run short residential courses in mathematics, reading and science "
    "teaching, and every rural teacher is to attend one course a year.</p>"
    "<p>Provinces must name their first centres by the end of the spring term.</p>"
)


def _pg_program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 for this test session; its base URL."""
    initdb, pg_ctl = _pg_program("initdb"), _pg_program("pg_ctl")
    if not initdb or not pg_ctl:
        # Only the PostgreSQL cases, and only off CI: .ci/run installs the server programs,
        # and under CI their absence is a failure. A developer without them still runs the
        # SQLite cases of every test here.
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server programs (initdb, pg_ctl) are not installed")
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) are not installed")
    folder = Path(tempfile.mkdtemp(prefix="aggregator-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        names = [p.pw_name for p in pwd.getpwall() if p.pw_name in ("postgres", "nobody")]
        account = pwd.getpwnam(sorted(names, key=lambda n: n != "postgres")[0])
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", account.pw_name, "--"]
    data, port = folder / "data", free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(folder / "log"),
            "-w",
            "-o",
            options,
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database both instances of a test share."""
    if request.param == "sqlite":
        (tmp_path / "shared").mkdir()
        return f"sqlite:///{tmp_path / 'shared' / 'news.db'}"
    import psycopg

    base = request.getfixturevalue("postgres_server")
    name = f"news_{abs(hash(request.node.nodeid)) % 10**9}"
    with psycopg.connect(base.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


def _rss(items: list[tuple[str, str, str]]) -> bytes:
    when = format_datetime(datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
    entries = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>{when}</pubDate><description><![CDATA[{body}]]></description></item>"
        for title, link, body in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed</title>'
        f"<link>http://127.0.0.1/</link><description>d</description>{entries}</channel></rss>"
    ).encode()


def _local(site: str, n: int) -> tuple[str, str, str]:
    return (
        f"{site} school news item {n}",
        f"http://{site}.example.edu/news/{n}",
        f"<p>Local report number {n} from the {site} school news desk, written for parents and "
        f"teachers of the {site} district.</p>",
    )


def _instance(folder: Path, database: str, name: str, url: str) -> Path:
    folder.mkdir()
    return write_config(folder, [{"name": name, "url": url}], database=database)


def _rows(database: str, sql: str) -> list[tuple[Any, ...]]:
    if database.startswith("sqlite"):
        with sqlite3.connect(database.removeprefix("sqlite:///")) as conn:
            return conn.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(database.replace("+psycopg", "")) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def _at_once(configs: list[Path], command: str) -> list[tuple[int, str, str]]:
    """`aggregator -c CONFIG COMMAND` for every config, as processes started together."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "aggregator.cli", "-c", str(c), command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for c in configs
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


def test_a_running_instance_joins_copies_that_another_instance_stored(
    tmp_path: Path, httpserver: HTTPServer, database: str
) -> None:
    """A service keeps its dedupe index between polls; a cron `poll` beside it (or another
    host) stores the first copy of a story; the service's next copy must join that story."""
    pages = {
        "/a.xml": _rss([_local("hillside", 1), _local("hillside", 2)]),
        "/b.xml": _rss(
            [(WIRE_TITLE, "http://b.example.org/2026/plan", WIRE_BODY), _local("lakeview", 1)]
        ),
    }
    httpserver.expect_request("/a.xml").respond_with_handler(
        lambda request: Response(pages["/a.xml"], content_type="application/rss+xml")
    )
    httpserver.expect_request("/b.xml").respond_with_handler(
        lambda request: Response(pages["/b.xml"], content_type="application/rss+xml")
    )
    config_a = load_config(
        _instance(tmp_path / "a", database, "Hillside", httpserver.url_for("/a.xml"))
    )
    config_b = _instance(tmp_path / "b", database, "Lakeview", httpserver.url_for("/b.xml"))
    store = open_store(config_a.database)
    service = Poller(config_a, store)  # instance A: long-running, its index loaded once
    try:
        now = lambda: datetime.now(UTC)  # noqa: E731
        assert [r.new for r in service.poll(config_a.sources, now)] == [2]
        cron = subprocess.run(  # instance B, another process: the first copy of the story
            [sys.executable, "-m", "aggregator.cli", "-c", str(config_b), "poll"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cron.returncode == 0, cron.stderr
        assert "ok new=2" in cron.stdout
        pages["/a.xml"] = _rss(
            [
                (f"【Hillside Weekly】{WIRE_TITLE}", "http://a.example.edu/wire/88", WIRE_BODY),
                _local("hillside", 1),
                _local("hillside", 2),
            ]
        )
        assert [r.new for r in service.poll(config_a.sources, now)] == [1]
    finally:
        service.close()
        store.close()
    copies = _rows(
        database,
        f"SELECT source, story_id FROM articles WHERE title LIKE '%{WIRE_TITLE}' ORDER BY source",
    )
    assert [source for source, _ in copies] == ["Hillside", "Lakeview"]
    assert copies[0][1] == copies[1][1], "the copy stored by the service started a new story"
    assert _rows(database, "SELECT count(*) FROM stories") == [(4,)]


def test_two_instances_polling_at_once_store_everything_once(
    tmp_path: Path, httpserver: HTTPServer, database: str
) -> None:
    """Two processes poll the same six sources at the same moment: every article is stored
    once, each reprinted story is one story, and both exit 0."""
    sources = []
    for n in range(6):
        items = [_local(f"site{n}", i) for i in range(4)]
        items.append(
            (
                f"【Site {n}】{WIRE_TITLE}" if n else WIRE_TITLE,
                f"http://site{n}.example.edu/wire",
                WIRE_BODY,
            )
        )
        httpserver.expect_request(f"/{n}.xml").respond_with_data(
            _rss(items), content_type="application/rss+xml"
        )
        sources.append({"name": f"Site {n}", "url": httpserver.url_for(f"/{n}.xml")})
    configs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        configs.append(write_config(tmp_path / name, sources, database=database))
    for code, out, err in _at_once(configs, "poll"):
        assert code == 0, err
        assert "error" not in out, out
    assert _rows(database, "SELECT count(*) FROM articles") == [(30,)]
    assert _rows(database, "SELECT count(*) FROM stories") == [(25,)]
    wire = _rows(
        database, f"SELECT DISTINCT story_id FROM articles WHERE title LIKE '%{WIRE_TITLE}'"
    )
    assert len(wire) == 1
    again = run_cli("-c", str(configs[0]), "poll")
    assert again.code == 0 and "new=0" in again.out
    assert _rows(database, "SELECT count(*) FROM articles") == [(30,)]


def _digest_instances(
    tmp_path: Path, httpserver: HTTPServer, database: str, port: int, **extra: Any
) -> list[Path]:
    """Two instances with the same sources and digest on one database, polled once."""
    httpserver.expect_request("/news.xml").respond_with_data(
        _rss([_local("riverside", n) for n in range(3)]), content_type="application/rss+xml"
    )
    digest = {
        "schedule": "0 7 * * *",
        "timezone": "Asia/Shanghai",
        "sender": "News Desk <digest@example.org>",
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "timeout": "5s"},
        "recipients": [{"address": "office@example.org"}, {"address": "lab@example.org"}],
        **extra,
    }
    configs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        source = {"name": "Riverside", "url": httpserver.url_for("/news.xml")}
        configs.append(write_config(tmp_path / name, [source], database=database, digest=digest))
    assert run_cli("-c", str(configs[0]), "poll").code == 0
    return configs


def test_two_instances_sending_the_digest_at_once_send_each_recipient_one(
    tmp_path: Path, httpserver: HTTPServer, database: str, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    configs = _digest_instances(tmp_path, httpserver, database, port)
    outputs = _at_once(configs, "digest")
    assert [code for code, _, _ in outputs] == [0, 0], outputs
    assert sorted(str(m["To"]) for m in inbox.messages) == ["lab@example.org", "office@example.org"]
    said = "".join(out for _, out, _ in outputs)
    assert said.count("sent 3 stories") == 2, said
    assert _rows(database, "SELECT count(*) FROM deliveries") == [(6,)]


def test_a_claimed_digest_is_left_to_its_instance_until_the_claim_ends(
    tmp_path: Path, httpserver: HTTPServer, database: str, smtp: tuple[Inbox, int]
) -> None:
    """Another instance is sending office@'s digest: this one sends lab@'s only. A claim of
    a process on this host that was killed mid-send is taken over at once; one from another
    host is waited out, or taken once it has run out."""
    inbox, port = smtp
    configs = _digest_instances(tmp_path, httpserver, database, port)
    now = datetime.now(UTC)
    later = now + timedelta(minutes=5)
    dead = subprocess.Popen(["true"])
    dead.wait()
    store = open_store(database)
    try:
        with store.transaction() as tx:
            assert tx.claim_digest("office@example.org", now, later, "other-host:4242") is None
        busy = run_cli("-c", str(configs[1]), "digest")
        assert busy.code == 0, busy.err
        assert "office@example.org: another instance is sending this digest" in busy.out
        assert [str(m["To"]) for m in inbox.messages] == ["lab@example.org"]
        with store.transaction() as tx:  # still held: another claimant waits too
            assert tx.claim_digest("office@example.org", now, later, "third:1") == later
            tx.release_digest("office@example.org")
            killed = f"{socket.gethostname()}:{dead.pid}"
            assert tx.claim_digest("office@example.org", now, later, killed) is None
    finally:
        store.close()
    taken_over = run_cli("-c", str(configs[1]), "digest")
    assert "office@example.org: sent 3 stories" in taken_over.out, taken_over.out
    again = run_cli("-c", str(configs[0]), "digest")
    assert again.out.strip() == "nothing new for any recipient"
    assert sorted(str(m["To"]) for m in inbox.messages) == ["lab@example.org", "office@example.org"]
    store = open_store(database)
    try:
        with store.transaction() as tx:  # a claim that has run out is anyone's
            assert (
                tx.claim_digest("lab@example.org", now, now - timedelta(seconds=1), "a:1") is None
            )
            assert tx.claim_digest("lab@example.org", now, later, "b:2") is None
    finally:
        store.close()


def test_an_empty_digest_goes_out_once_a_period(
    tmp_path: Path, httpserver: HTTPServer, database: str, smtp: tuple[Inbox, int]
) -> None:
    """With `skip_empty: false` a second run (another instance's, or a manual one) in the
    same period sends no second, empty message."""
    inbox, port = smtp
    configs = _digest_instances(tmp_path, httpserver, database, port, skip_empty=False)
    assert run_cli("-c", str(configs[0]), "digest").code == 0
    assert len(inbox.messages) == 2
    second = run_cli("-c", str(configs[1]), "digest")
    assert second.code == 0 and second.out.strip() == "nothing new for any recipient"
    assert len(inbox.messages) == 2
