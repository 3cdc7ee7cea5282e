"""Cross-source dedup: group reprints of one piece of news into one story.

Pure: no network, no database, no clock. The pipeline keeps one `Index` of the articles of
the last `window`, asks it for a `Fingerprint` and a `Decision` for each new article, stores
the fingerprint with the article and adds it to the index, so a restart rebuilds the index
from stored fingerprints without reading a single body.

A new article joins an earlier one when, in this order (the first stage that matches wins):

1. an exact key is shared: canonical URL, a globally unique GUID, the body's `text_hash`;
   or the official document number (发文字号), but only with agreeing titles or bodies;
2. the normalized titles are equal, the title is not generic and the bodies do not disagree;
3. the texts are near-duplicates: MinHash Jaccard >= threshold and the titles do not
   contradict each other.

Only entries published within `window` of the new article are candidates.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import importlib.util
import re
import unicodedata
import zlib
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from .config import DedupeConfig
from .model import Article, Story

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

_CJK = "\u2e80-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_TOKEN = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")  # one CJK character, or one latin word
_LATIN_WORD = re.compile(f"[^\\W_{_CJK}]+")
_CJK_RANGES = ((0x2E80, 0x9FFF), (0xF900, 0xFAFF), (0x3040, 0x30FF), (0xAC00, 0xD7AF))
_NON_WORD = re.compile(r"[\W_]+")
_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
_BLOCK = re.compile(
    r"(?i)<\s*/?\s*(?:p|br|div|li|h[1-6]|tr|blockquote|pre|section|article|figure|figcaption"
    r"|table|ul|ol|dd|dt|hr)\b[^>]*>"
)


def _seconds(when: datetime) -> int:
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
        return np.frombuffer(self.signature, dtype=_U32, offset=8)

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


# --- text ---------------------------------------------------------------------------------


@functools.cache
def _ts_table() -> dict[int, str]:
    """Traditional -> simplified, one character at a time, as a `str.translate` table.

    Built once from OpenCC's own character dictionary: the pure-Python OpenCC converter is
    far too slow for bodies, while `translate` runs in C. Phrase-level conversion is not
    needed for matching: both copies go through the same table.
    """
    spec = importlib.util.find_spec("opencc")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("dedupe needs opencc-python-reimplemented (TSCharacters.txt)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    table: dict[int, str] = {}
    for line in (folder / "dictionary" / "TSCharacters.txt").read_text("utf-8").splitlines():
        traditional, _, simplified = line.partition("\t")
        first = simplified.split(" ")[0].strip()
        if len(traditional) == 1 and first:
            table[ord(traditional)] = first
    return table


@functools.cache
def _traditional() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Any character `_ts_table` changes, in the Basic Multilingual Plane and beyond it: text
    without one skips the translation. Two patterns, as a class with astral characters is
    matched by a slow linear scan and a class of BMP ones by a fast bitmap."""
    bmp = "".join(re.escape(chr(c)) for c in sorted(_ts_table()) if c <= 0xFFFF)
    astral = "".join(re.escape(chr(c)) for c in sorted(_ts_table()) if c > 0xFFFF)
    return re.compile(f"[{bmp}]"), re.compile(f"[{astral}]" if astral else "(?!)")


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _has_traditional(text: str) -> bool:
    bmp, astral = _traditional()
    return bool(bmp.search(text) or (_ASTRAL.search(text) and astral.search(text)))


@functools.cache
def _compat_table() -> dict[int, str]:
    """Character -> its compatibility decomposition (NFKD), for the characters of the Basic
    Multilingual Plane whose decomposition is already in NFKC: full-width forms, the
    ideographic space, `…`, circled numbers and the like.

    Replacing characters by their own NFKD leaves the NFKD of the whole text unchanged, so
    when the result is in NFKC it *is* the NFKC of the text. `translate` does that in one
    cheap pass where `unicodedata.normalize` composes the whole text again.
    """
    table: dict[int, str] = {}
    for code in range(0x10000):
        char = chr(code)
        if not unicodedata.decomposition(char):  # Hangul syllables too: NFKC recomposes them
            continue
        decomposed = unicodedata.normalize("NFKD", char)
        if decomposed != char and unicodedata.is_normalized("NFKC", decomposed):
            table[code] = decomposed
    return table


