"""Issue 4, measured: the labelled corpus polled through the real pipeline (feeds served on
127.0.0.1); pairwise precision, recall and F1 of the story grouping read from the Atom output."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from html import escape
from itertools import combinations
from pathlib import Path

import pytest
from lxml import etree
from pytest_httpserver import HTTPServer

from aggregator.normalize import canonical_url

from .conftest import DATA, run_cli, write_config

CORPUS = DATA / "dedupe"
ATOM = "{http://www.w3.org/2005/Atom}"


def _rss(articles: list[dict]) -> str:
    items = []
    for a in articles:
        parts = [
            f"<title>{escape(a['title'])}</title>",
            f"<link>{escape(a['link'])}</link>",
            f"<pubDate>{a['published']}</pubDate>",
        ]
        if a.get("guid"):
            parts.append(f'<guid isPermaLink="false">{escape(a["guid"])}</guid>')
        if a.get("summary"):
            parts.append(f"<description>{escape(a['summary'])}</description>")
        if a.get("content"):
            parts.append(f"<content:encoded>{escape(a['content'])}</content:encoded>")
        items.append("<item>" + "".join(parts) + "</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
        + "".join(items)
        + "</channel></rss>"
    )


def _pairs(groups: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for members in groups.values() for p in combinations(members, 2)}  # type: ignore[misc]


ARTICLES = [
    json.loads(line) for line in (CORPUS / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
]


@pytest.fixture(scope="module")
def polled(tmp_path_factory: pytest.TempPathFactory, make_httpserver: HTTPServer) -> Path:
    """The corpus polled once through the real pipeline; returns the config path."""
    tmp_path = tmp_path_factory.mktemp("corpus")
    httpserver = make_httpserver
    httpserver.clear()  # the server is shared by the session: drop other tests' handlers
    articles = ARTICLES
    sources = json.loads((CORPUS / "sources.json").read_text(encoding="utf-8"))
    by_source: dict[str, list[dict]] = defaultdict(list)
    for article in articles:
        by_source[article["source"]].append(article)
    config_sources = []
    for number, source in enumerate(sources):
        path = f"/corpus/{number}"
        httpserver.expect_request(path).respond_with_data(
            _rss(by_source[source["name"]]), content_type="application/rss+xml"
        )
        config_sources.append(
            {
                "name": source["name"],
                "url": httpserver.url_for(path),
                "priority": source["priority"],
            }
        )
    config = write_config(tmp_path, config_sources, output={"max_entries": 2000})
    result = run_cli("-c", str(config), "poll")
    assert result.code == 0 and "error" not in result.out, result.out
    return config


def test_corpus_grouping_quality(polled: Path) -> None:
    articles, tmp_path = ARTICLES, polled.parent

    by_link = {canonical_url(a["link"]): a for a in articles}
    doc = etree.parse(str(tmp_path / "public" / "feed.atom"))
    predicted: dict[str, set[str]] = {}
    for entry in doc.getroot().findall(f"{ATOM}entry"):
        links = [
            lk.get("href")
            for lk in entry.findall(f"{ATOM}link")
            if lk.get("rel") in (None, "related")
        ]
        predicted[entry.findtext(f"{ATOM}id")] = {by_link[canonical_url(h)]["id"] for h in links}
    seen = [i for members in predicted.values() for i in members]
    assert sorted(seen) == sorted(a["id"] for a in articles), (
        "every article exactly once in the feed"
    )

    truth: dict[str, set[str]] = defaultdict(set)
    for article in articles:
        truth[article["story"]].add(article["id"])
    got, want = _pairs(predicted), _pairs(truth)
    precision = len(got & want) / len(got) if got else 1.0
    recall = len(got & want) / len(want)
    f1 = 2 * precision * recall / (precision + recall)
    story_of = {a["id"]: a["story"] for a in articles}
    group_of = {a["id"]: a["negative_group"] for a in articles}
    merged_negatives = sorted(
        (a, b)
        for a, b in got - want
        if group_of[a] and group_of[a] == group_of[b] and story_of[a] != story_of[b]
    )
    print(
        f"\ndedupe corpus: {len(articles)} articles, {len(truth)} stories, {len(predicted)} entries; "
        f"pairwise precision={precision:.4f} recall={recall:.4f} F1={f1:.4f}; "
        f"hard negatives merged={len(merged_negatives)}"
    )
    missed = sorted(want - got)[:10]
    wrong = sorted(got - want)[:10]
    assert not merged_negatives, merged_negatives
    assert f1 >= 0.97, f"missed pairs {missed}, wrong pairs {wrong}"


def _pair(condition: str) -> tuple[dict, dict]:
    by_story: dict[str, list[dict]] = defaultdict(list)
    for article in ARTICLES:
        by_story[article["story"]].append(article)
    if condition == "same":
        story = next(v for v in by_story.values() if len(v) >= 2 and v[1]["variation"] == "prefix")
        return story[0], story[1]
    groups: dict[str, list[dict]] = defaultdict(list)
    for article in ARTICLES:
        if article["negative_group"] and article["variation"] == "original":
            groups[article["negative_group"]].append(article)
    family = next(v for v in groups.values() if len(v) >= 2)
    return family[0], family[1]


def test_explain_says_why(polled: Path) -> None:
    a, b = _pair("same")
    same = run_cli("-c", str(polled), "explain", a["link"], b["link"])
    assert same.code == 0, same.err
    assert "stored as ONE story" in same.out and "matcher says: same story" in same.out
    assert re.search(r"stage=\S+ score=\d\.\d{3}", same.out)
    a, b = _pair("negative")
    apart = run_cli("-c", str(polled), "explain", a["link"], b["link"])
    assert "stored as TWO stories" in apart.out and "matcher says: different stories" in apart.out
    missing = run_cli("-c", str(polled), "explain", "http://nowhere.example.org/x", b["link"])
    assert missing.code == 2 and "no stored article" in missing.err


def test_stories_lists_copies(polled: Path) -> None:
    result = run_cli("-c", str(polled), "stories", "--limit", "200")
    assert result.code == 0
    lines = result.out.splitlines()
    heads = [line for line in lines if not line.startswith("    ")]
    copies = [line for line in lines if line.startswith("    ")]
    with sqlite3.connect(polled.parent / "data" / "test.db") as conn:
        stored = conn.execute("select count(*) from stories").fetchone()[0]
    assert len(heads) == stored
    assert sum(1 for line in copies if line.startswith("    * ")) == len(
        heads
    )  # one preferred each
    assert len(copies) > len(heads)
