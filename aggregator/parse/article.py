"""Article pages -> ArticlePage: the content element, its attachments, the page's own
publication date and headline (which repairs titles a list page cut short).

Built on the document, selector and link helpers of `html`; `extract: auto` without a content
selector hands the page to trafilatura, imported on first use.

Pure: text in, data out. Fetching and charset decisions happen in `aggregator.fetch`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from urllib.parse import urlsplit

import lxml.html

from ..config import SourceConfig
from ..model import Enclosure
from .dates import parse_date
from .html import (
    TRUNCATED,
    absolute_link,
    attr_text,
    document,
    element_text,
    page_base,
    select,
    split_css,
)

__all__ = [
    "ATTACHMENT_TYPES",
    "ArticlePage",
    "extract_article",
    "repair_title",
    "restore_title",
]

#: Document types that become enclosures (Chinese sites add WPS and OFD to the usual ones).
ATTACHMENT_TYPES = {
    "pdf": "application/pdf",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt": "application/vnd.ms-powerpoint",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "wps": "application/wps-office.wps",
    "et": "application/wps-office.et",
    "dps": "application/wps-office.dps",
    "ofd": "application/ofd",
    "zip": "application/zip",
    "rar": "application/vnd.rar",
    "7z": "application/x-7z-compressed",
}
_ATTACHMENT = re.compile(r"\.(" + "|".join(ATTACHMENT_TYPES) + r")(?:$|[?#])", re.I)
_ATTACHMENT_NAME = re.compile(r"\.(" + "|".join(ATTACHMENT_TYPES) + r")\s*$", re.I)
_LAZY_SRC = ("data-src", "data-original", "original-src", "data-lazy-src")
_PUBLISHED_META = (
    "article:published_time",
    "pubdate",
    "publishdate",
    "firstpublishedtime",
    "datepublished",
    "dc.date",
    "dc.date.issued",
)
_TITLE_SEPARATOR = re.compile(r"\s*(?:[-_|－—]+|\s[:：]\s)\s*")


@dataclass(frozen=True)
class ArticlePage:
    content: str | None  # HTML of the content element (sanitized later, in normalize)
    attachments: tuple[Enclosure, ...] = ()
    published: datetime | None = None
    title: str | None = None  # the page's own headline, to repair titles a list truncated


def extract_article(
    text: str,
    page_url: str,
    source: SourceConfig,
    tz: tzinfo | None = None,
    now: datetime | None = None,
) -> ArticlePage:
    """The content element's HTML (scripts, styles and `remove` selectors dropped, links made
    absolute) and its attachments; `extract: auto` without a content selector uses trafilatura.
    With `tz` and `now`, a publication date in the page's <meta> is parsed too."""
    selectors = source.selectors
    doc = document(text, page_url)
    base = page_base(doc, page_url)
    for img in doc.iter("img"):  # lazy-loaded images keep the real address elsewhere
        if not img.get("src") or img.get("src", "").startswith("data:"):
            lazy = next((img.get(a) for a in _LAZY_SRC if img.get(a)), None)
            if lazy:
                img.set("src", lazy)
    doc.make_links_absolute(base, resolve_base_href=False, handle_failures="discard")
    published = _meta_published(doc, tz, now) if tz is not None and now is not None else None
    title = _headline(doc)
    extra = (
        _attachments(doc, selectors.attachments, base)
        if selectors and selectors.attachments
        else ()
    )
    if selectors is None or not selectors.content:
        if source.extract == "auto":
            attachments = _merge(_attachments(doc, None, base), extra)
            content = _auto_extract(lxml.html.tostring(doc, encoding="unicode"), base)
            return ArticlePage(content, attachments, published, title)
        return ArticlePage(None, extra, published, title)
    found, _ = select(doc, selectors.content)
    if found is None:
        return ArticlePage(None, extra, published, title)
    for selector in selectors.remove:
        compiled, _ = split_css(selector)
        for element in compiled(found) if compiled else []:
            if element is not found:
                element.drop_tree()
    for element in found.xpath(".//script|.//style|.//noscript|.//template"):
        element.drop_tree()
    content = lxml.html.tostring(found, encoding="unicode", method="html")
    return ArticlePage(content, _merge(_attachments(found, None, base), extra), published, title)