def _nfkc(text: str) -> str:
    """`unicodedata.normalize("NFKC", text)`, faster for the usual text (see `_compat_table`)."""
    if unicodedata.is_normalized("NFKC", text):
        return text
    simple = text.translate(_compat_table())
    if unicodedata.is_normalized("NFKC", simple):
        return simple
    return unicodedata.normalize("NFKC", text)


def fold(text: str) -> str:
    """NFKC (full-width forms), traditional -> simplified, lower case: the spelling-free form."""
    if len(text) >= _FOLD_ARRAYS_FROM:
        folded = _fold_points(text)
        if folded is not None:
            return folded
    text = _nfkc(text)
    if _has_traditional(text):
        text = text.translate(_ts_table())
    return text.lower()


_FOLD_ARRAYS_FROM = 200  # characters: below this the fixed cost of the arrays does not pay


@functools.cache
def _fold_arrays() -> tuple[
    npt.NDArray[np.uint32], npt.NDArray[np.bool_], npt.NDArray[np.uint32], npt.NDArray[np.bool_]
]:
    """`_compat_table` and `_ts_table` as BMP lookup arrays (code point -> code point), with
    what they cannot say that way flagged: a decomposition of several characters, a
    simplified form outside the BMP."""
    compat = np.arange(0x10000, dtype=np.uint32)
    compat_long = np.zeros(0x10000, dtype=bool)
    for code, decomposed in _compat_table().items():
        if len(decomposed) == 1:
            compat[code] = ord(decomposed)
        else:
            compat_long[code] = True
    simplified = np.arange(0x10000, dtype=np.uint32)
    astral = np.zeros(0x10000, dtype=bool)
    for code, simple in _ts_table().items():
        if code > 0xFFFF:
            continue  # text with astral characters never takes the array path
        if len(simple) == 1 and ord(simple) <= 0xFFFF:
            simplified[code] = ord(simple)
        else:
            astral[code] = True
    return compat, compat_long, simplified, astral


def _fold_points(text: str) -> str | None:
    """`fold` on code point arrays, or None when the text needs the general path (astral
    characters, a compatibility form of several characters, NFKC that needs composition)."""
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if int(points.max()) > 0xFFFF:
        return None
    compat, compat_long, simplified, astral = _fold_arrays()
    if not unicodedata.is_normalized("NFKC", text):
        if compat_long[points].any():
            return None
        points = compat[points]
        text = points.tobytes().decode("utf-32-le", "surrogatepass")
        if not unicodedata.is_normalized("NFKC", text):  # see `_compat_table`
            return None
    if astral[points].any():
        return None
    mapped = simplified[points]
    if not np.array_equal(mapped, points):
        text = mapped.tobytes().decode("utf-32-le", "surrogatepass")
    return text.lower()


_PREFIX = re.compile(r"^\s*(?:【[^】]{0,20}】|\[[^\]]{0,20}\])\s*")
_SUFFIX = re.compile(r"(?:\s+[-–]{1,2}\s+|\s*[_|·•]\s*|\s*—{1,2}\s*)[^-–—_|·•]{1,20}$")
_TITLE_MIN_LEFT = 6  # a suffix is only a site name if a real title stays in front of it


def strip_title_affixes(title: str) -> str:
    """Drop source prefixes (`【中国教育报】`, `[Edu]`) and short site suffixes
    (` - 站名`, `_站名`, `| Site`, `· Site`, `—站名`), which reprints add and originals lack."""
    text = title.strip()
    while (match := _PREFIX.match(text)) and match.end() < len(text):
        text = text[match.end() :]
    for _ in range(2):
        match = _SUFFIX.search(text)
        if not match or len(_NON_WORD.sub("", text[: match.start()])) < _TITLE_MIN_LEFT:
            break
        text = text[: match.start()]
    return text


