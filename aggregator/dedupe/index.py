"""The index: the entries of the last window, searchable by every stage's keys, and the lines
each source repeats in its articles (its boilerplate), learned as articles arrive."""

from __future__ import annotations

import zlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ..config import DedupeConfig
from ..model import Article
from .data import (
    BOILERPLATE_REPEATS,
    STAGE_DISABLED,
    STAGE_DOC,
    STAGE_GUID,
    STAGE_NEAR,
    STAGE_NEW,
    STAGE_TEXT,
    STAGE_TITLE,
    STAGE_URL,
    Decision,
    Entry,
    Fingerprint,
    Verdict,
    posix_seconds,
)
from .fingerprints import Prepared, fingerprint, fingerprint_lines
from .lsh import Bands, lsh_shape
from .stages import (
    is_global_guid,
    match_doc_number,
    match_near_duplicate,
    match_title,
    titles_contradict,
)
from .text import body_text, content_lines, is_generic_title, line_words


class _SourceLines:
    """One source's line counts: two arrays sorted by line key, ~6 bytes a line where a dict
    takes ~90 with its int objects (a thousand sources keep ~350 lines each)."""

    __slots__ = ("counts", "keys")

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        ordered = sorted(pairs)
        self.keys = array("I", [k for k, _ in ordered])
        self.counts = array("H", [c for _, c in ordered])

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, key: int) -> int:
        at = bisect_left(self.keys, key)
        if at < len(self.keys) and self.keys[at] == key:
            return self.counts[at]
        raise KeyError(key)

    def get(self, key: int) -> int:
        try:
            return self[key]
        except KeyError:
            return 0

    def count(self, key: int) -> int:
        """One more article with this line; returns how many have had it."""
        keys = self.keys
        at = bisect_left(keys, key)
        if at < len(keys) and keys[at] == key:
            seen = self.counts[at] = min(self.counts[at] + 1, 0xFFFF)
            return seen
        keys.insert(at, key)
        self.counts.insert(at, 1)
        return 1

    def items(self) -> Iterable[tuple[int, int]]:
        return zip(self.keys, self.counts, strict=True)


