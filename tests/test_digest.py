"""Issue 5: the daily digest, against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import re
import sqlite3
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pytest_httpserver import HTTPServer

from aggregator.config import DigestConfig
from aggregator.digest import cron_trigger, missed_run, previous_fire

from .conftest import DATA, FEEDS, Inbox, free_port, run_cli, write_config

GOLDEN = DATA / "digest" / "golden.txt"


def digest_section(port: int, **extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "schedule": "0 7 * * *",
        "timezone": "Asia/Shanghai",
        "subject": "{title} · {date} · {count} 条",
        "sender": "教育新闻 <digest@example.org>",
        "group_by": "tag",
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "timeout": "5s"},
        "recipients": [
            {"address": "office@example.org"},
            {"address": "research@example.org", "tags": ["职业教育"]},
        ],
    }
    section.update(extra)
    return section


DATED_RSS = (
    (FEEDS / "rss20.xml")
    .read_text()
    .replace(
        "<title>Winter concert schedule</title>",
        "<title>Winter concert schedule</title><pubDate>Wed, 25 Nov 2026 12:00:00 GMT</pubDate>",
    )
)


def setup(tmp_path: Path, httpserver: HTTPServer, port: int, **extra: Any) -> Path:
    httpserver.expect_request("/rss").respond_with_data(
        DATED_RSS, content_type="application/rss+xml"
    )
    httpserver.expect_request("/cn").respond_with_data(
        (FEEDS / "chinese_dates.xml").read_bytes(), content_type="application/rss+xml"
    )
    config = write_config(
        tmp_path,
        [
            {"name": "Riverbend", "url": httpserver.url_for("/rss"), "tags": ["K-12"]},
            {"name": "某某学院", "url": httpserver.url_for("/cn"), "tags": ["职业教育"]},
        ],
        digest=digest_section(port, **extra),
    )
    assert run_cli("-c", str(config), "poll").code == 0
    return config


def text_part(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def ledger(tmp_path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(tmp_path / "data" / "test.db") as conn:
        return conn.execute(
            "select recipient, count(*) from deliveries group by recipient order by 1"
        ).fetchall()


ALL_TITLES = [
    "Riverbend opens a maker lab & robotics club",
    "School board approves new literacy plan",
    "Winter concert schedule",
    "【学院新闻】我院举办智能制造技能大赛",
    "我院与本地企业签署校企合作协议",
]


def test_digest_is_sent_once_per_story_with_filters(
    tmp_path: Path, httpserver: HTTPServer, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    config = setup(tmp_path, httpserver, port)
    result = run_cli("-c", str(config), "digest")
    assert result.code == 0, result.err
    assert "office@example.org: sent 5 stories" in result.out
    assert "research@example.org: sent 2 stories" in result.out
    by_rcpt = {m["To"]: m for m in inbox.messages}
    assert set(by_rcpt) == {"office@example.org", "research@example.org"}
    office = by_rcpt["office@example.org"]
    assert office.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in office.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in office.iter_parts())
    assert re.fullmatch(r"Test News · \d{4}-\d\d-\d\d · 5 条", office["Subject"])
    raw = inbox.envelopes[0].content.decode("ascii")  # 7-bit on the wire: RFC 2047 for Chinese
    assert "=?utf-8?" in raw.lower()
    assert office["From"].addresses[0].display_name == "教育新闻"
    assert office["From"].addresses[0].addr_spec == "digest@example.org"
    assert re.fullmatch(r"<digest\.[0-9a-f]{32}@example\.org>", office["Message-ID"])
    assert (
        office["Date"]
        and office["List-Unsubscribe"] == "<mailto:digest@example.org?subject=unsubscribe>"
    )
    text, html = text_part(office), html_part(office)
    for title in ALL_TITLES:
        assert text.count(title) == 1, title
    assert "style=" in html and "<style" not in html  # CSS inlined for mail clients
    assert html.count('class="story"') == 5
    research = text_part(by_rcpt["research@example.org"])
    assert "我院与本地企业签署校企合作协议" in research and "Winter concert" not in research
    assert ledger(tmp_path) == [("office@example.org", 5), ("research@example.org", 2)]

    again = run_cli("-c", str(config), "digest")
    assert again.code == 0 and "nothing new for any recipient" in again.out
    assert len(inbox.messages) == 2


def test_refused_or_dropped_send_marks_nothing_and_is_retried(
    tmp_path: Path, httpserver: HTTPServer, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    config = setup(tmp_path, httpserver, port)
    inbox.mode = "reject"
    failed = run_cli("-c", str(config), "digest", "--recipient", "office@example.org")
    assert failed.code == 1
    assert "office@example.org: error: SMTP 554 5.7.1 Message rejected by policy" in failed.out
    assert ledger(tmp_path) == []
    inbox.mode = "drop"
    dropped = run_cli("-c", str(config), "digest", "--recipient", "office@example.org")
    assert dropped.code == 1 and ledger(tmp_path) == []
    inbox.mode = "accept"
    delivered = run_cli("-c", str(config), "digest", "--recipient", "office@example.org")
    assert delivered.code == 0 and "sent 5 stories" in delivered.out
    assert ledger(tmp_path) == [("office@example.org", 5)]
    assert len(inbox.messages) == 1


def test_connection_refused_is_reported(tmp_path: Path, httpserver: HTTPServer) -> None:
    config = setup(tmp_path, httpserver, free_port())
    result = run_cli("-c", str(config), "digest")
    assert result.code == 1 and "error: connection refused" in result.out
    assert ledger(tmp_path) == []


def test_dry_run_and_out_write_eml_without_marking(
    tmp_path: Path, httpserver: HTTPServer, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    config = setup(tmp_path, httpserver, port)
    out = tmp_path / "eml"
    result = run_cli("-c", str(config), "digest", "--dry-run", "--out", str(out))
    assert result.code == 0
    assert "office@example.org: 5 stories (dry run: not sent, not marked)" in result.out
    files = sorted(p.name for p in out.glob("*.eml"))
    assert len(files) == 2 and files[0].startswith("office_at_example.org-")
    saved = email.message_from_bytes((out / files[0]).read_bytes(), policy=email.policy.default)
    assert "Winter concert schedule" in text_part(saved)  # type: ignore[arg-type]
    assert inbox.messages == [] and ledger(tmp_path) == []
    unknown = run_cli("-c", str(config), "digest", "--recipient", "nobody@example.org")
    assert unknown.code == 2 and "not a configured recipient" in unknown.err


def test_new_stories_after_a_digest_go_in_the_next_one_only(
    tmp_path: Path, httpserver: HTTPServer, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    config = setup(tmp_path, httpserver, port, recipients=[{"address": "office@example.org"}])
    assert run_cli("-c", str(config), "digest").code == 0
    httpserver.clear()
    body = (
        (FEEDS / "rss20.xml")
        .read_text()
        .replace(
            "<item>",
            "<item><title>Late story with an old date</title><link>http://riverbend.example.org/late</link>"
            "<pubDate>Mon, 02 Nov 2026 08:00:00 GMT</pubDate><description>Arrived late.</description></item><item>",
            1,
        )
    )
    httpserver.expect_request("/rss").respond_with_data(body, content_type="application/rss+xml")
    httpserver.expect_request("/cn").respond_with_data((FEEDS / "chinese_dates.xml").read_bytes())
    assert "new=1" in run_cli("-c", str(config), "poll").out
    assert run_cli("-c", str(config), "digest").code == 0
    assert len(inbox.messages) == 2
    second = text_part(inbox.messages[1])
    assert "Late story with an old date" in second and "Winter concert" not in second


def test_max_stories_and_grouping(
    tmp_path: Path, httpserver: HTTPServer, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    config = setup(
        tmp_path,
        httpserver,
        port,
        max_stories=3,
        group_by="source",
        recipients=[{"address": "office@example.org"}],
    )
    assert run_cli("-c", str(config), "digest").code == 0
    text = text_part(inbox.messages[0])
    assert "还有 2 条，见订阅源：http://127.0.0.1:8080/feed.atom" in text
    assert sum(text.count(t) for t in ALL_TITLES) == 3
    assert ("## Riverbend" in text) != ("## 某某学院" in text) or (
        "## Riverbend" in text and "## 某某学院" in text
    )
    assert ledger(tmp_path) == [("office@example.org", 5)]  # the "more" ones count as delivered


def test_starttls_with_auth(tmp_path: Path, httpserver: HTTPServer) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_context = (
        cert.ssl_context_for_ssl_module() if hasattr(cert, "ssl_context_for_ssl_module") else None
    )
    import ssl

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    seen: list[tuple[str, str]] = []

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        seen.append((data.login.decode(), data.password.decode()))
        ok = data.login == b"digest@example.org" and data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)

    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        smtp_section = {
            "host": "127.0.0.1",
            "port": port,
            "security": "starttls",
            "timeout": "5s",
            "username": "digest@example.org",
            "password": "${SMTP_PASSWORD}",
            "ca_file": str(ca_file),
        }
        import os

        os.environ["SMTP_PASSWORD"] = "wrong"
        config = setup(
            tmp_path,
            httpserver,
            port,
            smtp=smtp_section,
            recipients=[{"address": "office@example.org"}],
        )
        bad = run_cli("-c", str(config), "digest")
        assert bad.code == 1 and "SMTP 535" in bad.out and "wrong" not in bad.out + bad.err
        os.environ["SMTP_PASSWORD"] = "s3cret"
        good = run_cli("-c", str(config), "digest")
        assert good.code == 0, good.out + good.err
        assert len(inbox.messages) == 1 and seen[-1] == ("digest@example.org", "s3cret")
    finally:
        os.environ.pop("SMTP_PASSWORD", None)
        controller.stop()


def test_golden_text_part(tmp_path: Path, httpserver: HTTPServer, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    config = setup(tmp_path, httpserver, port, recipients=[{"address": "office@example.org"}])
    assert run_cli("-c", str(config), "digest").code == 0
    text = text_part(inbox.messages[0]).replace("\r\n", "\n")
    scrubbed = re.sub(r"\d{4}-\d\d-\d\d · 5", "DATE · 5", text, count=1)  # the digest's own date
    assert scrubbed == GOLDEN.read_text(encoding="utf-8")


def test_cron_trigger_fires_at_local_time() -> None:
    digest = DigestConfig(schedule="0 7 * * *", timezone="Asia/Shanghai")
    now = datetime(2026, 11, 29, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai
    fire = cron_trigger(digest).get_next_fire_time(None, now)
    assert fire is not None and fire.isoformat() == "2026-11-30T07:00:00+08:00"
    assert previous_fire(digest, now) == datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    # missed while down: sent once at start-up, not again once it ran
    assert missed_run(digest, None, now)
    assert missed_run(digest, datetime(2026, 11, 28, 22, 0, tzinfo=UTC), now)
    assert not missed_run(digest, datetime(2026, 11, 28, 23, 0, 5, tzinfo=UTC), now)
    # crontab weekdays: 0 and 7 are Sunday, 1-5 Monday to Friday (APScheduler 3 differs)
    weekdays = DigestConfig(schedule="0 7 * * 1-5", timezone="Asia/Shanghai")
    saturday = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    assert (
        cron_trigger(weekdays).get_next_fire_time(None, saturday).isoformat()
        == "2026-11-30T07:00:00+08:00"
    )
    sunday = DigestConfig(schedule="30 8 * * 0", timezone="UTC")
    assert (
        cron_trigger(sunday).get_next_fire_time(None, saturday).isoformat()
        == "2026-11-29T08:30:00+00:00"
    )
    # more than a day late (a Monday digest, the service back on Wednesday): not made up
    weekly = DigestConfig(schedule="0 7 * * 1", timezone="Asia/Shanghai")
    assert missed_run(weekly, None, datetime(2026, 11, 23, 6, 0, tzinfo=UTC))
    assert not missed_run(weekly, None, datetime(2026, 11, 25, 6, 0, tzinfo=UTC))


def test_templates_can_be_overridden_and_dead_sources_are_reported(
    tmp_path: Path, httpserver: HTTPServer, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    folder = tmp_path / "mytemplates"
    folder.mkdir()
    (folder / "digest.txt").write_text(
        "OUR OFFICE DIGEST {{ count }}\n{% for g in groups %}{% for s in g.stories %}"
        "- {{ s.preferred.article.title }}\n{% endfor %}{% endfor %}"
        "{% for name, since in failing %}FAILING: {{ name }}\n{% endfor %}",
        encoding="utf-8",
    )
    config = setup(
        tmp_path,
        httpserver,
        port,
        templates=str(folder),
        recipients=[{"address": "office@example.org"}],
    )
    with sqlite3.connect(tmp_path / "data" / "test.db") as conn:  # a source failing for 4 days
        conn.execute(
            "update sources set failing_since = datetime('now', '-4 days'), last_status = 'error' "
            "where name = 'Riverbend'"
        )
    assert run_cli("-c", str(config), "digest").code == 0
    text = text_part(inbox.messages[0])
    assert text.startswith("OUR OFFICE DIGEST 5")
    assert "FAILING: Riverbend" in text
    html = html_part(inbox.messages[0])  # not overridden: the built-in HTML, with the footer
    assert "1 个来源持续失败" in html or "1 sources have been failing" in html