def normalize_title(title: str) -> str:
    """The title key: folded, affixes dropped, punctuation and whitespace removed, so
    `【转载】教育部：推進…｜某网` and `教育部推进…` get the same key."""
    return _title_key(fold(title))


def _title_key(folded: str) -> str:
    return _NON_WORD.sub("", strip_title_affixes(folded))


_GENERIC_TERMS = re.compile(
    r"(?<!\d)(?:19|20)\d\d(?!\d)|新闻发布会|发布会|工作动态|通知公告"
    r"|要闻|简讯|快讯|动态|一周|每周|每日|周报|日报|月报|简报|综述|汇总|回顾|举行|召开|图片新闻"
    r"|weekly|daily|monthly|roundup|digest|newsletter|briefing|headlines|update|review|edition"
    r"|news|week|inbrief|issue"
)
_GENERIC_MIN = 6  # informative weight: 6 CJK characters or 12 latin letters


def _weight(text: str) -> float:
    """Information in a key: a CJK character carries about as much as two latin letters."""
    cjk = len(_CJK_CHAR.findall(text))
    return cjk + (len(text) - cjk) / 2


def is_generic_title(key: str) -> bool:
    """Titles like `weeklyroundup` or `教育部新闻发布会` name a column, not a story: they never
    merge on the title alone. Column words and years carry no identity; an ordinal or a
    count does (`教育部举行2026年第24场新闻发布会` is one particular press conference)."""
    return _weight(_GENERIC_TERMS.sub("", key)) < _GENERIC_MIN


_DOC = re.compile(
    r"([\u4e00-\u9fff]{2,12})\s*[〔\[(【]\s*((?:19|20)\d{2})\s*[〕\])】]\s*第?\s*(\d{1,5})\s*号"
)
# Prose that runs into a number without punctuation ("传达学习教职成厅函〔2024〕7号文件").
_DOC_LEAD = re.compile(
    r"^(?:根据|按照|依据|依照|参照|对照|结合|参见|详见|印发|转发|下发|发布|出台|传达|学习|执行|落实"
    r"|贯彻|关于|文件|通知|精神|要求|号文|见|即|的|和|及|与|等|将|对|经)+"
)


def doc_number(text: str) -> str | None:
    """The first official document number (`教职成〔2024〕1号`) in the text, with the bracket
    variants `[2024]`, `(2024)`, `（2024）`, `［2024］`, `【2024】` unified to `〔2024〕`."""
    return _doc_in(fold(text))


# The bracketed year and number `_DOC` needs: without them somewhere in the text there is no
# match, and this scan is much cheaper than `_DOC`'s (which tries 2-12 CJK characters at
# every CJK position of a body).
_DOC_HINT = re.compile(r"[〔\[(【]\s*(?:19|20)\d{2}\s*[〕\])】]\s*第?\s*\d{1,5}\s*号")


def _doc_in(folded: str) -> str | None:
    if not _DOC_HINT.search(folded):
        return None
    match = _DOC.search(folded)
    if not match:
        return None
    agency = _DOC_LEAD.sub("", match.group(1))[-6:]
    if len(agency) < 2:
        return None
    return f"{agency}〔{match.group(2)}〕{int(match.group(3))}号"


def body_text(article: Article) -> str:
    """Plain body text with one paragraph a line: `content` with block tags as line breaks,
    else the summary."""
    text = ""
    if article.content:
        text = html.unescape(_TAG.sub("", _BLOCK.sub("\n", article.content)))
    if not text.strip():
        text = article.summary or ""
    # " ".join(line.split()) == _SPACE.sub(" ", line).strip(): both split on str.isspace()
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


