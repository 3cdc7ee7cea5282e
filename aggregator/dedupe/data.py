"""What every dedupe module shares: the tuning constants, the stage names, the stored
signature's layout and the frozen types that judgements are made of.

A leaf: it imports nothing else of the package, so any module of it can import this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

NUM_PERM = 128  # MinHash permutations: 512 bytes a signature, Jaccard error ~0.04 at 0.6
SIGNATURE_VERSION = 1  # bump when shingling changes: old stored signatures are then ignored
MIN_BODY = 40  # characters: shorter bodies get no signature (title-only items)
FULL_BODY = 400  # characters: longer than any summary (normalize keeps 300), so a full text
BOILERPLATE_REPEATS = 3  # a line in this many articles of one source is that source's furniture
TITLE_AGREES = 0.5  # title n-gram Dice that lets a shared document number join
TITLES_UNRELATED = 0.15  # title n-gram Dice below which two long titles share "very little"
BODIES_DISAGREE = 0.5  # containment below which two full bodies are different texts
TEMPLATE_SHARE = 0.6  # shared prefix + suffix of the longer title that makes it a template
BUCKET_CAP = 64  # newest rows looked at per LSH bucket: bounds work on hot buckets

STAGE_URL, STAGE_GUID, STAGE_TEXT = "url", "guid", "text_hash"
STAGE_DOC, STAGE_TITLE, STAGE_NEAR = "doc_number", "title", "near_duplicate"
STAGE_NEW, STAGE_DISABLED = "new", "disabled"

# The stored signature (see `Fingerprint`): its size, and its words' byte order.
_SIG_BYTES = 8 + 4 * NUM_PERM
U32 = np.dtype("<u4")  # stored signatures are little-endian whatever the host


def posix_seconds(when: datetime) -> int:
    """POSIX seconds; a naive time is taken as UTC (the model's convention), not local time."""
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())


# --- data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fingerprint:
    """What matching needs of an article, small enough to store with it and rebuild from.

    `signature` is two uint32 header words (version << 24 | body characters, shingle count)
    followed by NUM_PERM uint32 MinHash values; None for bodies under MIN_BODY characters.
    """

    title_key: str
    doc_number: str | None
    signature: bytes | None

    @classmethod
    def from_stored(
        cls, title_key: str | None, doc_number: str | None, signature: bytes | memoryview | None
    ) -> Fingerprint:
        """Rebuild without recomputing; a signature of another version or size is dropped, so
        rows stored before a shingling change degrade to title and key matching."""
        sig = bytes(signature) if signature else None
        if sig is not None and not _valid_signature(sig):
            sig = None
        return cls(title_key or "", doc_number or None, sig)

    @property
    def hashes(self) -> npt.NDArray[np.uint32] | None:
        """The MinHash values (a view on the bytes, no copy)."""
        if self.signature is None:
            return None
        return np.frombuffer(self.signature, dtype=U32, offset=8)

    @property
    def body_chars(self) -> int:
        """Characters of the body the signature was made from (whitespace excluded)."""
        return _header(self.signature)[0]

    @property
    def shingles(self) -> int:
        """Distinct shingles of the text: the set size behind the MinHash."""
        return _header(self.signature)[1]


@dataclass(frozen=True)
class Entry:
    """One article as the index knows it: its keys and fingerprint, no body."""

    article_id: int
    story_id: int
    source: str
    url: str
    guid: str | None
    text_hash: str
    published: datetime
    title: str
    fp: Fingerprint


@dataclass(frozen=True)
class Decision:
    """Which story a new article joins (None: a new story), by which stage and why."""

    story_id: int | None
    stage: str
    score: float
    detail: str


class Verdict(NamedTuple):
    """One stage's judgement of one pair; `detail` says why, for `aggregator explain`."""

    matched: bool
    score: float
    detail: str


def _header(signature: bytes | None) -> tuple[int, int]:
    if signature is None:
        return 0, 0
    word, shingles = np.frombuffer(signature, dtype=U32, count=2)
    return int(word) & 0xFFFFFF, int(shingles)


def _valid_signature(signature: bytes) -> bool:
    if len(signature) != _SIG_BYTES:
        return False
    return int(np.frombuffer(signature, dtype=U32, count=1)[0]) >> 24 == SIGNATURE_VERSION
