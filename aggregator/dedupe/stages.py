"""Pair judgements: would one article join another's story, stage by stage.

Each `match_*` judges one pair in one stage and says why. `compare` runs them all on one pair,
in the order `Index.match` runs them on its candidates (for `aggregator explain`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import timedelta

import numpy as np

from ..config import DedupeConfig
from ..model import Story
from .data import (
    BODIES_DISAGREE,
    FULL_BODY,
    NUM_PERM,
    STAGE_DOC,
    STAGE_GUID,
    STAGE_NEAR,
    STAGE_NEW,
    STAGE_TEXT,
    STAGE_TITLE,
    STAGE_URL,
    TEMPLATE_SHARE,
    TITLE_AGREES,
    TITLES_UNRELATED,
    Decision,
    Entry,
    Fingerprint,
    Verdict,
    posix_seconds,
)
from .text import CJK_CHAR, is_generic_title, weight


def _grams(key: str) -> set[str]:
    """Character bigrams for CJK keys, trigrams for latin ones (letters repeat too much)."""
    n = 2 if 2 * len(CJK_CHAR.findall(key)) >= len(key) else 3
    if len(key) <= n:
        return {key} if key else set()
    return {key[i : i + n] for i in range(len(key) - n + 1)}


def title_similarity(a: str, b: str) -> float:
    """Dice coefficient of the keys' n-gram sets: 1.0 for equal keys, ~0 for unrelated."""
    if a == b:
        return 1.0 if a else 0.0
    ga, gb = _grams(a), _grams(b)
    if not ga or not gb:
        return 0.0
    return 2 * len(ga & gb) / (len(ga) + len(gb))


_CN_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "两": 2}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMBER = re.compile(r"(第?)(\d+)(\D?)")
_CN_ORDINAL = re.compile(r"第([零〇一二两三四五六七八九十百千]+)(\D?)")


def _cn_int(text: str) -> int:
    total = digit = 0
    for char in text:
        if char in _CN_DIGITS:
            digit = _CN_DIGITS[char]
        else:
            total += (digit or 1) * _CN_UNITS[char]
            digit = 0
    return total + digit


def title_numbers(key: str) -> dict[str, set[int]]:
    """Numbers in a title key by what they count: `第` before and the character after
    (第十二场 -> {"第场": {12}}, 3月5日 -> {"月": {3}, "日": {5}}, 2026年 -> {"年": {2026}})."""
    numbers: dict[str, set[int]] = {}
    for ordinal, digits, unit in _NUMBER.findall(key):
        numbers.setdefault(ordinal + unit, set()).add(int(digits))
    for numeral, unit in _CN_ORDINAL.findall(key):
        numbers.setdefault("第" + unit, set()).add(_cn_int(numeral))
    return numbers


def _numbers_differ(a: str, b: str) -> str | None:
    """Numbers of the same kind that differ both ways (第12场 vs 第13场, 5日 vs 6日); a count
    one title adds (`…招聘人才25名`) or a year it drops is no contradiction."""
    na, nb = title_numbers(a), title_numbers(b)
    for unit in na.keys() & nb.keys():
        if not (na[unit] <= nb[unit] or nb[unit] <= na[unit]):
            return f"titles carry different numbers ({sorted(na[unit])} vs {sorted(nb[unit])})"
    return None


def _template_diff(a: str, b: str) -> tuple[int, int, str, str]:
    """Shared prefix and suffix lengths and the two differing middles of two keys."""
    shortest = min(len(a), len(b))
    prefix = 0
    while prefix < shortest and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < shortest - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1
    return prefix, suffix, a[prefix : len(a) - suffix], b[prefix : len(b) - suffix]


