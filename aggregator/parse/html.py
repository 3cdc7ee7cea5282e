"""HTML list pages and article pages -> Items, with the selectors from the config.

lxml + cssselect (selectors compiled once): an order of magnitude faster than BeautifulSoup
on list pages, which matters when hundreds of pages are polled.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree
from lxml.cssselect import CSSSelector

from ..config import SourceConfig, split_selector
from ..errors import ParseError
from ..model import Enclosure, Item, Parsed
from .dates import parse_date

_SPACE = re.compile(r"\s+")
ATTACHMENT_EXT = ("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "wps", "ofd", "zip", "rar", "7z", "et", "dps")
_ATTACHMENT = re.compile(r"\.(" + "|".join(ATTACHMENT_EXT) + r")(?:$|[?#])", re.I)
_EXTRA_TYPES = {"wps": "application/vnd.ms-works", "ofd": "application/ofd", "rar": "application/vnd.rar",
                "7z": "application/x-7z-compressed", "et": "application/vnd.ms-excel",
                "dps": "application/vnd.ms-powerpoint"}
_CHALLENGE = re.compile(r"document\.cookie|challenge-platform|cf-browser-verification|__jsl_clearance|"
                        r"请开启JavaScript|enable JavaScript", re.I)
_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json",
               "application/json", "application/xml", "text/xml", "application/rdf+xml")


@dataclass(frozen=True)
class ArticlePage:
    content: str | None  # HTML of the content element (sanitized later, in normalize)
    attachments: tuple[Enclosure, ...] = ()
    published: datetime | None = None


@lru_cache(maxsize=512)
def _compiled(css: str) -> CSSSelector:
    return CSSSelector(css, translator="html")


def _document(text: str, url: str) -> lxml.html.HtmlElement:
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise ParseError(url, "empty page")
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise ParseError(url, f"unparsable HTML: {exc}") from None


def _select(element: lxml.html.HtmlElement, selector: str) -> tuple[lxml.html.HtmlElement | None, str | None]:
    """The first element matching `css@attr` (an empty css means the element itself)."""
    css, attr = split_selector(selector)
    found = _compiled(css)(element) if css else [element]
    return (found[0], attr) if found else (None, attr)


def _text(element: lxml.html.HtmlElement) -> str:
    return _SPACE.sub(" ", element.text_content()).strip()


def select_text(element: lxml.html.HtmlElement, selector: str | None) -> str:
    if not selector:
        return ""
    found, attr = _select(element, selector)
    if found is None:
        return ""
    if attr:
        return _SPACE.sub(" ", found.get(attr) or "").strip()
    return _text(found)


def _title(element: lxml.html.HtmlElement, selector: str) -> str:
    """Text of the element, or its title attribute when longer (lists often truncate titles)."""
    found, attr = _select(element, selector)
    if found is None:
        return ""
    if attr:
        return _SPACE.sub(" ", found.get(attr) or "").strip()
    text, title_attr = _text(found), _SPACE.sub(" ", found.get("title") or "").strip()
    return title_attr if len(title_attr) > len(text.rstrip(".…")) else text


def _link(element: lxml.html.HtmlElement, selector: str, base: str) -> str | None:
    found, attr = _select(element, selector)
    if found is None:
        return None
    href = (found.get(attr or "href") or "").strip()
    if not href or href.lower().startswith(("javascript:", "mailto:", "data:", "#")):
        return None
    absolute = urljoin(base, href)
    return absolute if absolute.startswith(("http://", "https://")) else None


def parse_list(text: str, page_url: str, source: SourceConfig, tz: tzinfo, now: datetime) -> Parsed:
    """One list page -> items (title, absolute link, date, summary) and the next page link."""
    selectors = source.selectors
    if selectors is None:
        raise ParseError(source.name, "an html source needs selectors")
    doc = _document(text, source.name)
    base = doc.xpath("string(//base/@href)") or page_url
    base = urljoin(page_url, base)
    items: list[Item] = []
    no_link = no_date = 0
    for element in _compiled(split_selector(selectors.item)[0])(doc):
        title, link = _title(element, selectors.title), _link(element, selectors.link, base)
        if not link or not title:
            no_link += 1
            continue
        published = parse_date(select_text(element, selectors.date), tz, now) if selectors.date else None
        no_date += published is None and selectors.date is not None
        items.append(Item(title=title, link=link, summary=select_text(element, selectors.summary) or None,
                          published=published, base_url=base))
    warnings = []
    if no_link:
        warnings.append(f"{no_link} item(s) without a title or link were skipped")
    if items and selectors.date and no_date == len(items):
        warnings.append("no date parsed on any item (check the date selector)")
    if not items and _CHALLENGE.search(text[:20000]):
        raise ParseError(source.name, "got a bot-challenge page (JavaScript cookie check), not the list")
    next_page = _link(doc, selectors.next_page, base) if selectors.next_page else None
    return Parsed(items=tuple(items), title=select_text(doc, "title"), warnings=tuple(warnings),
                  next_page=next_page)


def extract_article(text: str, page_url: str, source: SourceConfig) -> ArticlePage:
    """The content element's HTML (scripts, styles and `remove` selectors dropped) and its
    attachments; `extract: auto` without a content selector uses trafilatura."""
    selectors = source.selectors
    doc = _document(text, page_url)
    attachments = _attachments(doc, selectors.attachments if selectors else None, page_url)
    if selectors is None or not selectors.content:
        if source.extract == "auto":
            return ArticlePage(_auto_extract(text, page_url), attachments)
        return ArticlePage(None, attachments)
    found, _ = _select(doc, selectors.content)
    if found is None:
        return ArticlePage(None, attachments)
    for selector in selectors.remove:
        for element in _compiled(split_selector(selector)[0])(found):
            element.drop_tree()
    for element in found.xpath(".//script|.//style|.//noscript"):
        element.drop_tree()
    if not selectors.attachments:
        attachments = _attachments(found, None, page_url)
    html = lxml.html.tostring(found, encoding="unicode", method="html")
    return ArticlePage(html, attachments)


def _attachments(root: lxml.html.HtmlElement, selector: str | None, base: str) -> tuple[Enclosure, ...]:
    """Document links (pdf, doc, xls, ppt, wps, ofd, zip, rar...) become enclosures."""
    links = _compiled(split_selector(selector)[0])(root) if selector else root.iter("a")
    found: dict[str, Enclosure] = {}
    for link in links:
        href = (link.get("href") or "").strip()
        url = urljoin(base, href) if href else ""
        path = urlsplit(url).path
        match = _ATTACHMENT.search(path)
        if not url.startswith(("http://", "https://")) or (not selector and not match):
            continue
        ext = match.group(1).lower() if match else ""
        kind = _EXTRA_TYPES.get(ext) or mimetypes.guess_type(path)[0] or "application/octet-stream"
        found.setdefault(url, Enclosure(url, kind, _text(link) or path.rsplit("/", 1)[-1]))
    return tuple(found.values())


def _auto_extract(text: str, url: str) -> str | None:
    import trafilatura

    html = trafilatura.extract(text, url=url, output_format="html", include_links=True,
                               include_images=True, favor_precision=True)
    return html or None


def discover_feed(text: str, page_url: str) -> str | None:
    """The first <link rel="alternate"> feed of an HTML page."""
    try:
        doc = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None
    for link in doc.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").lower()
        if "alternate" in rel and kind in _FEED_TYPES[:3] and link.get("href"):
            return urljoin(page_url, link.get("href").strip())
    return None


def looks_like_feed(body: bytes, content_type: str | None) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in _FEED_TYPES:
        return True
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<?xml"):
        head = head[head.find(b"?>") + 2 :].lstrip()
    return head.startswith((b"<rss", b"<feed", b"<rdf", b"{")) and not head.startswith(b"<!doctype html")