def _merge(*groups: tuple[Enclosure, ...]) -> tuple[Enclosure, ...]:
    found: dict[str, Enclosure] = {}
    for group in groups:
        for enclosure in group:
            found.setdefault(enclosure.url, enclosure)
    return tuple(found.values())


def _attachments(
    root: lxml.html.HtmlElement, selector: str | None, base: str
) -> tuple[Enclosure, ...]:
    """Document links (pdf, doc, xls, ppt, wps, ofd, zip, rar...) become enclosures. With a
    selector, every match counts, even a `download.jsp?id=` link; its type then comes from
    the link text (`报名表.docx`) when the address has no extension; without one, links whose
    address or text ends in a document extension count."""
    if selector:
        compiled, attr = split_css(selector)
        matched = compiled(root) if compiled else [root]
        links = [(m if m.tag == "a" or attr else next(m.iter("a"), m), attr) for m in matched]
    else:
        links = [(a, None) for a in root.iter("a")]
    found: dict[str, Enclosure] = {}
    for link, attr in links:
        url = absolute_link(base, link.get(attr or "href"))
        if url is None:
            continue
        path = urlsplit(url).path
        name = element_text(link)
        match = _ATTACHMENT.search(path) or _ATTACHMENT_NAME.search(name)
        if match is None and not selector:
            continue
        kind = ATTACHMENT_TYPES[match.group(1).lower()] if match else "application/octet-stream"
        title = name or attr_text(link, "title") or path.rsplit("/", 1)[-1]
        found.setdefault(url, Enclosure(url, kind, title))
    return tuple(found.values())


def _meta_published(doc: lxml.html.HtmlElement, tz: tzinfo, now: datetime) -> datetime | None:
    for meta in doc.iter("meta"):
        key = (meta.get("name") or meta.get("property") or meta.get("itemprop") or "").lower()
        if key in _PUBLISHED_META and meta.get("content"):
            published = parse_date(meta.get("content"), tz, now)
            if published is not None:
                return published
    return None


def _headline(doc: lxml.html.HtmlElement) -> str | None:
    for meta in doc.iter("meta"):
        if (meta.get("property") or meta.get("name") or "").lower() in ("og:title", "articletitle"):
            value = attr_text(meta, "content")
            if value:
                return value
    for tag in ("h1", "title"):
        element = next(doc.iter(tag), None)
        if element is not None and (value := element_text(element)):
            return value
    return None


def repair_title(listed: str, page_title: str | None) -> str:
    """A list title cut short ("...", "…") becomes the article page's headline when that
    headline starts with what the list showed. Both are HTML-escaped text."""
    if not page_title or not TRUNCATED.search(listed):
        return listed
    stem = TRUNCATED.sub("", listed).strip()
    cuts = [m.start() for m in _TITLE_SEPARATOR.finditer(page_title)] + [len(page_title)]
    for cut in cuts:  # the shortest headline prefix that completes the list title
        candidate = html.escape(page_title[:cut].strip(), quote=False)
        if stem and candidate.startswith(stem) and len(candidate) > len(stem):
            return candidate
    return listed


def restore_title(listed: str, stored: str) -> str:
    """The stored (clean text) title of a known article when the list shows it cut short."""
    return html.escape(stored, quote=False) if stored and TRUNCATED.search(listed) else listed


def _auto_extract(text: str, url: str) -> str | None:
    import trafilatura

    extracted = trafilatura.extract(
        text,
        url=url,
        output_format="html",
        include_links=True,
        include_images=True,
        favor_precision=True,
    )
    return extracted or None
