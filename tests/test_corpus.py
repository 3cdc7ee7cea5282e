"""The feedparser sample corpus through fetch -> parse -> normalize -> Atom: every sample
yields well-formed Atom or a clear source error, never a crash."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
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
