"""Property-based tests (hypothesis): arbitrary bytes and text through parse -> normalize ->
Atom. Whatever a source sends, the only acceptable failure is a `SourceError` from parsing;
normalize and the Atom writer never raise, the document is always well-formed XML with one
entry per story, and what readers see holds: titles are short single-line text, content has
no scripts, event handlers or `javascript:` links, every entry link is absolute http(s).

Every test is pure (no network, no database): stories are built around normalized articles as
in tests/test_corpus.py. The example counts keep the whole file well under a minute.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import lxml.html
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from aggregator.config import OutputConfig, Selectors, SourceConfig
from aggregator.errors import SourceError
from aggregator.model import Article, Enclosure, Item, Parsed, StoredArticle, Story
from aggregator.normalize import _CONTROL, MAX_TITLE, SUMMARY_CHARS, _join, normalize, sanitize
from aggregator.outputs.atom import render_atom
from aggregator.parse.feed import parse_feed
from aggregator.parse.html import parse_list

ATOM = "{http://www.w3.org/2005/Atom}"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
TZ = ZoneInfo("Asia/Shanghai")
FEED_URL = "https://news.example.edu/feeds/all.xml"
PAGE_URL = "https://www.example.gov.cn/jyb/xwfb/index.html"
SOURCE = SourceConfig(name="prop-feed", url=FEED_URL, tags=["edu"])
LIST_SOURCE = SourceConfig(
    name="prop-list",
    url=PAGE_URL,
    type="html",
    selectors=Selectors(
        item="ul.news li",
        title="a.title",
        link="a.title",
        date="span.date",
        summary="p.summary",
        next_page="a.next@href",
    ),
)
OUTPUT = OutputConfig(title="Property News", id="urn:example:prop", link="https://agg.example.org/")
SOURCE_URLS = {SOURCE.name: SOURCE.url, LIST_SOURCE.name: LIST_SOURCE.url}

BASE = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

# --- checks --------------------------------------------------------------------------------------

_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_URL_ATTRS = {"href", "src", "cite", "poster", "action", "formaction", "background", "longdesc"}
_BAD_SCHEMES = ("javascript:", "vbscript:", "data:")
_BAD_TAGS = {"script", "style", "iframe", "object", "embed", "form", "input"}
_SCHEME_NOISE = re.compile("[\x00-\x20\x7f]")  # browsers ignore these around and inside a scheme


def assert_http_url(url: str) -> None:
    """Absolute http(s) with a host: what a feed reader can open."""
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https"), url
    assert parts.hostname, url


def assert_safe_html(fragment: str) -> None:
    """Sanitized HTML: no script (or other active) elements, no on* attributes, no
    javascript:/vbscript:/data: addresses, only http(s)/mailto or relative links."""
    assert "<script" not in fragment.lower(), fragment[:500]
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue  # comments, processing instructions
        assert element.tag.lower() not in _BAD_TAGS, element.tag
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (name, value)
            if name.lower() in _URL_ATTRS or name.lower().endswith(":href"):
                bare = _SCHEME_NOISE.sub("", value).lower()
                assert not bare.startswith(_BAD_SCHEMES), (name, value)
                scheme = bare.split(":", 1)[0] if re.match(r"^[a-z][a-z0-9+.-]*:", bare) else ""
                assert scheme in ("", "http", "https", "mailto"), (name, value)


def assert_single_line_title(title: str) -> None:
    assert 0 < len(title) <= MAX_TITLE, len(title)
    assert not _LINE_BREAKS.search(title), repr(title[:200])
    assert len(title.splitlines()) == 1, repr(title[:200])
    assert not _NOT_XML.search(title), repr(title[:200])


def check_article(article: Article) -> None:
    assert_single_line_title(article.title)
    assert len(article.summary) <= SUMMARY_CHARS + 1, len(article.summary)
    assert "\n" not in article.summary
    if article.link:
        assert_http_url(article.link)
    if article.url:
        assert_http_url(article.url)
    if article.content is not None:
        assert article.content.strip()
        assert_safe_html(article.content)
    for enclosure in article.enclosures:
        assert_http_url(enclosure.url)
    assert article.published <= NOW


def stories_of(articles: Sequence[Article]) -> list[Story]:
    """One story per article, except that the first story also carries the second article as
    a copy (so the "also published by" line and the related links are exercised)."""
    stored = [
        StoredArticle(n, n, a, NOW, NOW + timedelta(microseconds=n))
        for n, a in enumerate(articles, 1)
    ]
    groups: list[tuple[StoredArticle, ...]] = [(s,) for s in stored]
    if len(groups) >= 2:
        groups[0:2] = [(stored[0], stored[1])]
    return [
        Story(
            id=n,
            uid=f"00000000-0000-4000-8000-{n:012d}",
            first_seen=NOW,
            updated=NOW + timedelta(microseconds=n),
            published=copies[0].article.published,
            copies=copies,
        )
        for n, copies in enumerate(groups, 1)
    ]


def check_atom(document: bytes, stories: Sequence[Story]) -> None:
    root = etree.fromstring(document)  # well-formed, or this raises
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == len(stories)
    for entry in entries:
        assert_single_line_title(entry.findtext(f"{ATOM}title") or "")
        links = entry.findall(f"{ATOM}link")
        # rel="alternate" is the default (feedgen writes the main link with its href alone)
        assert any(link.get("rel") in (None, "alternate") for link in links)
        for link in links:
            assert_http_url(link.get("href") or "")
        content = entry.findtext(f"{ATOM}content")
        if content:
            assert_safe_html(content)


def through_pipeline(items: Sequence[Item], source: SourceConfig = SOURCE) -> list[Article]:
    """normalize -> stories -> Atom, asserting every invariant on the way."""
    articles = [a for a in (normalize(item, source, [], NOW) for item in items) if a is not None]
    for article in articles:
        check_article(article)
    stories = stories_of(articles)
    check_atom(render_atom(stories, OUTPUT, SOURCE_URLS, NOW), stories)
    return articles


def parse_feed_or_none(body: bytes, content_type: str = "application/xml") -> Parsed | None:
    """parse_feed; a SourceError (ParseError) is the one acceptable failure."""
    try:
        return parse_feed(
            body, {"content-type": content_type}, FEED_URL, source="prop-feed", tz=TZ, now=NOW
        )
    except SourceError as exc:
        assert exc.reason
        return None


def parse_list_or_none(text: str) -> Parsed | None:
    try:
        return parse_list(text, PAGE_URL, LIST_SOURCE, TZ, NOW)
    except SourceError as exc:
        assert exc.reason
        return None


# --- strategies ----------------------------------------------------------------------------------

#: Any code point, lone surrogates included (possible only in Items built in code).
any_text = st.text(st.characters(exclude_categories=()), max_size=200)
#: Text a well-formed XML document can carry (no C0 controls but tab/LF/CR, no surrogates).
xml_text = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters="".join(chr(c) for c in range(32) if chr(c) not in "\t\n\r")
        + "\ufffe\uffff",
    ),
    max_size=120,
)
NASTY_TEXT = [
    "",
    " ",
    "\n\n",
    "&#0;",
    "&#1;",
    "&#x1F;",
    "&#xD800;",
    "&#xFFFE;",
    "&#x110000;",
    "&#128;",
    "&nbsp;",
    "&bogus;",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<script>alert(1)</script>",
    "]]>",
    "<![CDATA[x]]>",
    "<!--",
    "-->",
    "\u2028\u2029\x85",
    "\x1c\x1d\x1e",
    "教育部召开新闻发布会",
    "A\u0301\u200b\u200e\ufeff",
]
nasty_text = st.one_of(st.sampled_from(NASTY_TEXT), any_text)

SCHEMES = [
    "http://",
    "https://",
    "HTTP://",
    "//",
    "/",
    "",
    "../",
    "http:",
    "http:///",
    "https:/",
    "ftp://",
    "mailto:",
    "javascript:",
    " JaVaScRiPt:",
    "java\tscript:",
    "&#106;avascript:",
    "vbscript:",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "data:",
    "tel:",
    "#",
]
HOSTS = [
    "example.org",
    "WWW.Example.ORG:443",
    "example.org:80",
    "例子.中国",
    "user:pw@example.org",
    "[::1]",
    "[::1]:8080",
    "[abc",
    "[::1",
    "127.0.0.1:99999",
    "example.org:abc",
    "",
    " ",
    "a b",
    "exa\x01mple.org",
]


@st.composite
def urls(draw: st.DrawFn) -> str:
    """Addresses from the plausible to the broken: mixed schemes, hosts, paths, queries."""
    if draw(st.integers(0, 9)) == 0:
        return draw(any_text)
    path = draw(
        st.sampled_from(
            [
                "",
                "/",
                "/news/2026/11/",
                "/a b/c",
                "/%zz",
                "/x?utm_source=rss&id=3",
                "/p#frag",
                "/\x00\x01",
                "/新闻/1.html",
            ]
        )
    )
    tail = draw(st.text(max_size=12))
    return draw(st.sampled_from(SCHEMES)) + draw(st.sampled_from(HOSTS)) + path + tail


@st.composite
def big_titles(draw: st.DrawFn) -> str:
    """Titles up to 100 KB: a generated chunk repeated, with markup and line breaks in it."""
    chunk = draw(st.text(min_size=1, max_size=40)) + draw(
        st.sampled_from(["", "\n", "<br>", "<b>x</b>"])
    )
    size = draw(st.integers(1, 100_000))
    return (chunk * (size // len(chunk) + 1))[:size]


TAGS = [
    "p",
    "div",
    "a",
    "img",
    "b",
    "span",
    "table",
    "td",
    "li",
    "script",
    "style",
    "iframe",
    "object",
    "embed",
    "form",
    "input",
    "svg",
    "math",
    "noscript",
    "template",
    "base",
    "meta",
    "link",
    "video",
    "source",
    "textarea",
    "title",
    "xmp",
    "noembed",
    "plaintext",
    "SCRIPT",
    "ScRiPt",
    "a ",
]
ATTRS = [
    "href",
    "src",
    "onclick",
    "onerror",
    "ONLOAD",
    "onMouseOver",
    " onfocus",
    "style",
    "title",
    "srcset",
    "poster",
    "cite",
    "xlink:href",
    "formaction",
    "action",
    "background",
    "alt",
    "data-src",
    "class",
    "id",
]
ATTR_VALUES = [
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    " \tjavascript:alert(1)",
    "java\nscript:alert(1)",
    "jav&#x09;ascript:alert(1)",
    "&#106;&#97;vascript:alert(1)",
    "\x01javascript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
    "alert(1)",
    "x onerror=alert(1)",
    '"><script>alert(1)</script>',
    "relative/path.html",
    "https://example.org/ok",
    "//cdn.example.org/x.png",
    "http://[abc/",
    "",
]


@st.composite
def attribute(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(ATTRS))
    value = draw(st.one_of(st.sampled_from(ATTR_VALUES), st.text(max_size=20)))
    quote = draw(st.sampled_from(['"', "'", ""]))
    if quote:
        value = value.replace(quote, "")
    return f" {name}={quote}{value}{quote}"


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        tag = draw(st.sampled_from(TAGS))
        attrs = "".join(draw(st.lists(attribute(), max_size=3)))
        inner = "".join(draw(st.lists(children, max_size=4)))
        close = draw(st.sampled_from([f"</{tag.strip()}>", "", "</p>", "</div"]))
        return f"<{tag}{attrs}>{inner}{close}"

    return build()


#: Hostile, often malformed HTML trees: active tags, event handlers, script links.
hostile_html = st.recursive(nasty_text, _element, max_leaves=12)


@st.composite
def deep_html(draw: st.DrawFn) -> str:
    """Deeply nested tags (to 6000 levels), closed or not, with a hostile core."""
    tag = draw(st.sampled_from(["div", "b", "span", "a", "table", "p", "svg"]))
    depth = draw(st.integers(100, 6000))
    inner = draw(hostile_html)
    closed = draw(st.booleans())
    return f"<{tag}>" * depth + inner + (f"</{tag}>" * depth if closed else "")


html_bodies = st.one_of(st.none(), hostile_html, any_text)

aware_dates = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


@st.composite
def enclosures(draw: st.DrawFn) -> Enclosure:
    return Enclosure(
        url=draw(urls()),
        type=draw(st.one_of(st.just("application/pdf"), any_text)),
        title=draw(any_text),
        length=draw(st.integers(0, 2**63)),
    )


@st.composite
def items(draw: st.DrawFn) -> Item:
    """Items as a parser could hand them over, with arbitrary text in every field."""
    return Item(
        title=draw(st.one_of(any_text, hostile_html, big_titles())),
        link=draw(st.one_of(st.none(), urls())),
        guid=draw(st.one_of(st.none(), any_text)),
        summary=draw(html_bodies),
        content=draw(html_bodies),
        author=draw(st.one_of(st.none(), any_text)),
        published=draw(st.one_of(st.none(), aware_dates)),
        updated=draw(st.one_of(st.none(), aware_dates)),
        tags=tuple(draw(st.lists(any_text, max_size=3))),
        enclosures=tuple(draw(st.lists(enclosures(), max_size=2))),
        base_url=draw(st.one_of(st.just(""), st.just(FEED_URL), urls())),
    )


# Feed templates: fields go in XML-escaped, unescaped (raw) or as CDATA.

DATE_FORMATS = [
    lambda d: d.strftime("%a, %d %b %Y %H:%M:%S +0000"),
    lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT"),
    lambda d: d.isoformat(),
    lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"),
    lambda d: d.strftime("%Y-%m-%d %H:%M"),
    lambda d: d.strftime("%Y年%m月%d日 %H:%M"),
    lambda d: d.strftime("%Y/%m/%d"),
    lambda d: d.strftime("%d.%m.%Y"),
]


@st.composite
def dates_text(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(st.sampled_from(DATE_FORMATS))(draw(aware_dates))
    return draw(
        st.one_of(
            st.sampled_from(["", "yesterday", "刚刚", "3天前", "0000-00-00", "Tue, 31 Feb 2026"]),
            st.text(max_size=30),
        )
    )


def encode_field(value: str, how: str) -> str:
    if how == "escaped":
        return html.escape(value, quote=True)
    if how == "cdata":
        return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"
    return value  # raw: may break well-formedness, feedparser's loose parser takes over


@st.composite
def feed_fields(draw: st.DrawFn, well_formed: bool) -> dict[str, str]:
    """One entry's fields; `well_formed` keeps the document parseable by a strict XML parser."""
    text = xml_text if well_formed else st.one_of(nasty_text, xml_text)
    body = st.one_of(
        text, hostile_html.filter(lambda s: not _NOT_XML.search(s)) if well_formed else hostile_html
    )
    mode = st.sampled_from(["escaped", "cdata"] if well_formed else ["escaped", "cdata", "raw"])
    return {
        "title": encode_field(
            draw(
                st.one_of(text, big_titles().filter(lambda s: not _NOT_XML.search(s)))
                if well_formed
                else st.one_of(text, big_titles())
            ),
            draw(mode),
        ),
        "link": encode_field(
            draw(urls()) if not well_formed else _xml_safe(draw(urls())), draw(mode)
        ),
        "description": encode_field(draw(body), draw(mode)),
        "content": encode_field(draw(body), draw(mode)),
        "date": encode_field(_xml_safe(draw(dates_text())), draw(mode)),
        "guid": encode_field(draw(text), draw(mode)),
        "author": encode_field(draw(text), draw(mode)),
        "category": encode_field(draw(text), draw(mode)),
        "enclosure": html.escape(_xml_safe(draw(urls())), quote=True),
        "base": html.escape(_xml_safe(draw(st.one_of(st.just(FEED_URL), urls()))), quote=True),
    }


