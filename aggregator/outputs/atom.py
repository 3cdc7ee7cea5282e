"""Stories -> one Atom 1.0 document (feedgen), valid for the W3C Feed Validation Service."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from ..config import OutputConfig
from ..model import Story
from . import also_label

GENERATOR = "edu-news-aggregator"


class _SourceFeed(BaseExtension):
    pass


class _SourceEntry(BaseEntryExtension):
    """atom:source names the site a copy came from (feedgen has no setter for it), and the
    related/enclosure links are written here because feedgen 1.0 drops every attribute of an
    entry link but href (its loop variable shadows the link data)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] | None = None
        self.links: list[dict[str, str]] = []

    def set(self, name: str, url: str, updated: datetime) -> None:
        self.values = {"name": name, "url": url, "updated": updated}

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        for link in self.links:
            etree.SubElement(entry, "link", **link)
        if self.values:
            source = etree.SubElement(entry, "source")
            etree.SubElement(source, "id").text = self.values["url"]
            etree.SubElement(source, "title").text = self.values["name"]
            etree.SubElement(source, "link", href=self.values["url"], rel="self")
            etree.SubElement(source, "updated").text = self.values["updated"].isoformat()
        return entry


def self_url(output: OutputConfig) -> str:
    return output.self_url or output.link.rstrip("/") + "/feed.atom"


def render_atom(
    stories: Sequence[Story], output: OutputConfig, source_urls: Mapping[str, str], now: datetime
) -> bytes:
    """Entries newest first (the store's order); ids derive from the story, never the copy."""
    fg = FeedGenerator()
    fg.register_extension("aggsource", _SourceFeed, _SourceEntry, atom=True, rss=False)
    fg.id(output.id)
    fg.title(output.title)
    fg.author({"name": output.author})
    fg.link(href=self_url(output), rel="self", type="application/atom+xml")
    fg.link(href=output.link, rel="alternate", type="text/html")
    fg.generator(GENERATOR)
    newest = max((s.updated for s in stories), default=now.astimezone(UTC))
    fg.updated(newest)
    for story in stories:
        _entry(fg, story, source_urls, output)
    return fg.atom_str(pretty=False, encoding="UTF-8", xml_declaration=True)


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml(text: str) -> str:
    """Last line of defence: normalize already strips these, but one bad stored row must
    never stop the feed from being built."""
    return _XML_BAD.sub("", text)


def _entry(
    fg: FeedGenerator, story: Story, source_urls: Mapping[str, str], output: OutputConfig
) -> None:
    main = story.preferred.article
    fe = fg.add_entry(order="append")
    fe.id(f"urn:uuid:{story.uid}")
    fe.title(_xml(main.title))
    fe.link(
        href=main.link or source_urls.get(main.source) or output.link,
        rel="alternate",
        type="text/html",
    )
    for other in story.others:
        if other.article.link:
            fe.aggsource.links.append(
                {"href": other.article.link, "rel": "related", "title": other.article.source}
            )
    for enclosure in main.enclosures:
        link = {"href": enclosure.url, "rel": "enclosure", "type": enclosure.type}
        if enclosure.title:
            link["title"] = enclosure.title
        if enclosure.length:
            link["length"] = str(enclosure.length)
        fe.aggsource.links.append(link)
    fe.published(main.published)
    fe.updated(story.updated)
    fe.author({"name": _xml(main.author or main.source)})
    if main.summary:
        fe.summary(_xml(main.summary))
    content = entry_html(story)
    if content:
        fe.content(_xml(content), type="html")
    for tag in dict.fromkeys(_xml(t) for copy in story.copies for t in copy.article.tags):
        if tag:
            fe.category(term=tag)
    fe.aggsource.set(main.source, source_urls.get(main.source) or output.link, story.updated)


def entry_html(story: Story) -> str:
    """The preferred copy's body, then the "also published by" line with links."""
    main = story.preferred.article
    body = main.content or ""
    if story.others:
        links = ", ".join(
            f'<a href="{escape(o.article.link)}">{escape(o.article.source)}</a>'
            if o.article.link
            else escape(o.article.source)
            for o in story.others
        )
        body += f"<p>{escape(also_label(main.title))}{links}</p>"
    return body
