"""Shingling and MinHash: folded text -> distinct hashes of token 3-grams -> a signature.

The signature's layout and version are in `data`. The permutations below must never change:
signatures are stored, and a new one is only comparable with those made the same way.
"""

from __future__ import annotations

import functools
import re
import zlib

import numpy as np
import numpy.typing as npt

from .data import NUM_PERM, SIGNATURE_VERSION, U32
from .text import CJK, CJK_RANGES, alnum

_TOKEN = re.compile(f"[{CJK}]|[^\\W_{CJK}]+")  # one CJK character, or one latin word
_LATIN_WORD = re.compile(f"[^\\W_{CJK}]+")

# Permutations exactly as datasketch (>= 2.0, scheme "affine32", seed 1) draws them, so a
# signature equals datasketch.MinHash(num_perm=128, seed=1, hashfunc=identity) fed with our
# shingle hashes. We apply them ourselves, vectorized over all shingles of a text at once,
# because datasketch hashes in a Python loop and its default scheme differs across versions;
# stored signatures must not change when the library is upgraded.
_PERM_RNG = np.random.RandomState(1)
_PERM_A = _PERM_RNG.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
_PERM_B = _PERM_RNG.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)
_PERM_A_COLUMN, _PERM_B_COLUMN = _PERM_A[:, None].copy(), _PERM_B[:, None].copy()
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


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
def _char_classes() -> npt.NDArray[np.uint8]:
    """Per BMP code point what `_TOKEN` makes of it: a CJK token, part of a latin word
    (`[^\\W_]` is `str.isalnum`), or nothing."""
    classes = np.zeros(0x10000, dtype=np.uint8)
    classes[alnum()] = _WORD
    for low, high in CJK_RANGES:
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
        codes = ((codes[:-2] * GOLDEN) ^ codes[1:-1]) * GOLDEN ^ codes[2:]
        codes = (codes * GOLDEN) >> np.uint64(32)
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
        [(SIGNATURE_VERSION << 24) | min(body_chars, 0xFFFFFF), len(shingles)], dtype=U32
    )
    return header.tobytes() + minhash(shingles).astype(U32, copy=False).tobytes()