def titles_contradict(a: str, b: str) -> str | None:
    """Why two title keys cannot be the same story, or None.

    Numbers of one kind that differ (第12场 vs 第13场, 5日 vs 6日); two long titles sharing almost nothing; or one template filled with different names
    (`河东…学院职业教育集团成立大会顺利举行` vs `江南…`): most of the title shared, including
    its ending, and both differing middles substantial and unlike each other. A shared
    beginning with a new ending is how editors rewrite headlines, so it is no contradiction.
    """
    if a == b or not a or not b:
        return None
    numbers = _numbers_differ(a, b)
    if numbers:
        return numbers
    if min(weight(a), weight(b)) >= 10 and title_similarity(a, b) < TITLES_UNRELATED:
        return "titles share almost nothing"
    prefix, suffix, left, right = _template_diff(a, b)
    if (
        prefix + suffix >= TEMPLATE_SHARE * max(len(a), len(b))
        and weight(a[len(a) - suffix :]) >= 2
        and min(weight(left), weight(right)) >= 2
        and title_similarity(left, right) < 0.5
    ):
        return f"same title template, different names ({left!r} vs {right!r})"
    return None


def body_similarity(a: Fingerprint, b: Fingerprint) -> tuple[float, float]:
    """Estimated Jaccard and containment (of the smaller set in the larger) of two texts'
    shingle sets; (0, 0) when either has no signature."""
    ha, hb = a.hashes, b.hashes
    if ha is None or hb is None:
        return 0.0, 0.0
    jaccard = float(np.count_nonzero(ha == hb)) / NUM_PERM
    sa, sb = a.shingles, b.shingles
    if not sa or not sb:
        return jaccard, 0.0
    shared = jaccard * (sa + sb) / (1 + jaccard)
    return jaccard, min(1.0, shared / min(sa, sb))


def bodies_disagree(a: Fingerprint, b: Fingerprint) -> str | None:
    """Why two bodies are different texts, or None. Only full bodies can disagree: a summary
    (short, or the first paragraph of the full text) agrees with anything."""
    if a.signature is None or b.signature is None:
        return None
    if min(a.body_chars, b.body_chars) < FULL_BODY:
        return None
    jaccard, containment = body_similarity(a, b)
    if containment < BODIES_DISAGREE:
        return f"bodies differ (Jaccard {jaccard:.2f}, containment {containment:.2f})"
    return None


_COMMENTARY = re.compile(
    r"解读|答记者问|答问|问答|图解|一图读懂|一图看懂|读懂|评论|评析|述评|热议|专家谈|explainer"
    r"|explained|analysis|opinion|whatitmeans|qa"
)


def match_doc_number(a: Fingerprint, b: Fingerprint, threshold: float) -> Verdict:
    """Stage 1b: the same document number joins only with agreeing titles or bodies; a
    解读/答记者问 citing the number is another story than the document itself."""
    if not a.doc_number or a.doc_number != b.doc_number:
        return Verdict(False, 0.0, "no shared document number")
    if bool(_COMMENTARY.search(a.title_key)) != bool(_COMMENTARY.search(b.title_key)):
        return Verdict(False, 0.0, f"{a.doc_number}: one is a commentary on the other")
    title = title_similarity(a.title_key, b.title_key)
    contradiction = titles_contradict(a.title_key, b.title_key)
    if title >= TITLE_AGREES and not contradiction and not is_generic_title(a.title_key):
        return Verdict(True, title, f"{a.doc_number} and titles agree ({title:.2f})")
    jaccard, containment = body_similarity(a, b)
    if jaccard >= threshold / 2 or containment >= 0.8:
        return Verdict(True, jaccard, f"{a.doc_number} and bodies agree (Jaccard {jaccard:.2f})")
    return Verdict(False, max(title, jaccard), f"{a.doc_number} shared, titles and bodies differ")


def match_title(a: Fingerprint, b: Fingerprint) -> Verdict:
    """Stage 2: equal title keys, unless the title is generic or the bodies disagree."""
    if not a.title_key or a.title_key != b.title_key:
        return Verdict(False, title_similarity(a.title_key, b.title_key), "titles differ")
    if is_generic_title(a.title_key):
        return Verdict(False, 1.0, f"title {a.title_key!r} is too generic to merge on")
    disagreement = bodies_disagree(a, b)
    if disagreement:
        return Verdict(False, 1.0, f"same title but {disagreement}")
    return Verdict(True, 1.0, f"same normalized title {a.title_key!r}")