def _xml_safe(value: str) -> str:
    return _NOT_XML.sub("", value)


RSS_ITEM = """<item><title>{title}</title><link>{link}</link><description>{description}</description>
<content:encoded>{content}</content:encoded><pubDate>{date}</pubDate><guid isPermaLink="false">{guid}</guid>
<dc:creator>{author}</dc:creator><category>{category}</category>
<enclosure url="{enclosure}" type="application/pdf" length="12"/></item>"""
RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
 xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>Prop</title>
<link>https://news.example.edu/</link><description>d</description><ttl>60</ttl>{items}</channel></rss>"""
ATOM_ENTRY = """<entry xml:base="{base}"><title type="html">{title}</title><link href="{enclosure}"/>
<link rel="alternate" href="{enclosure}"/><link rel="enclosure" href="{enclosure}" length="x"/>
<id>{guid}</id><updated>{date}</updated><published>{date}</published>
<author><name>{author}</name></author><category term="{enclosure}" label="{enclosure}"/>
<summary type="html">{description}</summary><content type="html">{content}</content></entry>"""
ATOM_FEED = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Prop</title><id>urn:x:prop</id>
<updated>2026-11-29T00:00:00Z</updated>{items}</feed>"""
RDF_ITEM = """<item rdf:about="{enclosure}"><title>{title}</title><link>{link}</link>
<description>{description}</description><dc:date>{date}</dc:date></item>"""
RDF = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/"><channel rdf:about="x"><title>Prop</title>
<link>https://news.example.edu/</link><description>d</description></channel>{items}</rdf:RDF>"""
TEMPLATES = {"rss": (RSS, RSS_ITEM), "atom": (ATOM_FEED, ATOM_ENTRY), "rdf": (RDF, RDF_ITEM)}


