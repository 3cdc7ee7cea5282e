"""Text as matching sees it: one spelling (full-width forms, traditional characters and case
folded), title keys, official document numbers, and body lines without the furniture."""

from __future__ import annotations

import functools
import html
import importlib.util
import re
import unicodedata
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..model import Article

CJK = "\u2e80-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
CJK_CHAR = re.compile(f"[{CJK}]")
CJK_RANGES = ((0x2E80, 0x9FFF), (0xF900, 0xFAFF), (0x3040, 0x30FF), (0xAC00, 0xD7AF))
_NON_WORD = re.compile(r"[\W_]+")
_TAG = re.compile(r"<[^>]*>")
_BLOCK = re.compile(
    r"(?i)<\s*/?\s*(?:p|br|div|li|h[1-6]|tr|blockquote|pre|section|article|figure|figcaption"
    r"|table|ul|ol|dd|dt|hr)\b[^>]*>"
)


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
    return folded_title_key(fold(title))


def folded_title_key(folded: str) -> str:
    return _NON_WORD.sub("", strip_title_affixes(folded))


_GENERIC_TERMS = re.compile(
    r"(?<!\d)(?:19|20)\d\d(?!\d)|新闻发布会|发布会|工作动态|通知公告"
    r"|要闻|简讯|快讯|动态|一周|每周|每日|周报|日报|月报|简报|综述|汇总|回顾|举行|召开|图片新闻"
    r"|weekly|daily|monthly|roundup|digest|newsletter|briefing|headlines|update|review|edition"
    r"|news|week|inbrief|issue"
)
_GENERIC_MIN = 6  # informative weight: 6 CJK characters or 12 latin letters


def weight(text: str) -> float:
    """Information in a key: a CJK character carries about as much as two latin letters."""
    cjk = len(CJK_CHAR.findall(text))
    return cjk + (len(text) - cjk) / 2


def is_generic_title(key: str) -> bool:
    """Titles like `weeklyroundup` or `教育部新闻发布会` name a column, not a story: they never
    merge on the title alone. Column words and years carry no identity; an ordinal or a
    count does (`教育部举行2026年第24场新闻发布会` is one particular press conference)."""
    return weight(_GENERIC_TERMS.sub("", key)) < _GENERIC_MIN


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
    return folded_doc_number(fold(text))


# The bracketed year and number `_DOC` needs: without them somewhere in the text there is no
# match, and this scan is much cheaper than `_DOC`'s (which tries 2-12 CJK characters at
# every CJK position of a body).
_DOC_HINT = re.compile(r"[〔\[(【]\s*(?:19|20)\d{2}\s*[〕\])】]\s*第?\s*\d{1,5}\s*号")


def folded_doc_number(folded: str) -> str | None:
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
    # " ".join(line.split()) == re.sub(r"\s+", " ", line).strip(): both split on str.isspace()
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


@functools.cache
def alnum() -> npt.NDArray[np.bool_]:
    """Per BMP code point: `str.isalnum`, which is what `[^\\W_]` matches."""
    return np.fromiter((chr(c).isalnum() for c in range(0x10000)), dtype=bool, count=0x10000)


# ASCII lines: everything but letters, digits and line breaks deleted.
_ASCII_LINE_WORDS = str.maketrans(
    {c: None for c in map(chr, range(128)) if not c.isalnum() and c != "\n"}
)


def line_words(lines: list[str]) -> list[str]:
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
            keep = alnum()[points] | (points == 10)
            words = points[keep].tobytes().decode("utf-32-le").split("\n")
    if len(words) != len(lines):  # astral characters, or a line with a line break
        strip = _NON_WORD.sub
        return [strip("", line) for line in lines]
    return words
