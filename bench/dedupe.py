"""Benchmark aggregator.dedupe at start-up and steady-state sizes.

For each size N, in a fresh subprocess (so ru_maxrss peaks do not mix):

* build: fingerprint + match + add N generated articles, storing each fingerprint in a
  temporary SQLite file the way the store keeps them;
* new: fingerprint + match + add 1,000 further articles against the index of N;
* rebuild: a fresh Index from the stored rows (Fingerprint.from_stored + add, as start-up
  does), SQLite reading included;
* peak: the process's maximum resident set size.

Articles are ~1 KB: 60% Chinese, 40% English, ~20% reprints of earlier ones with title
prefixes/suffixes, source footers, a trimmed first paragraph or only a summary.

    python bench/dedupe.py --sizes 10000,50000,200000
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import html
import json
import random
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator import dedupe
from aggregator.config import DedupeConfig
from aggregator.model import Article

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=13)  # every article lies within the 14-day window: all are candidates
SOURCES = 40
REPRINT_SHARE = 0.2
CJK_POOL = [chr(c) for c in random.Random(7).sample(range(0x4E00, 0x9FA6), 2500)]
SYLLABLES = [
    "ba",
    "ce",
    "di",
    "fo",
    "gu",
    "ha",
    "je",
    "ki",
    "lo",
    "mu",
    "na",
    "pe",
    "qui",
    "ro",
    "sa",
    "te",
    "vi",
    "wo",
    "xa",
    "ye",
    "zu",
    "an",
    "er",
    "in",
    "on",
    "st",
]


@dataclass(frozen=True)
class Vocab:
    """Zipf-weighted word lists, so unrelated texts share common words as real ones do."""

    zh: list[str]
    en: list[str]
    weights: list[float]

    @classmethod
    def make(cls, size: int = 6000) -> Vocab:
        rng = random.Random(11)
        zh = ["".join(rng.choices(CJK_POOL, k=rng.choice((1, 2, 2, 2, 3)))) for _ in range(size)]
        en = ["".join(rng.choices(SYLLABLES, k=rng.choice((1, 2, 2, 3, 4)))) for _ in range(size)]
        cumulative, total = [], 0.0
        for rank in range(1, size + 1):
            total += 1 / rank
            cumulative.append(total)
        return cls(zh, en, cumulative)


VOCAB = Vocab.make()


def _sentence(rng: random.Random, zh: bool) -> str:
    words = rng.choices(
        VOCAB.zh if zh else VOCAB.en, cum_weights=VOCAB.weights, k=rng.randint(6, 14)
    )
    if zh:
        return "".join(words) + rng.choice("，。。")
    return " ".join(words).capitalize() + "."


def _paragraphs(rng: random.Random, zh: bool) -> list[str]:
    """~1 KB of UTF-8: ~330 CJK characters or ~1,000 latin ones, in 4-6 paragraphs."""
    target = 330 if zh else 1000
    count = rng.randint(4, 6)
    out = []
    for _ in range(count):
        text = ""
        while len(text) < target / count:
            text += _sentence(rng, zh) + ("" if zh else " ")
        out.append(text.strip())
    return out


@dataclass(frozen=True)
class Original:
    zh: bool
    title: str
    paragraphs: list[str]


def original(seed: int, i: int) -> Original:
    """Article i as first published: a pure function of (seed, i), so reprints can rebuild it."""
    rng = random.Random(seed * 10_000_019 + i)
    zh = rng.random() < 0.6
    if rng.random() < 0.01:
        title = rng.choice(("工作动态", "Weekly roundup", "教育部新闻发布会", "News in brief"))
    elif zh:
        title = "".join(rng.choices(VOCAB.zh, cum_weights=VOCAB.weights, k=rng.randint(5, 9)))
    else:
        words = rng.choices(VOCAB.en, cum_weights=VOCAB.weights, k=rng.randint(5, 9))
        title = " ".join(words).title()
    paragraphs = _paragraphs(rng, zh)
    if zh and rng.random() < 0.03:
        paragraphs.insert(0, f"教{rng.choice('职基高发')}函〔2026〕{rng.randint(1, 300)}号")
    return Original(zh, title, paragraphs)


def _footer(source: int, zh: bool) -> list[str]:
    """Every source repeats its own furniture: learned as boilerplate after three articles."""
    if zh:
        return [
            f"本网站第{source}号信息平台版权所有，未经授权禁止转载或建立镜像。",
            "（责任编辑：张某）",
        ]
    return [f"Copyright Site {source} Education Press. All rights reserved.", "Share this story"]


@dataclass(frozen=True)
class Generated:
    article: Article
    origin: int  # the id of the original this copies, or its own id


def _reprint(rng: random.Random, source: int, item: Original) -> tuple[str, list[str], bool]:
    """A copy as another site runs it: title with the site's prefix or suffix (or partly
    rewritten), body whole, without its first paragraph, or only a summary."""
    site = f"站点{source}" if item.zh else f"Site {source}"
    roll = rng.random()
    title = item.title
    if roll < 0.35:
        title = f"【{site}】{title}" if item.zh else f"[{site}] {title}"
    elif roll < 0.7:
        title = f"{title} - {site}" if rng.random() < 0.5 else f"{title} | {site}"
    elif roll < 0.85:
        title = _rewrite(rng, item)
    paragraphs, summary_only = list(item.paragraphs), False
    roll = rng.random()
    if roll < 0.25:
        paragraphs = paragraphs[1:]
    elif roll < 0.4 and title == item.title:
        summary_only = True
    return title, paragraphs, summary_only


def _rewrite(rng: random.Random, item: Original) -> str:
    """An editor's new headline: the first half of the original kept, new words after it."""
    if item.zh:
        tail = "".join(rng.choices(VOCAB.zh, cum_weights=VOCAB.weights, k=3))
        return item.title[: len(item.title) // 2 + 1] + tail
    words = item.title.split()
    extra = rng.choices(VOCAB.en, cum_weights=VOCAB.weights, k=2)
    return " ".join([*words[: len(words) // 2 + 1], *extra]).title()


def generate(seed: int, i: int) -> Generated:
    """Article i: an original, or (20%) a reprint of an earlier original by another source."""
    rng = random.Random(seed * 7_000_003 + i)
    source = rng.randrange(SOURCES)
    origin = i
    if i > 20 and rng.random() < REPRINT_SHARE:
        origin = rng.randrange(max(0, i - 5000), i)
        while _is_reprint(seed, origin):
            origin = rng.randrange(max(0, i - 5000), i)
    item = original(seed, origin)
    if origin == i:
        title, paragraphs, summary_only = item.title, item.paragraphs, False
    else:
        title, paragraphs, summary_only = _reprint(rng, source, item)
    published = T0 + SPAN * (i / 300_000)
    return Generated(
        _article(source, i, title, paragraphs, summary_only, published, item.zh), origin
    )


def _is_reprint(seed: int, i: int) -> bool:
    rng = random.Random(seed * 7_000_003 + i)
    rng.randrange(SOURCES)
    return i > 20 and rng.random() < REPRINT_SHARE


def _article(
    source: int,
    i: int,
    title: str,
    paragraphs: list[str],
    summary_only: bool,
    published: datetime,
    zh: bool,
) -> Article:
    body = [*paragraphs, *_footer(source, zh)]
    text = "\n".join(body)
    squeezed = re.sub(r"\s+", "", text)
    url = f"https://site{source}.example/a/{i}"
    return Article(
        source=f"site{source}",
        key=url,
        url=url,
        link=url,
        guid=None,
        title=title,
        summary=text[:300],
        content=None if summary_only else "".join(f"<p>{html.escape(p)}</p>" for p in body),
        author=None,
        published=published,
        source_updated=None,
        tags=(),
        enclosures=(),
        content_hash="",
        text_hash=hashlib.sha1(squeezed.encode()).hexdigest() if not summary_only else "",
    )


@dataclass
class Tally:
    """How well the matching did against the generator's ground truth."""

    reprints: int = 0
    found: int = 0
    originals: int = 0
    false_merges: int = 0

    def count(self, item: Generated, decision: dedupe.Decision, stories: dict[int, int]) -> None:
        if item.origin != _id(item):
            self.reprints += 1
            self.found += decision.story_id == stories.get(item.origin)
        else:
            self.originals += 1
            self.false_merges += decision.story_id is not None


def _id(item: Generated) -> int:
    return int(item.article.url.rsplit("/", 1)[1])


def _entry(item: Generated, fp: dedupe.Fingerprint, story: int) -> dedupe.Entry:
    a = item.article
    return dedupe.Entry(
        _id(item), story, a.source, a.url, a.guid, a.text_hash, a.published, a.title, fp
    )


def process(
    index: dedupe.Index, item: Generated, stories: dict[int, int]
) -> tuple[dedupe.Decision, dedupe.Fingerprint]:
    """What the pipeline does for one new article: fingerprint, match, assign, add."""
    fp = index.fingerprint(item.article)
    decision = index.match(item.article, fp)
    story = decision.story_id if decision.story_id is not None else _id(item)
    index.add(_entry(item, fp, story))
    stories[_id(item)] = story
    return decision, fp


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _store(db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    db.executemany("insert into a values (?,?,?,?,?,?,?,?,?,?,?)", rows)
    rows.clear()


def build(
    size: int, seed: int, db: sqlite3.Connection, stories: dict[int, int]
) -> tuple[dedupe.Index, float, Tally]:
    """Index N articles, storing fingerprints; returns the index and the dedupe seconds."""
    index = dedupe.Index(DedupeConfig())
    rows: list[tuple[object, ...]] = []
    spent, tally = 0.0, Tally()
    for i in range(size):
        item = generate(seed, i)
        start = time.perf_counter()
        decision, fp = process(index, item, stories)
        spent += time.perf_counter() - start
        tally.count(item, decision, stories)
        a = item.article
        rows.append(
            (
                i,
                stories[i],
                a.source,
                a.url,
                a.guid,
                a.text_hash,
                a.published.timestamp(),
                a.title,
                fp.title_key,
                fp.doc_number,
                fp.signature,
            )
        )
        if len(rows) >= 5000:
            _store(db, rows)
    _store(db, rows)
    db.commit()
    return index, spent, tally


def new_articles(
    index: dedupe.Index, size: int, count: int, seed: int, stories: dict[int, int]
) -> tuple[float, Tally]:
    """Fingerprint + match + add `count` articles against the index of `size`."""
    items = [generate(seed, size + i) for i in range(count)]
    tally = Tally()
    start = time.perf_counter()
    decisions = [process(index, item, stories)[0] for item in items]
    elapsed = time.perf_counter() - start
    for item, decision in zip(items, decisions, strict=True):
        tally.count(item, decision, stories)
    return elapsed, tally


def stored_rows(db: sqlite3.Connection) -> Iterator[tuple[object, ...]]:
    yield from db.execute("select * from a order by id")


def rebuild(db: sqlite3.Connection) -> tuple[dedupe.Index, float]:
    """Start-up: a fresh index from stored rows, no bodies read."""
    start = time.perf_counter()
    index = dedupe.Index(DedupeConfig())
    for row in stored_rows(db):
        aid, story, source, url, guid, text_hash, published, title, key, doc, sig = row
        fp = dedupe.Fingerprint.from_stored(key, doc, sig)  # type: ignore[arg-type]
        when = datetime.fromtimestamp(published, UTC)  # type: ignore[arg-type]
        index.add(dedupe.Entry(aid, story, source, url, guid, text_hash, when, title, fp))  # type: ignore[arg-type]
    return index, time.perf_counter() - start


def run_one(size: int, new: int, seed: int) -> dict[str, float]:
    """One size in this process; returns the figures as a dict."""
    base = _rss_mb()
    with tempfile.TemporaryDirectory() as folder:
        db = sqlite3.connect(Path(folder) / "store.db")
        db.execute(
            "create table a (id integer primary key, story, source, url, guid, "
            "text_hash, published, title, title_key, doc, signature blob)"
        )
        start = time.perf_counter()
        stories: dict[int, int] = {}
        index, spent, built = build(size, seed, db, stories)
        total = time.perf_counter() - start
        after_build = _rss_mb()
        new_s, fresh = new_articles(index, size, new, seed, stories)
        del index, stories
        gc.collect()
        index, rebuild_s = rebuild(db)
        assert len(index) == size
        db.close()
    return {
        "size": size,
        "build_s": spent,
        "build_wall_s": total,
        "new_s": new_s,
        "per_1000_s": new_s * 1000 / new,
        "rebuild_s": rebuild_s,
        "rss_base_mb": base,
        "rss_built_mb": after_build,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "recall": (built.found + fresh.found) / max(1, built.reprints + fresh.reprints),
        "false_merge": (built.false_merges + fresh.false_merges)
        / max(1, built.originals + fresh.originals),
    }


def table(results: list[dict[str, float]]) -> str:
    head = (
        f"{'N':>8} {'build s':>8} {'1000 new s':>10} {'rebuild s':>9} {'peak MB':>8} "
        f"{'index MB':>8} {'recall':>7} {'false':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{int(r['size']):>8} {r['build_s']:>8.1f} {r['per_1000_s']:>10.2f} "
            f"{r['rebuild_s']:>9.1f} {r['peak_mb']:>8.0f} "
            f"{r['rss_built_mb'] - r['rss_base_mb']:>8.0f} {r['recall']:>7.1%} "
            f"{r['false_merge']:>7.2%}"
        )
    return "\n".join(lines)


LEGEND = """
build s: dedupe time for N articles (generation excluded); 1000 new s: fingerprint + match + add
of 1,000 articles against N; rebuild s: from_stored + add of N rows, SQLite read included;
peak MB: ru_maxrss of the process; index MB: RSS growth while building; recall: reprints
joined to their original's story; false: originals wrongly merged into another story."""


def run_child(size: int, new: int, seed: int) -> dict[str, float]:
    """One size in a fresh interpreter, so each peak RSS is that size's alone."""
    command = [sys.executable, __file__, "--one", str(size), "--new", str(new)]
    child = subprocess.run(
        [*command, "--seed", str(seed)], capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        default="10000,50000,200000",
        help="comma-separated index sizes, each run in a fresh process",
    )
    parser.add_argument("--new", type=int, default=1000, help="new articles to time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: one size, JSON out
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.new, args.seed)))
        return 0
    results = []
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        results.append(run_child(size, args.new, args.seed))
        print(f"done {size}: {json.dumps(results[-1])}", file=sys.stderr, flush=True)
    print(table(results))
    print(LEGEND)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
