"""Issue 4, measured: the labelled corpus polled through the real pipeline (feeds served on
127.0.0.1); pairwise precision, recall and F1 of the story grouping read from the Atom output."""

from __future__ import annotations

import json
from collections import defaultdict
from html import escape
from itertools import combinations
from pathlib import Path

from lxml import etree
from pytest_httpserver import HTTPServer

from aggregator.normalize import canonical_url

from .conftest import DATA, run_cli, write_config

CORPUS = DATA / "dedupe"
ATOM = "{http://www.w3.org/2005/Atom}"


def _rss(articles: list[dict]) -> str:
    items = []
    for a in articles:
        parts = [f"<title>{escape(a['title'])}</title>", f"<link>{escape(a['link'])}</link>",
                 f"<pubDate>{a['published']}</pubDate>"]
        if a.get("guid"):
            parts.append(f'<guid isPermaLink="false">{escape(a["guid"])}</guid>')
        if a.get("summary"):
            parts.append(f"<description>{escape(a['summary'])}</description>")
        if a.get("content"):
            parts.append(f"<content:encoded>{escape(a['content'])}</content:encoded>")
        items.append("<item>" + "".join(parts) + "</item>")
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
            + "".join(items) + "</channel></rss>")


def _pairs(groups: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for members in groups.values() for p in combinations(members, 2)}  # type: ignore[misc]


def test_corpus_grouping_quality(tmp_path: Path, httpserver: HTTPServer) -> None:
    articles = [json.loads(line) for line in (CORPUS / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    sources = json.loads((CORPUS / "sources.json").read_text(encoding="utf-8"))
    by_source: dict[str, list[dict]] = defaultdict(list)
    for article in articles:
        by_source[article["source"]].append(article)
    config_sources = []
    for number, source in enumerate(sources):
        path = f"/feed/{number}"
        httpserver.expect_request(path).respond_with_data(_rss(by_source[source["name"]]),
                                                          content_type="application/rss+xml")
        config_sources.append({"name": source["name"], "url": httpserver.url_for(path),
                               "priority": source["priority"]})
    config = write_config(tmp_path, config_sources, output={"max_entries": 2000})
    result = run_cli("-c", str(config), "poll")
    assert result.code == 0 and "error" not in result.out, result.out

    by_link = {canonical_url(a["link"]): a for a in articles}
    doc = etree.parse(str(tmp_path / "public" / "feed.atom"))
    predicted: dict[str, set[str]] = {}
    for entry in doc.getroot().findall(f"{ATOM}entry"):
        links = [lk.get("href") for lk in entry.findall(f"{ATOM}link") if lk.get("rel") in (None, "related")]
        predicted[entry.findtext(f"{ATOM}id")] = {by_link[canonical_url(h)]["id"] for h in links}
    seen = [i for members in predicted.values() for i in members]
    assert sorted(seen) == sorted(a["id"] for a in articles), "every article exactly once in the feed"

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
        (a, b) for a, b in got - want if group_of[a] and group_of[a] == group_of[b] and story_of[a] != story_of[b]
    )
    print(f"\ndedupe corpus: {len(articles)} articles, {len(truth)} stories, {len(predicted)} entries; "
          f"pairwise precision={precision:.4f} recall={recall:.4f} F1={f1:.4f}; "
          f"hard negatives merged={len(merged_negatives)}")
    missed = sorted(want - got)[:10]
    wrong = sorted(got - want)[:10]
    assert not merged_negatives, merged_negatives
    assert f1 >= 0.97, f"missed pairs {missed}, wrong pairs {wrong}"