_INLINE_NOISE = re.compile(
    r"[(（]\s*(?:责任编辑|责编|编辑|作者|来源|记者|通讯员)\s*[:：][^)）]{0,40}[)）]"
)
_NOISE_LINE = re.compile(
    r"^(?:责任编辑|责编|编辑|来源|稿源|文章来源|信息来源|最近更新|更新时间|发布时间|扫一扫|分享到"
    r"|打印本页|关闭窗口|图为|图片来源|图片由|share this|editor\s*:|editors?'? note|subscribe"
    r"|sign up for|photo\s*:|image\s*:|caption\s*:|read more|related\s*:)"
)
_NOISE_LINE_MAX = 200  # a longer line starting like furniture is content


def content_lines(text: str) -> list[str]:
    """Folded body lines without the built-in furniture: editor and source credits, share
    and print links, image captions, update stamps."""
    folded = fold(text)
    if "(" in folded or "（" in folded:  # what `_INLINE_NOISE` starts with
        raws = [_INLINE_NOISE.sub("", raw) for raw in folded.split("\n")]
    else:
        raws = folded.split("\n")
    lines = []
    noise = _NOISE_LINE.match
    for raw in raws:
        line = raw.strip()
        if not line or (len(line) <= _NOISE_LINE_MAX and noise(line)):
            continue
        lines.append(line)
    return lines


def line_key(line: str) -> int:
    """A line's identity for boilerplate counting: whitespace and punctuation ignored."""
    return zlib.crc32(_NON_WORD.sub("", line).encode("utf-8"))