@st.composite
def feed_documents(draw: st.DrawFn, well_formed: bool) -> tuple[str, int, bytes]:
    kind = draw(st.sampled_from(sorted(TEMPLATES)))
    document, entry = TEMPLATES[kind]
    fields = draw(st.lists(feed_fields(well_formed), min_size=1, max_size=4))
    text = document.format(items="".join(entry.format(**f) for f in fields))
    encoding = "utf-8" if well_formed else draw(st.sampled_from(["utf-8", "gb18030", "latin-1"]))
    return kind, len(fields), text.encode(encoding, "replace")


@st.composite
def json_feeds(draw: st.DrawFn) -> bytes:
    entries: list[Any] = []
    for _ in range(draw(st.integers(0, 4))):
        entries.append(
            {
                "id": draw(st.one_of(any_text, st.integers(), st.none())),
                "url": draw(st.one_of(urls(), st.none(), st.integers())),
                "title": draw(st.one_of(any_text, big_titles(), st.none())),
                "content_html": draw(st.one_of(hostile_html, st.none())),
                "content_text": draw(st.one_of(any_text, st.none())),
                "summary": draw(st.one_of(nasty_text, st.none())),
                "date_published": draw(st.one_of(dates_text(), st.none(), st.integers())),
                "date_modified": draw(st.one_of(dates_text(), st.none())),
                "tags": draw(st.lists(any_text, max_size=2)),
                "authors": [{"name": draw(any_text)}],
                "attachments": [
                    {
                        "url": draw(urls()),
                        "mime_type": draw(any_text),
                        "size_in_bytes": draw(st.integers(0, 10**6)),
                    }
                ],
            }
        )
    data = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": draw(any_text),
        "home_page_url": draw(st.one_of(st.just(FEED_URL), urls())),
        "items": entries,
    }
    text = json.dumps(data, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


# HTML list pages for parse_list.

LIST_ITEM = """<li{item_attrs}><a class="title" href="{link}" title="{title_attr}">{title}</a>
<span class="date">{date}</span><p class="summary">{summary}</p></li>"""
LIST_PAGE = """{prolog}<html><head><meta charset="utf-8"><title>{page_title}</title>{base}</head>
<body><ul class="news">{items}</ul><div class="pages"><a class="next" href="{next}">下一页</a></div>
</body></html>"""


@st.composite
def list_pages(draw: st.DrawFn) -> tuple[str, int]:
    text = st.one_of(nasty_text, hostile_html, big_titles())
    mode = st.sampled_from(["escaped", "raw"])
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        rows.append(
            LIST_ITEM.format(
                item_attrs=draw(st.sampled_from(["", ' class="top"', ' onclick="alert(1)"'])),
                link=html.escape(draw(urls()), quote=True),
                title_attr=html.escape(draw(nasty_text), quote=True),
                title=encode_field(draw(text), draw(mode)),
                date=encode_field(draw(dates_text()), draw(mode)),
                summary=encode_field(draw(text), draw(mode)),
            )
        )
    base = draw(st.one_of(st.just(""), urls().map(lambda u: f'<base href="{html.escape(u)}">')))
    page = LIST_PAGE.format(
        prolog=draw(
            st.sampled_from(
                [
                    "",
                    "<!DOCTYPE html>",
                    '<?xml version="1.0" encoding="utf-8"?>',
                    "\ufeff",
                    "<!-- c -->",
                ]
            )
        ),
        page_title=html.escape(draw(nasty_text)),
        base=base,
        items="".join(rows),
        next=html.escape(draw(urls()), quote=True),
    )
    return page, len(rows)


# --- fixed examples: the smallest inputs that broke an invariant, replayed on every run ------

FIELDS = {
    "title": "Title",
    "link": "https://news.example.edu/a/1",
    "description": "",
    "content": "",
    "date": "Sun, 29 Nov 2026 08:00:00 +0000",
    "guid": "g1",
    "author": "Desk",
    "category": "edu",
    "enclosure": "https://news.example.edu/a/1.pdf",
    "base": FEED_URL,
}


def feed_bytes(kind: str, **fields: str) -> bytes:
    document, entry = TEMPLATES[kind]
    return document.format(items=entry.format(**{**FIELDS, **fields})).encode("utf-8")


def list_page(link: str, base: str = "") -> str:
    row = LIST_ITEM.format(
        item_attrs="", link=link, title_attr="", title="Title", date="2026-11-29", summary=""
    )
    return LIST_PAGE.format(prolog="", page_title="List", base=base, items=row, next="?page=2")


# --- tests: feeds --------------------------------------------------------------------------------


@settings(BASE, max_examples=300)
@given(st.binary(max_size=2048))
@example(b'<rss version="2.0"><channel><item><title>&#xD800;</title></item></channel></rss>')
def test_arbitrary_bytes_parse_or_fail_clearly(body: bytes) -> None:
    parsed = parse_feed_or_none(body)
    if parsed is not None:
        through_pipeline(parsed.items)


@settings(BASE, max_examples=200)
@given(st.sampled_from(sorted(TEMPLATES)), st.binary(max_size=512))
@example("atom", b"\x00")
def test_arbitrary_bytes_inside_a_feed(kind: str, noise: bytes) -> None:
    """Raw bytes (controls, invalid UTF-8, stray markup) where an entry's fields belong."""
    document, entry = TEMPLATES[kind]
    text = noise.decode("latin-1")
    fields = dict.fromkeys(FIELDS, "{{NOISE}}")
    template = document.format(items=entry.format(**fields)).replace("{NOISE}", text)
    parsed = parse_feed_or_none(template.encode("latin-1"))
    if parsed is not None:
        through_pipeline(parsed.items)


@settings(BASE, max_examples=300)
@given(st.text(max_size=2000))
def test_arbitrary_text_parse_or_fail_clearly(text: str) -> None:
    for body in (text.encode("utf-8"), f'<?xml version="1.0"?><rss version="2.0">{text}'.encode()):
        parsed = parse_feed_or_none(body)
        if parsed is not None:
            through_pipeline(parsed.items)


@settings(BASE, max_examples=150)
@given(feed_documents(well_formed=True))
@example(("rss", 1, feed_bytes("rss", content="<![CDATA[<p>a&#1;b</p>]]>")))
@example(("rss", 1, feed_bytes("rss", enclosure="http://[x/a.pdf")))
def test_well_formed_feeds_keep_every_entry(document: tuple[str, int, bytes]) -> None:
    """Escaped or CDATA fields in a well-formed feed: every entry is parsed and published."""
    kind, count, body = document
    parsed = parse_feed_or_none(body)
    assert parsed is not None, kind
    assert len(parsed.items) == count, kind
    through_pipeline(parsed.items)


@settings(BASE, max_examples=150)
@given(feed_documents(well_formed=False))
def test_malformed_feeds_parse_or_fail_clearly(document: tuple[str, int, bytes]) -> None:
    _, _, body = document
    parsed = parse_feed_or_none(body)
    if parsed is not None:
        through_pipeline(parsed.items)


@settings(BASE, max_examples=100)
@given(json_feeds())
@example(
    b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"url": "https://e.org/a\\u001b"}]}'
)
@example(
    b'{"version": "https://jsonfeed.org/version/1.1", "home_page_url": "http://[abc",'
    b' "items": [{"url": "a/1"}]}'
)
@example(  # an empty href joined to a javascript: base was a script link
    b'{"version": "https://jsonfeed.org/version/1.1", "home_page_url": "javascript:e.org",'
    b' "items": [{"content_html": "<A HREF>x</A> <img src=\\"\\">"}]}'
)
@example(
    b'{"version": "https://jsonfeed.org/version/1.1", "home_page_url": "ftp://e.org/",'
    b' "items": [{"content_html": "<a href=\\"\\">x</a> <a href=\\"a/b\\">y</a>"}]}'
)
def test_json_feeds_parse_or_fail_clearly(body: bytes) -> None:
    parsed = parse_feed_or_none(body, "application/feed+json")
    if parsed is not None:
        through_pipeline(parsed.items)