class _LineCounts:
    """Per source: in how many articles each (hashed) body line appeared.

    Bounded: when a source's table passes LIMIT lines, lines seen once are forgotten (real
    boilerplate recurs in most articles and survives), so memory stays ~LIMIT a source.
    """

    LIMIT = 4096

    def __init__(self) -> None:
        self._counts: dict[str, _SourceLines] = {}

    def known(self, source: str) -> frozenset[int]:
        lines = self._counts.get(source, _SourceLines())
        return frozenset(k for k, c in lines.items() if c >= BOILERPLATE_REPEATS)

    def observe(self, source: str, keys: Iterable[int]) -> frozenset[int]:
        """Count one article's lines; return those that are now boilerplate of the source."""
        lines = self._counts.setdefault(source, _SourceLines())
        unique = set(keys)
        seen = {key: lines.count(key) for key in unique}
        if len(lines) > self.LIMIT:
            kept = [(k, c) for k, c in lines.items() if c >= 2]
            if len(kept) > self.LIMIT // 2:
                kept = sorted(kept, key=lambda kc: -kc[1])[: self.LIMIT // 2]
            self._counts[source] = lines = _SourceLines(kept)
            seen = {key: lines.get(key) for key in unique}
        return frozenset(k for k, c in seen.items() if c >= BOILERPLATE_REPEATS)


class _MultiMap:
    """Key hash -> rows; an int for the usual single row, a list only when several share it."""

    def __init__(self) -> None:
        self._map: dict[int, int | list[int]] = {}

    def add(self, key: int, row: int) -> None:
        old = self._map.get(key)
        if old is None:
            self._map[key] = row
        elif isinstance(old, list):
            old.append(row)
        else:
            self._map[key] = [old, row]

    def get(self, key: int) -> Sequence[int]:
        rows = self._map.get(key)
        return () if rows is None else rows if isinstance(rows, list) else (rows,)


def _key(text: str | None) -> int:
    """In-memory identity of a key string (0: absent), so the index holds no URL or GUID
    text. The index is rebuilt in every process, so Python's per-process string hash will
    do; a chance 64-bit collision among 200k keys has odds of about 1e-9."""
    return (hash(text) or 1) if text else 0


class _Row(NamedTuple):
    """What the index keeps of one entry: keys as hashes, no body, no URL text."""

    article_id: int
    story_id: int
    source: str
    published: int  # POSIX seconds
    title_key: str
    doc_number: str | None
    signature: bytes | None
    url: int
    guid: int
    text: int


class Index:
    """The entries of the last window in memory, searchable by every stage's keys.

    Keeps no bodies and no URL text: per entry the 520-byte signature, the title key, a few
    8-byte columns, 256 bytes of LSH keys and rows, and the key tables. Measured with
    bench/dedupe.py: 200k entries grow the process by ~330 MB (433 MB peak), well under the
    1 GB budget. Call `prune` now and then to drop entries older than the window.
    """

    def __init__(self, config: DedupeConfig) -> None:
        self.config = config
        self._window = int(config.window.total_seconds())
        self._lines = _LineCounts()
        # The highest article id ever added (kept through `prune`): what a process sharing the
        # database has stored since is what has a higher id (ids are handed out in order).
        self.newest_article = 0
        self._clear()

    def _clear(self) -> None:
        self._bands = Bands(*lsh_shape(self.config.threshold))
        self._queried: tuple[bytes | None, npt.NDArray[np.uint32] | None] = (None, None)
        self._article, self._story, self._published = array("q"), array("q"), array("q")
        self._url, self._guid, self._text = array("q"), array("q"), array("q")
        self._source = array("i")
        self._source_names: list[str] = []
        self._source_ids: dict[str, int] = {}
        self._title: list[str] = []
        self._doc: list[str | None] = []
        self._sig: list[bytes | None] = []
        self._by_url, self._by_guid, self._by_text = _MultiMap(), _MultiMap(), _MultiMap()
        self._by_doc, self._by_title = _MultiMap(), _MultiMap()

    def __len__(self) -> int:
        return len(self._article)

    def fingerprint(self, article: Article) -> Fingerprint:
        """Fingerprint a NEW article, learning its source's boilerplate lines on the way:
        call once per article (each call counts its lines)."""
        lines = content_lines(body_text(article))
        words = line_words(lines)
        keys = (
            zlib.crc32(w.encode("utf-8"))
            for line, w in zip(lines, words, strict=True)
            if len(line) <= 300
        )
        drop = self._lines.observe(article.source, keys)
        return fingerprint_lines(article.title, lines, words, drop)

    def fingerprint_prepared(self, article: Article, prepared: Prepared) -> Fingerprint:
        """`fingerprint` for an article prepared in a worker: same counting, same result."""
        drop = self._lines.observe(article.source, prepared.line_keys)
        if drop == prepared.drop:
            return prepared.fp
        return fingerprint(article, drop)

    def boilerplate(self, source: str) -> frozenset[int]:
        """The lines known to recur in a source's articles (sent along with parse jobs)."""
        return self._lines.known(source)

    def match(self, article: Article, fp: Fingerprint) -> Decision:
        """The story a new article joins: the first stage with a match decides."""
        if not self.config.enabled:
            return Decision(None, STAGE_DISABLED, 0.0, "dedupe is disabled")
        when = posix_seconds(article.published)
        stages = (self._match_keys, self._match_doc, self._match_title, self._match_near)
        for stage in stages:
            decision = stage(article, fp, when)
            if decision is not None:
                return decision
        return Decision(None, STAGE_NEW, 0.0, "no earlier copy within the window")

    def add(self, entry: Entry) -> None:
        """Make an assigned article findable by the articles after it."""
        guid = entry.guid if is_global_guid(entry.guid) else None
        row = _Row(
            entry.article_id,
            entry.story_id,
            entry.source,
            posix_seconds(entry.published),
            entry.fp.title_key,
            entry.fp.doc_number,
            entry.fp.signature,
            _key(entry.url),
            _key(guid),
            _key(entry.text_hash),
        )
        self._append(row)

    def prune(self, before: datetime) -> int:
        """Drop entries published before `before` (e.g. now - window); returns how many."""
        cutoff = posix_seconds(before)
        keep = [self._row(i) for i in range(len(self)) if self._published[i] >= cutoff]
        removed = len(self) - len(keep)
        if removed:
            self._clear()
            for row in keep:
                self._append(row)
        return removed

    def _append(self, row: _Row) -> None:
        index = len(self._article)
        self.newest_article = max(self.newest_article, row.article_id)
        source = self._source_ids.setdefault(row.source, len(self._source_names))
        if source == len(self._source_names):
            self._source_names.append(row.source)
        self._source.append(source)
        self._article.append(row.article_id)
        self._story.append(row.story_id)
        self._published.append(row.published)
        self._title.append(row.title_key)
        self._doc.append(row.doc_number)
        self._sig.append(row.signature)
        self._url.append(row.url)
        self._guid.append(row.guid)
        self._text.append(row.text)
        tables = (
            (self._by_url, row.url),
            (self._by_guid, row.guid),
            (self._by_text, row.text),
            (self._by_doc, _key(row.doc_number)),
            (self._by_title, _key(row.title_key)),
        )
        for table, key in tables:
            if key:
                table.add(key, index)
        hashes = Fingerprint(row.title_key, None, row.signature).hashes
        if hashes is not None:
            signature, keys = self._queried
            self._bands.add(index, hashes, keys if signature is row.signature else None)

    def _row(self, i: int) -> _Row:
        return _Row(
            self._article[i],
            self._story[i],
            self._source_names[self._source[i]],
            self._published[i],
            self._title[i],
            self._doc[i],
            self._sig[i],
            self._url[i],
            self._guid[i],
            self._text[i],
        )

    def _fp(self, row: int) -> Fingerprint:
        return Fingerprint(self._title[row], self._doc[row], self._sig[row])

    def _in_window(self, rows: Iterable[int], when: int) -> list[int]:
        """Rows published within the window of `when`, newest first."""
        published, window = self._published, self._window
        return sorted((r for r in rows if abs(published[r] - when) <= window), reverse=True)

    def _decision(self, row: int, stage: str, score: float, detail: str) -> Decision:
        source = self._source_names[self._source[row]]
        where = f"article {self._article[row]} from {source}"
        return Decision(self._story[row], stage, score, f"{detail} ({where})")

    def _match_keys(self, article: Article, fp: Fingerprint, when: int) -> Decision | None:
        """Stage 1a via the key tables; see `match_exact`."""
        guid = article.guid if is_global_guid(article.guid) else None
        probes = (
            (STAGE_URL, self._by_url, _key(article.url)),
            (STAGE_GUID, self._by_guid, _key(guid)),
            (STAGE_TEXT, self._by_text, _key(article.text_hash)),
        )
        for stage, table, key in probes:
            for row in self._in_window(table.get(key), when) if key else ():
                if stage == STAGE_TEXT and titles_contradict(fp.title_key, self._title[row]):
                    continue
                return self._decision(row, stage, 1.0, f"same {stage}")
        return None

    def _match_doc(self, article: Article, fp: Fingerprint, when: int) -> Decision | None:
        """Stage 1b; see `match_doc_number`."""
        if not fp.doc_number:
            return None
        for row in self._in_window(self._by_doc.get(_key(fp.doc_number)), when):
            verdict = match_doc_number(fp, self._fp(row), self.config.threshold)
            if verdict.matched:
                return self._decision(row, STAGE_DOC, verdict.score, verdict.detail)
        return None

    def _match_title(self, article: Article, fp: Fingerprint, when: int) -> Decision | None:
        """Stage 2; see `match_title`."""
        if not fp.title_key or is_generic_title(fp.title_key):
            return None
        for row in self._in_window(self._by_title.get(_key(fp.title_key)), when):
            verdict = match_title(fp, self._fp(row))
            if verdict.matched:
                return self._decision(row, STAGE_TITLE, verdict.score, verdict.detail)
        return None

    def _match_near(self, article: Article, fp: Fingerprint, when: int) -> Decision | None:
        """Stage 3: LSH candidates, verified by `match_near_duplicate`; the best one wins."""
        hashes = fp.hashes
        if hashes is None:
            return None
        best: tuple[Verdict, int] | None = None
        keys = self._bands.keys(hashes)
        self._queried = fp.signature, keys  # `add` of this article reuses them
        for row in self._in_window(self._bands.query(keys), when):
            verdict = match_near_duplicate(fp, self._fp(row), self.config.threshold)
            if verdict.matched and (best is None or verdict.score > best[0].score):
                best = verdict, row
        if best is None:
            return None
        return self._decision(best[1], STAGE_NEAR, best[0].score, best[0].detail)
