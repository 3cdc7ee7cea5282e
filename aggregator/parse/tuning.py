"""feedparser made faster without changing what it returns (tests compare its results on the
whole sample corpus, and every dict lookup, with and without these).

Applied once, on import (parse/feed.py imports this module); each change only where
feedparser is still built the way the change relies on, else nothing is changed. Together
they took its time on the benchmark feeds from ~13 to ~9.6 ms a feed.
"""

from __future__ import annotations

import copy
import functools
import types
import xml.sax.expatreader
import xml.sax.xmlreader
from typing import Any

import feedparser.api
import feedparser.mixin
import feedparser.urls
import feedparser.util


class _BufferedExpatReader(xml.sax.expatreader.ExpatParser):
    """expat with `buffer_text`: one `characters` call per run of text instead of one per
    line and entity (`&lt;p&gt;` is three), each a trip through feedparser's handlers. What
    feedparser sees is the same text, joined. About a tenth of its time on HTML bodies."""

    def reset(self) -> None:
        super().reset()
        expat: Any = self._parser  # type: ignore[attr-defined]  # typeshed leaves it out
        expat.buffer_text = True
        expat.buffer_size = 1 << 16


def create_parser() -> xml.sax.xmlreader.XMLReader:
    """The `xml.sax` driver hook: feedparser asks `xml.sax.make_parser` for its parser by
    module name (`PREFERRED_XML_PARSERS`), so naming this module gives it the reader above.
    feedparser's own first choice, drv_libxml2, is not installed: each parse tried and
    failed to import it."""
    return _BufferedExpatReader()


def _copy_feedparser_dict(self: Any, memo: dict[int, Any]) -> Any:
    """`copy.deepcopy` of a FeedParserDict, as the generic path does it (new instance,
    attributes, then each item through `__setitem__`) without `__reduce_ex__`: feedparser
    deep-copies its content parameters for every title, summary and content it stores."""
    copied = type(self)()
    memo[id(self)] = copied
    if self.__dict__:
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
    for key, value in dict.items(self):
        copied[copy.deepcopy(key, memo)] = copy.deepcopy(value, memo)
    return copied


# FeedParserDict maps some keys (`channel` -> `feed`, `description` -> `summary` ...) and
# computes a few (`category`, `enclosures`, `license`, the `updated` fallbacks); every other
# key is a plain dict lookup, through two Python calls and often a KeyError, some 3,000
# times a feed (its handlers look up their content parameters with `get`). These do plain
# keys in C and hand the rest to feedparser's own methods, kept here.
_COMPUTED_KEYS = frozenset({"category", "enclosures", "license", "updated", "updated_parsed"})
# Every identifier in feedparser 6.0's __getitem__; a version that names another key may
# compute it too, and keeps its own lookups.
_GETITEM_NAMES = _COMPUTED_KEYS | {"enclosure", "href", "links", "published", "published_parsed"}
_GETITEM_NAMES |= {"rel", "tags", "term"}
_SLOW_LOOKUPS: dict[str, Any] = {}


def _names_in(code: types.CodeType) -> set[str]:
    names = {c for c in code.co_consts if isinstance(c, str) and c.isidentifier()}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


def _fast_plain_keys(cls: Any) -> None:
    if _names_in(cls.__getitem__.__code__) != _GETITEM_NAMES:
        return
    slow = _SLOW_LOOKUPS
    slow.update(get=cls.get, __contains__=cls.__contains__, __getitem__=cls.__getitem__)
    special = _COMPUTED_KEYS | frozenset(cls.keymap)

    def get(self: Any, key: Any, default: Any = None) -> Any:
        if key in special:
            return slow["get"](self, key, default)
        return dict.get(self, key, default)

    def contains(self: Any, key: Any) -> bool:
        if key in special:
            return bool(slow["__contains__"](self, key))
        return dict.__contains__(self, key)

    def getitem(self: Any, key: Any) -> Any:
        if key in special:
            return slow["__getitem__"](self, key)
        return dict.__getitem__(self, key)

    cls.get, cls.__contains__, cls.__getitem__ = get, contains, getitem
    cls.has_key = contains


def _speed_up_feedparser() -> None:
    """Changes that leave feedparser's results as they were (a corpus test checks): the
    reader, the deepcopy and the lookups above, and a cache for its base URI resolution (at
    every start tag it resolves the inherited base against itself, `make_safe_absolute_uri(
    base, base)` -> `urljoin`: a fifth of its time on a typical feed; the function is pure).
    Each only where feedparser is still built the way it relies on; else nothing changes."""
    mixin: Any = feedparser.mixin
    urls: Any = feedparser.urls
    if getattr(mixin, "make_safe_absolute_uri", None) is getattr(urls, "make_safe_absolute_uri", 0):
        mixin.make_safe_absolute_uri = functools.lru_cache(maxsize=256)(urls.make_safe_absolute_uri)
    api: Any = feedparser.api
    if getattr(api, "PREFERRED_XML_PARSERS", None) == ["drv_libxml2"]:
        api.PREFERRED_XML_PARSERS = [__name__]
    parser_dict: Any = feedparser.util.FeedParserDict
    if issubclass(parser_dict, dict) and not hasattr(parser_dict, "__deepcopy__"):
        parser_dict.__deepcopy__ = _copy_feedparser_dict
        _fast_plain_keys(parser_dict)


_speed_up_feedparser()