# --- tests: normalize on items built in code -----------------------------------------------------


@settings(BASE, max_examples=200)
@given(st.lists(items(), min_size=1, max_size=3))
@example([Item(title="t", link="http://[abc")])
@example([Item(title="t", link="https://news.example.edu/a\x1b")])
@example([Item(title="t", link="https://[::1]:8080/a")])
@example([Item(title="t", link="http:///example.org/a")])
@example(
    [
        Item(
            title="t",
            link="https://e.org/a",
            enclosures=(Enclosure("https://e.org/a.pdf", "a\x02"),),
        )
    ]
)
def test_arbitrary_items_normalize_to_a_valid_feed(batch: list[Item]) -> None:
    through_pipeline(batch)


@settings(BASE, max_examples=150)
@given(hostile_html, st.one_of(st.just(FEED_URL), urls()))
@example("<p>a&#1;b&#xFFFE;</p>", FEED_URL)
@example('<a href="x">x</a>', "http://[x/")
@example('<a href="">x</a><a href>y</a><img src=" ">', "javascript:alert(1)")
@example('<a href="">x</a><a href="q">y</a>', "java\tscript:alert(1)")
@example('<a href="">x</a><img src="">', "data:text/html,x")
def test_hostile_html_is_sanitized(body: str, base: str) -> None:
    item = Item(
        title="Hostile",
        link="https://news.example.edu/a/1",
        content=body,
        summary=body,
        base_url=base,
    )
    articles = through_pipeline([item])
    assert len(articles) == 1


