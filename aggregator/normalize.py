"""Item -> Article. The order is fixed and matters:

1. resolve the link against the item's base and canonicalize it (tracking parameters out);
2. clean the title to single-line text (entities, markup, control characters, length);
3. sanitize HTML last of the content steps (nh3 allow-list; relative links made absolute);
4. compute the hashes on the cleaned text, so cosmetic noise never changes identity;
5. apply the source's include/exclude and the global rules (tags, drops).
"""

from __future__ import annotations

import hashlib
import html
import re
import threading
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3

from .config import Rule, SourceConfig
from .model import Article, Enclosure, Item

MAX_TITLE = 500
DEEP_MARKUP = 3000  # tags; above this, markup is flattened by lxml before sanitizing
SUMMARY_CHARS = 300
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")
_TAG = re.compile(r"<[^>]*>")
_BLOCK_END = re.compile(
    r"(?i)<(?:br|/p|/div|/li|/h[1-6]|/tr|/blockquote|/pre|/section|/article)\b[^>]*>"
)
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|yclid|mc_cid|mc_eid|_hsenc|_hsmi|igshid|"
    r"spm|scm|from|isappinstalled|share_token|sharer_shareid|sharer_sharetime|scene|srcid|"
    r"ref|ref_src|ref_url|wt\.mc_id|cmpid|__twitter_impression|s_kwcid|vn_\w+)$",
    re.I,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_URL_ATTRS = {"href", "src", "cite", "poster"}
_TAGS = set(nh3.ALLOWED_TAGS) - {"script", "style", "iframe", "object", "embed", "form", "input"}
_ATTRIBUTES = {tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("img", set()).update({"src", "alt", "title", "width", "height"})
_ATTRIBUTES.setdefault("a", set()).update({"href", "title"})


def canonical_url(url: str) -> str:
    """Unify the spellings of one URL: scheme/host case, default port, trailing slash,
    fragment, tracking parameters, parameter order."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)
    )
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def strip_tracking(url: str) -> str:
    """The link readers follow: tracking parameters out, everything else as published."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not _TRACKING.match(k)]
    if len(kept) == len(pairs):
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))


def clean_text(text: str | None) -> str:
    """Markup and entities to single-line plain text."""
    if not text:
        return ""
    if "<" in text:
        text = _TAG.sub("", _BLOCK_END.sub(" ", text))
    # " ".join(t.split()) == re.sub(r"\s+", " ", t).strip(): both split on str.isspace()
    return " ".join(_CONTROL.sub("", html.unescape(text)).split())


def body_text(html_text: str | None) -> str:
    """Sanitized HTML to plain text with paragraph breaks kept as newlines."""
    if not html_text:
        return ""
    text = html.unescape(_TAG.sub("", _BLOCK_END.sub("\n", html_text)))
    lines = (" ".join(line.split()) for line in _CONTROL.sub("", text).split("\n"))
    return "\n".join(line for line in lines if line)


def truncate(text: str, limit: int = SUMMARY_CHARS) -> str:
    """Cut at a sentence end if one is near the limit, else at a word, with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = max(head.rfind(mark) for mark in ("。", "！", "？", ". ", "! ", "? ", "；"))
    if cut >= limit // 2:
        return head[: cut + 1].strip()
    space = head.rfind(" ")
    return (head[:space] if space >= limit // 2 else head).rstrip() + "…"


# The base URL of the body `_CLEANER` is cleaning on this thread, for `_absolute`.
_CLEANING = threading.local()


_URL_SCHEMES = frozenset({"http", "https", "mailto"})
# How a browser reads a URL's scheme: leading C0 controls and spaces skipped, tabs and line
# breaks anywhere removed ("java\tscript:" is javascript:).
_URL_NOISE = re.compile(r"^[\x00-\x20]+|[\t\n\r]")
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")


def _allowed_url(url: str) -> bool:
    """Relative, or one of the schemes the sanitizer allows."""
    scheme = _SCHEME.match(_URL_NOISE.sub("", url))
    return scheme is None or scheme.group(1).lower() in _URL_SCHEMES


def _absolute(tag: str, attr: str, value: str) -> str | None:
    """Attribute filter: URLs made absolute against the body's base, scripts dropped. nh3
    checks schemes before this filter, not after: what the join makes is checked here (an
    empty `href` joined to a feed's `javascript:` base would be a script link)."""
    if attr in _URL_ATTRS:
        value = value.strip()
        base = _CLEANING.base
        url = _join(base, value) if base else value
        return url if url is not None and _allowed_url(url) else None
    return value


# Built once: nh3.clean with options converts them all again on every call.
_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    attributes=_ATTRIBUTES,
    attribute_filter=_absolute,
    url_schemes=set(_URL_SCHEMES),
)
# What html5ever changes in text without markup: escapes (&, <, >, no-break space), CR line
# ends, a byte order mark. Text with none of these comes out of the sanitizer unchanged.
_NOT_PLAIN = re.compile("[<>&\r\u00a0\ufeff]")
# ... checked against the installed sanitizer once, so an upgrade that changes this is safe.
_PROBE = ' Plain "text" it\'s = 1/2; #tag (x) [y] {z} \t\n教育部：“通知”，。！？ — … é 😀 \u2028 '
_PLAIN_UNCHANGED = _CLEANER.clean(_PROBE) == _PROBE


