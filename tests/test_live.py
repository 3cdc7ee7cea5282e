"""Issue 6: live config reload, metrics, and SIGKILL during digest delivery."""

from __future__ import annotations

import asyncio
import email
import email.policy
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
import yaml
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer

from .conftest import FEEDS, free_port, run_cli, write_config
from .test_service import wait_for


def test_config_reload_adds_removes_and_rejects(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data((FEEDS / "atom10.xml").read_bytes())
    httpserver.expect_request("/b").respond_with_data((FEEDS / "rss10.rdf").read_bytes())
    port = free_port()
    config = write_config(
        tmp_path,
        [{"name": "A", "url": httpserver.url_for("/a")}],
        server={"host": "127.0.0.1", "port": port},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "aggregator.cli", "-c", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: requests.get(f"{base}/healthz", timeout=2).json()["sources"][0]["last_success"]
        )
        data = yaml.safe_load(config.read_text())
        data["sources"] = [{"name": "B", "url": httpserver.url_for("/b")}]  # A removed, B added
        config.write_text(yaml.safe_dump(data, allow_unicode=True))

        def b_polled() -> dict[str, Any] | None:
            health = requests.get(f"{base}/healthz", timeout=2).json()
            names = [s["name"] for s in health["sources"]]
            return health if names == ["B"] and health["sources"][0]["last_success"] else None

        wait_for(b_polled)
        feed = wait_for(
            lambda: (
                (r := requests.get(f"{base}/feed.atom", timeout=2)).content.count(b"<entry>") == 3
                and r
            )
        )
        assert (
            b"Reading week starts" in feed.content and b"Lakeside wins" in feed.content
        )  # A's stay
        listing = {
            r["name"]: r["status"]
            for r in __import__("json").loads(run_cli("-c", str(config), "sources", "--json").out)
        }
        assert listing["A"] == "removed"

        config.write_text(
            config.read_text() + "\nbogus_key: 1\n"
        )  # invalid: rejected, old one runs
        health = wait_for(
            lambda: (
                (h := requests.get(f"{base}/healthz", timeout=2).json()).get("config_error") and h
            )
        )
        assert health["status"] == "degraded" and "bogus_key" in health["config_error"]
        assert [s["name"] for s in health["sources"]] == ["B"]

        metrics = requests.get(f"{base}/metrics", timeout=2).text
        assert 'aggregator_polls_total{outcome="ok",source="A"}' in metrics
        assert "aggregator_fetch_duration_seconds_bucket" in metrics
        assert "aggregator_stories 3.0" in metrics

        config.write_text(yaml.safe_dump(data, allow_unicode=True))  # fixed again, then SIGHUP
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "config_error" not in requests.get(f"{base}/healthz", timeout=2).json())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


class SlowInbox:
    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []  # (recipient, message id)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.05)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((envelope.rcpt_tos[0], message["Message-ID"]))
        return "250 OK"


def test_sigkill_during_digest_loses_no_story(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/rss").respond_with_data((FEEDS / "rss20.xml").read_bytes())
    inbox = SlowInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    recipients = [f"reader{n:02d}@example.org" for n in range(80)]
    config = write_config(
        tmp_path,
        [{"name": "R", "url": httpserver.url_for("/rss")}],
        digest={
            "smtp": {"host": "127.0.0.1", "port": port},
            "recipients": [{"address": a} for a in recipients],
        },
    )
    try:
        assert run_cli("-c", str(config), "poll").code == 0
        command = [sys.executable, "-m", "aggregator.cli", "-c", str(config), "digest"]
        rng = random.Random(5)
        kills = 0
        for _ in range(8):
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(1.0, 2.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
        final = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stdout + final.stderr
    finally:
        controller.stop()
    per_recipient = Counter(r for r, _ in inbox.received)
    assert set(per_recipient) == set(recipients), "every recipient got the digest"
    repeats = sum(n - 1 for n in per_recipient.values())
    assert repeats <= kills, "at most the one in-flight message per kill is repeated"
    with sqlite3.connect(tmp_path / "data" / "test.db") as conn:
        marked = dict(
            conn.execute("select recipient, count(*) from deliveries group by recipient").fetchall()
        )
    assert marked == {a: 3 for a in recipients}
    assert kills >= 3