def test_urls_joined_to_a_base_keep_to_the_allowed_schemes() -> None:
    """nh3 checks schemes before the attribute filter that joins URLs to the base: an empty or
    relative link joined to a non-http base must not come out as a script (or other) link."""
    for base in ("javascript:alert(1)", "java\tscript:alert(1)", " data:text/html,x", "ftp://h/"):
        body = '<a href="">a</a><a href>b</a><a href="c/d">c</a><img src="">'
        cleaned = sanitize(body, base) or ""
        assert_safe_html(cleaned)
        assert cleaned.count("<a") == 3, cleaned
    kept = sanitize('<a href="b">x</a><a href="mailto:a@e.org">m</a>', FEED_URL) or ""
    assert 'href="https://news.example.edu/feeds/b"' in kept
    assert 'href="mailto:a@e.org"' in kept


URL_PIECES = st.text(
    alphabet=st.sampled_from(list("aZ09-._~%!$&'()*+,=:@/?#;[] \t\n\x00\x7f\\é中")), max_size=30
)


@settings(BASE, max_examples=600)
@given(
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://", "//", "/", ""]),
    URL_PIECES,
    st.sampled_from([FEED_URL, "http://news.example.edu/a/b/c.html?x=1#y", "https://h"]),
)
@example("http://", "a/b?", "http://news.example.edu/")
@example("https://", "a/b#", "https://h")
@example("http://", "/x", "http://h/")
@example("https://", "[::1/x", FEED_URL)
def test_absolute_url_shortcut_matches_urljoin(scheme: str, rest: str, base: str) -> None:
    """`_join` skips urljoin for plain absolute URLs: the answer must be urljoin's."""
    url = scheme + rest
    try:
        expected = _CONTROL.sub("", urljoin(base, url))
    except ValueError:
        expected = None
    assert _join(base, url) == expected