def _line_words(lines: list[str]) -> list[str]:
    """Each line without whitespace and punctuation (`_NON_WORD.sub("", line)`, which keeps
    the characters that are `str.isalnum`): what `line_key` hashes and the body length
    counts. Done on all lines at once, with a table instead of the regex where it can be."""
    body = "\n".join(lines)
    if body.isascii():
        words = body.translate(_ASCII_LINE_WORDS).split("\n")
    else:
        points = np.frombuffer(body.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if int(points.max(initial=0)) > 0xFFFF:
            words = []
        else:
            keep = _alnum()[points] | (points == 10)
            words = points[keep].tobytes().decode("utf-32-le").split("\n")
    if len(words) != len(lines):  # astral characters, or a line with a line break
        strip = _NON_WORD.sub
        return [strip("", line) for line in lines]
    return words


# --- MinHash ------------------------------------------------------------------------------

# Permutations exactly as datasketch (>= 2.0, scheme "affine32", seed 1) draws them, so a
# signature equals datasketch.MinHash(num_perm=128, seed=1, hashfunc=identity) fed with our
# shingle hashes. We apply them ourselves, vectorized over all shingles of a text at once,
# because datasketch hashes in a Python loop and its default scheme differs across versions;
# stored signatures must not change when the library is upgraded.
_PERM_RNG = np.random.RandomState(1)
_PERM_A = _PERM_RNG.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
_PERM_B = _PERM_RNG.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)
_PERM_A_COLUMN, _PERM_B_COLUMN = _PERM_A[:, None].copy(), _PERM_B[:, None].copy()
_SIG_BYTES = 8 + 4 * NUM_PERM
_U32 = np.dtype("<u4")  # stored signatures are little-endian whatever the host
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _fmix32(values: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """MurmurHash3's finalizer, as datasketch pre-mixes inputs before permuting."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


class _TokenCodes(dict[str, int]):
    """Token -> code (a single character's code point, else the CRC-32 of the word), filled
    on demand: looking a word up is much cheaper than hashing it again. Bounded."""

    LIMIT = 50_000

    def __missing__(self, token: str) -> int:
        code = ord(token) if len(token) == 1 else zlib.crc32(token.encode("utf-8"))
        if len(self) >= self.LIMIT:
            self.clear()
        self[token] = code
        return code


_TOKEN_CODES = _TokenCodes()
# ASCII text: every character but a letter or digit to a space, so `split` yields the words.
_ASCII_WORDS = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})
_CJK_TOKEN, _WORD = 1, 2  # `_char_classes` values; 0: neither
_FEW_WORDS = 48  # up to this many latin words in non-ASCII text are sliced out one by one


@functools.cache
def _alnum() -> npt.NDArray[np.bool_]:
    """Per BMP code point: `str.isalnum`, which is what `[^\\W_]` matches."""
    return np.fromiter((chr(c).isalnum() for c in range(0x10000)), dtype=bool, count=0x10000)


# ASCII lines: everything but letters, digits and line breaks deleted.
_ASCII_LINE_WORDS = str.maketrans(
    {c: None for c in map(chr, range(128)) if not c.isalnum() and c != "\n"}
)


@functools.cache
def _char_classes() -> npt.NDArray[np.uint8]:
    """Per BMP code point what `_TOKEN` makes of it: a CJK token, part of a latin word
    (`[^\\W_]` is `str.isalnum`), or nothing."""
    classes = np.zeros(0x10000, dtype=np.uint8)
    classes[_alnum()] = _WORD
    for low, high in _CJK_RANGES:
        classes[low : high + 1] = _CJK_TOKEN
    return classes


def _token_codes(text: str) -> npt.NDArray[np.uint64]:
    """The code of each `_TOKEN` of the text, in order (see `_TokenCodes`), mostly vectorized:
    the regex would make a string of every CJK character."""
    if text.isascii():
        words = text.translate(_ASCII_WORDS).split()
        return np.fromiter(map(_TOKEN_CODES.__getitem__, words), dtype=np.uint64, count=len(words))
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if int(points.max()) > 0xFFFF:
        tokens = _TOKEN.findall(text)
        return np.fromiter(
            map(_TOKEN_CODES.__getitem__, tokens), dtype=np.uint64, count=len(tokens)
        )
    classes = _char_classes()[points]
    word = classes == _WORD
    starts = word.copy()
    starts[1:] &= ~word[:-1]
    word_starts = np.flatnonzero(starts)
    starts |= classes == _CJK_TOKEN
    at = np.flatnonzero(starts)
    codes = points[at].astype(np.uint64)  # a CJK character's code is its code point
    if len(word_starts):
        if len(word_starts) <= _FEW_WORDS:
            ends = np.flatnonzero(
                word[word_starts[0] :] & ~np.append(word[word_starts[0] + 1 :], False)
            )
            ends += word_starts[0] + 1
            words = [text[a:b] for a, b in zip(word_starts.tolist(), ends.tolist(), strict=True)]
        else:
            words = _LATIN_WORD.findall(text)
        codes[word[at]] = np.fromiter(
            map(_TOKEN_CODES.__getitem__, words), dtype=np.uint64, count=len(words)
        )
    return codes


def shingle_hashes(text: str) -> npt.NDArray[np.uint32]:
    """Distinct 32-bit hashes of token 3-grams of folded text, punctuation and spaces ignored.

    Tokens are single CJK characters (character shingles need no word segmentation) and
    whole latin words: latin character 3-grams are so few that unrelated English texts would
    share a large part of them.
    """
    codes = _token_codes(text)
    if not len(codes):
        return np.zeros(0, dtype=np.uint32)
    if len(codes) >= 3:
        codes = ((codes[:-2] * _GOLDEN) ^ codes[1:-1]) * _GOLDEN ^ codes[2:]
        codes = (codes * _GOLDEN) >> np.uint64(32)
    hashes = codes.astype(np.uint32)
    hashes.sort()
    keep = np.empty(len(hashes), dtype=bool)
    keep[0] = True
    np.not_equal(hashes[1:], hashes[:-1], out=keep[1:])
    return hashes[keep]  # == np.unique(hashes), without its overhead


def minhash(shingles: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """NUM_PERM minimum permuted hashes of a shingle set (all 0xFFFFFFFF for an empty set)."""
    if len(shingles) == 0:
        return np.full(NUM_PERM, 0xFFFFFFFF, dtype=np.uint32)
    permuted = _PERM_A_COLUMN * _fmix32(shingles)  # one row a permutation: a faster min
    permuted += _PERM_B_COLUMN
    return permuted.min(axis=1)


def make_signature(text: str, body_chars: int) -> bytes:
    """Header (version, body length, shingle count) + MinHash of a text."""
    shingles = shingle_hashes(text)
    header = np.array(
        [(SIGNATURE_VERSION << 24) | min(body_chars, 0xFFFFFF), len(shingles)], dtype=_U32
    )
    return header.tobytes() + minhash(shingles).astype(_U32, copy=False).tobytes()


def _header(signature: bytes | None) -> tuple[int, int]:
    if signature is None:
        return 0, 0
    word, shingles = np.frombuffer(signature, dtype=_U32, count=2)
    return int(word) & 0xFFFFFF, int(shingles)


def _valid_signature(signature: bytes) -> bool:
    if len(signature) != _SIG_BYTES:
        return False
    return int(np.frombuffer(signature, dtype=_U32, count=1)[0]) >> 24 == SIGNATURE_VERSION


def fingerprint(article: Article, drop_lines: frozenset[int] = frozenset()) -> Fingerprint:
    """Fingerprint of one article; `drop_lines` are line keys known to be source boilerplate
    (`Index.fingerprint` supplies them from what it has seen of the source)."""
    lines = content_lines(body_text(article))
    return _fingerprint(article.title, lines, _line_words(lines), drop_lines)


@dataclass(frozen=True)
class Prepared:
    """A fingerprint made in a worker process with the source's boilerplate as known when
    the job was sent, plus the article's line keys, so the main process only counts lines
    and recomputes in the rare case that counting turned up new boilerplate."""

    line_keys: tuple[int, ...]
    drop: frozenset[int]  # the boilerplate among this article's lines that `fp` left out
    fp: Fingerprint


def prepare(article: Article, boilerplate: frozenset[int] = frozenset()) -> Prepared:
    lines = content_lines(body_text(article))
    words = _line_words(lines)
    keys = tuple(
        zlib.crc32(w.encode("utf-8"))
        for line, w in zip(lines, words, strict=True)
        if len(line) <= 300
    )
    return Prepared(
        keys, boilerplate.intersection(keys), _fingerprint(article.title, lines, words, boilerplate)
    )


def _fingerprint(
    title: str, lines: list[str], words: list[str], drop: frozenset[int]
) -> Fingerprint:
    """The signature covers the title and the body without furniture; if dropping learned
    boilerplate would leave almost nothing, the learned part is ignored (a source that
    posts one text three times must not lose that text). `words` are `_line_words(lines)`."""
    kept = lines
    chars = sum(map(len, words))  # == len(_NON_WORD.sub("", "".join(lines)))
    if drop:
        keep = [zlib.crc32(w.encode("utf-8")) not in drop for w in words]
        if not all(keep):
            kept_chars = sum(len(w) for w, k in zip(words, keep, strict=True) if k)
            if kept_chars >= MIN_BODY:
                kept = [line for line, k in zip(lines, keep, strict=True) if k]
                chars = kept_chars
    folded = fold(title)
    body = "\n".join(lines)
    text = body if kept is lines else "\n".join(kept)
    signature = make_signature(f"{folded}\n{text}", chars) if chars >= MIN_BODY else None
    number = _doc_in(folded) or _doc_in(body)
    return Fingerprint(_title_key(folded), number, signature)


# --- pair judgements (the stages) -----------------------------------------------------------


def _grams(key: str) -> set[str]:
    """Character bigrams for CJK keys, trigrams for latin ones (letters repeat too much)."""
    n = 2 if 2 * len(_CJK_CHAR.findall(key)) >= len(key) else 3
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
    if min(_weight(a), _weight(b)) >= 10 and title_similarity(a, b) < TITLES_UNRELATED:
        return "titles share almost nothing"
    prefix, suffix, left, right = _template_diff(a, b)
    if (
        prefix + suffix >= TEMPLATE_SHARE * max(len(a), len(b))
        and _weight(a[len(a) - suffix :]) >= 2
        and min(_weight(left), _weight(right)) >= 2
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
    gap = timedelta(seconds=abs(_seconds(a.published) - _seconds(b.published)))
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


# --- index --------------------------------------------------------------------------------


class _LineCounts:
    """Per source: in how many articles each (hashed) body line appeared.

    Bounded: when a source's table passes LIMIT lines, lines seen once are forgotten (real
    boilerplate recurs in most articles and survives), so memory stays ~LIMIT a source.
    """

    LIMIT = 4096

    def __init__(self) -> None:
        self._counts: dict[str, dict[int, int]] = {}

    def known(self, source: str) -> frozenset[int]:
        counts = self._counts.get(source, {})
        return frozenset(k for k, c in counts.items() if c >= BOILERPLATE_REPEATS)

    def observe(self, source: str, keys: Iterable[int]) -> frozenset[int]:
        """Count one article's lines; return those that are now boilerplate of the source."""
        counts = self._counts.setdefault(source, {})
        unique = set(keys)
        for key in unique:
            counts[key] = counts.get(key, 0) + 1
        if len(counts) > self.LIMIT:
            self._counts[source] = counts = {k: c for k, c in counts.items() if c >= 2}
            if len(counts) > self.LIMIT // 2:
                top = sorted(counts.items(), key=lambda kc: -kc[1])[: self.LIMIT // 2]
                self._counts[source] = counts = dict(top)
        return frozenset(k for k in unique if counts.get(k, 0) >= BOILERPLATE_REPEATS)


def lsh_shape(threshold: float, perms: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows): the most rows a band (fewest false candidates) that still finds a pair
    at Jaccard = threshold with probability >= 0.97."""
    best = (perms, 1)
    for rows in range(1, perms + 1):
        bands = perms // rows
        if 1 - (1 - threshold**rows) ** bands >= 0.97:
            best = (bands, rows)
    return best


class _Bands:
    """Banding LSH over MinHash signatures, stored compactly.

    datasketch's MinHashLSH keeps Python dicts of byte-string keys and a list per bucket:
    ~650 MB per 100k entries, so 200k would not fit the 1 GB budget. Here each (band, band
    values) pair is hashed to one uint32 (a chance collision only adds a candidate, which
    verification drops); settled keys live in one sorted array with a parallel int32 row
    array (8 bytes a key, found with searchsorted). The newest CHUNK rows wait in a fixed
    matrix, keyed in batches, then merged into the sorted arrays; batching keeps a start-up
    rebuild of 200k rows to seconds. Queries find pending rows through a dict of their
    (band, key) pairs, built as they are keyed (up to CHUNK x bands entries, ~13 MB).
    """

    CHUNK = 4096  # pending rows: a scan costs ~CHUNK x bands compares, a merge one array pass

    def __init__(self, bands: int, rows: int) -> None:
        self.bands, self.rows = bands, rows
        rng = np.random.RandomState(2)
        self._mult = rng.randint(0, 1 << 62, rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._seeds = np.arange(1, bands + 1, dtype=np.uint64) * _GOLDEN
        self._keys = np.zeros(0, dtype=np.uint32)
        self._rows = np.zeros(0, dtype=np.int32)
        self._pending_sigs = np.zeros((self.CHUNK, NUM_PERM), dtype=np.uint32)
        self._pending_keys = np.zeros((self.CHUNK, bands), dtype=np.uint32)
        self._pending_rows = np.zeros(self.CHUNK, dtype=np.int32)
        self._pending = self._keyed = 0
        # (band << 32 | key) -> pending rows with that key in that band, oldest first
        self._pending_index: dict[int, int | list[int]] = {}
        self._band_bits = np.arange(bands, dtype=np.uint64) << np.uint64(32)

    def keys(self, hashes: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
        """Band keys of a signature (1-d) or of each row of a signature matrix (2-d): per band
        its values mixed together with the band's number, as uint32."""
        shape = (*hashes.shape[:-1], self.bands, self.rows)
        values = hashes[..., : self.bands * self.rows].reshape(shape).astype(np.uint64)
        mixed = np.bitwise_xor.reduce(values * self._mult, axis=-1) ^ self._seeds
        return ((mixed * _GOLDEN) >> np.uint64(32)).astype(np.uint32)

    def add(self, row: int, hashes: npt.NDArray[np.uint32]) -> None:
        self._pending_sigs[self._pending] = hashes
        self._pending_rows[self._pending] = row
        self._pending += 1
        if self._pending == self.CHUNK:
            self.merge()

    def _key_pending(self, index: bool) -> None:
        if self._keyed < self._pending:
            new = slice(self._keyed, self._pending)
            keys = self.keys(self._pending_sigs[new])
            self._pending_keys[new] = keys
            self._keyed = self._pending
            if index:
                table = self._pending_index
                pairs = (keys.astype(np.uint64) | self._band_bits).tolist()
                for row, row_pairs in zip(self._pending_rows[new].tolist(), pairs, strict=True):
                    for pair in row_pairs:
                        old = table.get(pair)
                        if old is None:
                            table[pair] = row
                        elif isinstance(old, list):
                            old.append(row)
                        else:
                            table[pair] = [old, row]

    def merge(self) -> None:
        """Move the pending rows into the sorted arrays, newer rows after older in a bucket."""
        self._key_pending(index=False)
        self._pending_index = {}
        count, self._pending, self._keyed = self._pending, 0, 0
        if not count:
            return
        keys = self._pending_keys[:count].ravel()
        rows = np.repeat(self._pending_rows[:count], self.bands)
        order = np.lexsort((rows, keys))
        keys, rows = keys[order], rows[order]
        at = np.searchsorted(self._keys, keys, side="right")
        self._keys, self._rows = np.insert(self._keys, at, keys), np.insert(self._rows, at, rows)

    def query(self, keys: npt.NDArray[np.uint32]) -> set[int]:
        """Rows sharing at least one band, at most BUCKET_CAP newest per bucket."""
        found: set[int] = set()
        low = np.searchsorted(self._keys, keys, side="left")
        high = np.searchsorted(self._keys, keys, side="right")
        for lo, hi in zip(low.tolist(), high.tolist(), strict=True):
            if hi > lo:
                found.update(self._rows[max(lo, hi - BUCKET_CAP) : hi].tolist())
        if self._pending:
            self._key_pending(index=True)
            table = self._pending_index
            for pair in (keys.astype(np.uint64) | self._band_bits).tolist():
                rows = table.get(pair)
                if rows is None:
                    continue
                if isinstance(rows, list):
                    found.update(rows[-BUCKET_CAP:])
                else:
                    found.add(rows)
        return found


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
        self._clear()

    def _clear(self) -> None:
        self._bands = _Bands(*lsh_shape(self.config.threshold))
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
        words = _line_words(lines)
        keys = (
            zlib.crc32(w.encode("utf-8"))
            for line, w in zip(lines, words, strict=True)
            if len(line) <= 300
        )
        drop = self._lines.observe(article.source, keys)
        return _fingerprint(article.title, lines, words, drop)

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
        when = _seconds(article.published)
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
            _seconds(entry.published),
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
        cutoff = _seconds(before)
        keep = [self._row(i) for i in range(len(self)) if self._published[i] >= cutoff]
        removed = len(self) - len(keep)
        if removed:
            self._clear()
            for row in keep:
                self._append(row)
        return removed

    def _append(self, row: _Row) -> None:
        index = len(self._article)
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
            self._bands.add(index, hashes)

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
        for row in self._in_window(self._bands.query(self._bands.keys(hashes)), when):
            verdict = match_near_duplicate(fp, self._fp(row), self.config.threshold)
            if verdict.matched and (best is None or verdict.score > best[0].score):
                best = verdict, row
        if best is None:
            return None
        return self._decision(best[1], STAGE_NEAR, best[0].score, best[0].detail)