def match_near_duplicate(a: Fingerprint, b: Fingerprint, threshold: float) -> Verdict:
    """Stage 3: MinHash Jaccard of title + body at least `threshold`, titles not contradicting."""
    if a.signature is None or b.signature is None:
        return Verdict(False, 0.0, "no body signature to compare")
    jaccard, _ = body_similarity(a, b)
    if jaccard < threshold:
        return Verdict(False, jaccard, f"text Jaccard {jaccard:.2f} < {threshold:.2f}")
    contradiction = titles_contradict(a.title_key, b.title_key)
    if contradiction:
        return Verdict(False, jaccard, f"text Jaccard {jaccard:.2f} but {contradiction}")
    return Verdict(True, jaccard, f"text Jaccard {jaccard:.2f} >= {threshold:.2f}")


def is_global_guid(guid: str | None) -> bool:
    """GUIDs that identify an article across sites (URLs, tag:/urn: URIs, long ids); a short
    number is only unique within its own source."""
    if not guid:
        return False
    return "://" in guid or guid.startswith(("tag:", "urn:")) or len(guid) >= 24


def match_exact(a: Entry, b: Entry) -> Verdict:
    """Stage 1a: canonical URL, global GUID, or body text hash (the latter only with titles
    that do not contradict: some sources give every item the same boilerplate summary)."""
    if a.url and a.url == b.url:
        return Verdict(True, 1.0, f"same URL {a.url}")
    if is_global_guid(a.guid) and a.guid == b.guid:
        return Verdict(True, 1.0, f"same GUID {a.guid}")
    if a.text_hash and a.text_hash == b.text_hash:
        contradiction = titles_contradict(a.fp.title_key, b.fp.title_key)
        if not contradiction:
            return Verdict(True, 1.0, "same body text hash")
        return Verdict(False, 1.0, f"same body text hash but {contradiction}")
    return Verdict(False, 0.0, "no shared URL, GUID or body hash")


def compare(a: Entry, b: Entry, config: DedupeConfig) -> Decision:
    """Would `a` join `b`'s story? Every stage in order, as the index runs them, with the
    reasons of the stages that did not match (for `aggregator explain URL_A URL_B`)."""
    gap = timedelta(seconds=abs(posix_seconds(a.published) - posix_seconds(b.published)))
    if gap > config.window:
        return Decision(None, STAGE_NEW, 0.0, f"published {gap} apart, window is {config.window}")
    exact = match_exact(a, b)
    if exact.matched:
        return Decision(b.story_id, _exact_stage(a, b), exact.score, exact.detail)
    verdicts = [
        (STAGE_DOC, match_doc_number(a.fp, b.fp, config.threshold)),
        (STAGE_TITLE, match_title(a.fp, b.fp)),
        (STAGE_NEAR, match_near_duplicate(a.fp, b.fp, config.threshold)),
    ]
    for stage, verdict in verdicts:
        if verdict.matched:
            return Decision(b.story_id, stage, verdict.score, verdict.detail)
    score = verdicts[-1][1].score  # the text Jaccard, also when below the threshold
    reasons = "; ".join(f"{stage}: {v.detail}" for stage, v in [(STAGE_TEXT, exact), *verdicts])
    return Decision(None, STAGE_NEW, score, reasons)


def _exact_stage(a: Entry, b: Entry) -> str:
    if a.url and a.url == b.url:
        return STAGE_URL
    return STAGE_GUID if is_global_guid(a.guid) and a.guid == b.guid else STAGE_TEXT


def arrange(story: Story, priorities: Mapping[str, int]) -> Story:
    """The preferred copy first: highest source priority (default 0), then the earliest
    published, then the lowest id; the other copies follow in the same order."""
    copies = sorted(
        story.copies,
        key=lambda c: (-priorities.get(c.article.source, 0), c.article.published, c.id),
    )
    return dataclasses.replace(story, copies=tuple(copies))