@settings(BASE, max_examples=15)
@given(deep_html())
@example(
    "<div>" * 6000 + '<p onclick="x()"><script>alert(1)</script><a href="javascript:x()">a</a>'
)
def test_deeply_nested_html_is_flattened(body: str) -> None:
    item = Item(title="Deep", link="https://news.example.edu/a/2", content=body, base_url=FEED_URL)
    articles = through_pipeline([item])
    assert len(articles) == 1


@settings(BASE, max_examples=40)
@given(big_titles())
@example("x" * 100_000)
@example("a\n<br>" * 20_000)
def test_huge_titles_are_cut_to_one_line(title: str) -> None:
    item = Item(title=title, link="https://news.example.edu/a/3")
    (article,) = through_pipeline([item])
    assert len(article.title) <= MAX_TITLE


# --- tests: HTML list pages ----------------------------------------------------------------------


@settings(BASE, max_examples=150)
@given(list_pages())
@example((list_page("/a/1.html", base='<base href="http://[x/">'), 1))
@example((list_page("http:///example.org/a"), 1))
def test_generated_list_pages(page: tuple[str, int]) -> None:
    text, rows = page
    parsed = parse_list_or_none(text)
    if parsed is None:
        return
    assert len(parsed.items) <= rows
    for item in parsed.items:
        assert item.link is not None
        assert_http_url(item.link)
    if parsed.next_page is not None:
        assert_http_url(parsed.next_page)
    through_pipeline(parsed.items, LIST_SOURCE)


@settings(BASE, max_examples=150)
@given(
    st.one_of(st.text(max_size=2000), st.binary(max_size=1000).map(lambda b: b.decode("latin-1")))
)
def test_arbitrary_text_as_a_list_page(text: str) -> None:
    for page in (text, f'<ul class="news"><li><a class="title" href="/x">{text}</a></li></ul>'):
        parsed = parse_list_or_none(page)
        if parsed is not None:
            through_pipeline(parsed.items, LIST_SOURCE)
