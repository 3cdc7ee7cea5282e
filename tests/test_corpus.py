"""The feedparser sample corpus through fetch -> parse -> normalize -> Atom: every sample
yields well-formed Atom or a clear source error, never a crash."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.config import OutputConfig, PollConfig, SourceConfig
from aggregator.errors import SourceError
from aggregator.fetch import fetch, make_session
from aggregator.model import StoredArticle, Story
from aggregator.normalize import normalize
from aggregator.outputs.atom import render_atom
from aggregator.parse.feed import parse_feed
from aggregator.parse.tuning import _SLOW_LOOKUPS

from .conftest import ROOT

CORPUS = ROOT.parent / "shared" / "corpus" / "feedparser" / "tests"
HEADER = re.compile(rb"^Header:\s*([\w-]+):\s*(.*?)\s*$", re.M)


def _response(path: Path, port: int) -> Response:
    body = path.read_bytes()
    headers = {"Content-Type": "application/xml"}
    status = 200
    if path.suffix == ".gz":
        headers["Content-Encoding"] = "gzip"
    elif path.suffix == ".z":
        headers["Content-Encoding"] = "deflate"
    else:
        for name, value in HEADER.findall(body[:2000]):
            key, text = (
                name.decode(),
                value.decode("latin-1").replace("localhost:8097", f"127.0.0.1:{port}"),
            )
            if key.lower() == "status":
                status = int(text)
            else:
                headers[key] = text
    return Response(body, status=status, headers=headers)


@pytest.mark.skipif(
    not CORPUS.is_dir(), reason="shared/corpus is not checked out beside the project"
)
def test_every_corpus_sample_parses_or_fails_clearly(httpserver: HTTPServer) -> None:
    port = httpserver.port

    def handler(request: Request) -> Response:
        path = (CORPUS.parent / request.path.lstrip("/")).resolve()
        if not path.is_file() or CORPUS.parent.resolve() not in path.parents:
            return Response("not found", status=404)
        return _response(path, port)

    httpserver.expect_request(re.compile(".*")).respond_with_handler(handler)
    poll = PollConfig(timeout=timedelta(seconds=5))
    session = make_session(poll)
    now = datetime(2026, 11, 29, tzinfo=UTC)
    output = OutputConfig()
    samples = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    assert len(samples) > 2000
    parsed = errors = entries = 0
    for sample in samples:
        url = httpserver.url_for("/" + str(sample.relative_to(CORPUS.parent)))
        source = SourceConfig(name=sample.name, url=url)
        try:
            fetched = fetch(session, url, source=source.name, poll=poll)
            result = parse_feed(
                fetched.body,
                fetched.headers,
                fetched.final_url,
                source=source.name,
                tz=ZoneInfo("UTC"),
                now=now,
            )
        except SourceError as exc:
            assert exc.reason, sample
            errors += 1
            continue
        parsed += 1
        articles = [a for a in (normalize(i, source, [], now) for i in result.items) if a]
        stories = [
            Story(
                id=n,
                uid=f"00000000-0000-4000-8000-{n:012d}",
                first_seen=now,
                updated=now + timedelta(microseconds=n),
                published=a.published,
                copies=(StoredArticle(n, n, a, now, now + timedelta(microseconds=n)),),
            )
            for n, a in enumerate(articles, 1)
        ]
        entries += len(stories)
        document = render_atom(stories, output, {source.name: url}, now)
        root = etree.fromstring(document)  # well-formed, or this raises and names the sample
        assert len(root.findall("{http://www.w3.org/2005/Atom}entry")) == len(stories), sample
    session.close()
    print(
        f"corpus: {len(samples)} samples, {parsed} parsed ({entries} entries), {errors} clear source errors"
    )
    assert parsed > 1500


def _feedparser_result(body: bytes) -> object:
    """What feedparser makes of a body, as parse/feed.py calls it (exceptions as text)."""
    import feedparser

    result = feedparser.parse(io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False)
    return (
        result.get("feed"),
        result.get("entries"),
        result.get("version"),
        result.get("bozo"),
        repr(result.get("bozo_exception")),
    )


@pytest.mark.skipif(
    not CORPUS.is_dir(), reason="shared/corpus is not checked out beside the project"
)
def test_feedparser_speed_ups_change_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """parse/feed.py gives feedparser a text-buffering expat reader, a direct deepcopy of its
    dicts, plain keys looked up in C and a cache for base URI resolution: every corpus sample
    must parse exactly as with feedparser's own."""
    import feedparser.api
    import feedparser.mixin
    import feedparser.urls
    import feedparser.util

    assert feedparser.api.PREFERRED_XML_PARSERS == ["aggregator.parse.tuning"]
    assert "__deepcopy__" in vars(feedparser.util.FeedParserDict)
    samples = sorted(p for p in CORPUS.rglob("*.xml") if p.is_file())
    assert len(samples) > 1500
    bodies = [p.read_bytes() for p in samples]
    fast = [_feedparser_result(body) for body in bodies]
    monkeypatch.setattr(feedparser.api, "PREFERRED_XML_PARSERS", ["xml.sax.expatreader"])
    monkeypatch.delattr(feedparser.util.FeedParserDict, "__deepcopy__")
    assert set(_SLOW_LOOKUPS) == {"get", "__contains__", "__getitem__"}
    for name, method in _SLOW_LOOKUPS.items():
        monkeypatch.setattr(feedparser.util.FeedParserDict, name, method)
    monkeypatch.setattr(feedparser.util.FeedParserDict, "has_key", _SLOW_LOOKUPS["__contains__"])
    monkeypatch.setattr(
        feedparser.mixin, "make_safe_absolute_uri", feedparser.urls.make_safe_absolute_uri
    )
    plain = [_feedparser_result(body) for body in bodies]
    differ = [str(p) for p, a, b in zip(samples, fast, plain, strict=True) if a != b]
    assert not differ, differ[:5]
    assert sum(1 for result in fast if result[1]) > 1000  # samples with entries


def _outcome(call: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "value", call(*args)
    except Exception as exc:
        return "raises", type(exc)


@pytest.mark.skipif(
    not CORPUS.is_dir(), reason="shared/corpus is not checked out beside the project"
)
def test_feedparser_dict_lookups_answer_as_feedparsers_own() -> None:
    """The C lookups for plain keys: every key, mapped, computed or plain, present or not,
    gets the answer (or the exception) feedparser's own methods give."""
    import feedparser
    from feedparser.util import FeedParserDict

    dicts: list[Any] = [
        FeedParserDict(tags=[]),
        FeedParserDict(links=[{"rel": "alternate", "href": "http://a/"}]),
        FeedParserDict(published="x", published_parsed=(2026,)),
        FeedParserDict(summary="s", subtitle_detail={"type": "text/plain"}),
    ]
    for sample in sorted(CORPUS.rglob("*.xml"))[::10]:
        result = feedparser.parse(io.BytesIO(sample.read_bytes()))
        dicts += [result.get("feed", FeedParserDict()), *result.get("entries", [])]
    assert len(dicts) > 200
    probes = {"nothing", *FeedParserDict.keymap, "category", "enclosures", "license"}
    probes |= {"updated", "updated_parsed"}
    for d in dicts:
        for key in probes | set(d):
            for name in ("get", "__contains__", "__getitem__"):
                fast = getattr(FeedParserDict, name)
                slow = _SLOW_LOOKUPS[name]
                assert _outcome(fast, d, key) == _outcome(slow, d, key), (name, key, d)