def sanitize(html_text: str | None, base: str) -> str | None:
    """The allow-list sanitizer runs last on every body: nothing reaches a reader unsanitized."""
    if not html_text or not html_text.strip():
        return None
    html_text = _CONTROL.sub("", html_text)
    if _PLAIN_UNCHANGED and not _NOT_PLAIN.search(html_text):
        return html_text.strip() or None  # plain text: what nh3 would return, faster
    if html_text.count("<") > DEEP_MARKUP:
        html_text = _shallow(html_text)
    _CLEANING.base = base
    try:
        cleaned = _CLEANER.clean(html_text)
    finally:
        _CLEANING.base = ""
    # html5ever decodes &#1; or &#xFFFE; into characters XML cannot carry: drop them again
    # (only a character reference can make one: the input has none left)
    if "&#" in html_text:
        cleaned = _CONTROL.sub("", cleaned)
    return cleaned.strip() or None


# An absolute http(s) URL that urljoin would hand back as it is: lower-case scheme, a host,
# printable ASCII only, no `[` `]` (IPv6 hosts get validated) or `;` (path parameters), no
# empty `?` or `#` (which urljoin drops). About half the URLs in bodies, and urljoin costs
# ~8 us a call. A property test checks the shortcut against urljoin.
_PLAIN_ABSOLUTE = re.compile(
    r'https?://[!"$-.0-:<->@-Z\\^-~][!"$-:<->@-Z\\^-~]*(?:\?[!"$-~]+)?(?:#[!-~]+)?'
)


def _join(base: str, url: str) -> str | None:
    """urljoin without its ValueError (a malformed IPv6 host) and without control characters."""
    if _PLAIN_ABSOLUTE.fullmatch(url):
        return url
    try:
        return _CONTROL.sub("", urljoin(base, url))
    except ValueError:
        return None


def _http(url: str | None) -> str:
    """`url` when it is absolute http(s) with a host, else ""."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return ""
    return url if url and parts.scheme in ("http", "https") and parts.hostname else ""


def _shallow(html_text: str) -> str:
    """Hostile nesting (100k open <div>s) would cost the sanitizer seconds or its stack; lxml
    caps depth at 255 and recovers, so big markup passes through it first."""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.fragment_fromstring(html_text, create_parent="div")
    except (etree.ParserError, ValueError):
        return html.escape(clean_text(html_text))
    return lxml.html.tostring(root, encoding="unicode")


def digest_of(*parts: object) -> str:
    hasher = hashlib.sha1(usedforsecurity=False)
    for part in parts:
        hasher.update(str(part).encode("utf-8", "surrogatepass"))
        hasher.update(b"\x1f")
    return hasher.hexdigest()


def identity_key(guid: str | None, url: str | None, title: str, published: datetime | None) -> str:
    """Who an item is within its source, in order of trust:
    the GUID the source gave; else the canonical URL; else title + date."""
    if guid:
        return f"guid:{guid.strip()}"
    if url:
        return f"url:{url}"
    return f"title:{digest_of(title, published.date() if published else '')}"


def normalize(
    item: Item, source: SourceConfig, rules: Sequence[Rule], now: datetime
) -> Article | None:
    """One item to one article; None when a filter or rule drops it or it has nothing to show."""
    base = _http(item.base_url) or source.url  # a feed's own base is only used if http(s)
    link = _http(_join(base, item.link.strip())) if item.link else ""
    url = canonical_url(link) if link else ""
    title = clean_text(item.title)
    if source.title_cleanup:
        title = re.sub(source.title_cleanup, "", title).strip()
    content = sanitize(item.content, base)
    summary_html = sanitize(item.summary, base)
    text = body_text(content) or body_text(summary_html)
    if not title:
        title = truncate(text.replace("\n", " "), 80)
    if not title and not url:
        return None
    title = title[:MAX_TITLE].rstrip() or "(untitled)"
    summary = truncate(clean_text(summary_html) or text.replace("\n", " "))
    published = item.published or item.updated or now
    published = min(published, now)  # dates in the future are clamped to the time seen
    haystack = f"{title}\n{text}"
    if source.include and not re.search(source.include, haystack):
        return None
    if source.exclude and re.search(source.exclude, haystack):
        return None
    tags = list(dict.fromkeys([*source.tags, *(clean_text(t)[:100] for t in item.tags)]))
    for rule in rules:
        if re.search(rule.match, haystack):
            if rule.drop:
                return None
            if rule.tag and rule.tag not in tags:
                tags.append(rule.tag)
    enclosures = tuple(
        Enclosure(
            href,
            clean_text(e.type)[:100] or "application/octet-stream",
            clean_text(e.title)[:200],
            e.length,
        )
        for e in item.enclosures
        if (href := _http(_join(base, e.url)))
    )
    guid = clean_text(item.guid)[:1000] or None
    author = clean_text(item.author)[:200] or None
    return Article(
        source=source.name,
        key=identity_key(guid, url, title, item.published),
        url=url,
        link=strip_tracking(link) if url else "",
        guid=guid,
        title=title,
        summary=summary,
        content=content,
        author=author,
        published=published,
        source_updated=item.updated,
        tags=tuple(tags),
        enclosures=enclosures,
        content_hash=digest_of(title, url, summary, content, tags, enclosures, author),
        text_hash=digest_of("".join(text.split())) if len(text) >= 40 else "",
    )
