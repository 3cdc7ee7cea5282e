"""An article's fingerprint: title key, document number and the MinHash signature of its
title and body, the body without furniture and without its source's known boilerplate."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..model import Article
from .data import MIN_BODY, Fingerprint
from .shingles import make_signature
from .text import body_text, content_lines, fold, folded_doc_number, folded_title_key, line_words


def fingerprint(article: Article, drop_lines: frozenset[int] = frozenset()) -> Fingerprint:
    """Fingerprint of one article; `drop_lines` are line keys known to be source boilerplate
    (`Index.fingerprint` supplies them from what it has seen of the source)."""
    lines = content_lines(body_text(article))
    return fingerprint_lines(article.title, lines, line_words(lines), drop_lines)


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
    words = line_words(lines)
    keys = tuple(
        zlib.crc32(w.encode("utf-8"))
        for line, w in zip(lines, words, strict=True)
        if len(line) <= 300
    )
    return Prepared(
        keys,
        boilerplate.intersection(keys),
        fingerprint_lines(article.title, lines, words, boilerplate),
    )


def fingerprint_lines(
    title: str, lines: list[str], words: list[str], drop: frozenset[int]
) -> Fingerprint:
    """The signature covers the title and the body without furniture; if dropping learned
    boilerplate would leave almost nothing, the learned part is ignored (a source that
    posts one text three times must not lose that text). `words` are `line_words(lines)`."""
    kept = lines
    chars = sum(map(len, words))  # == len(text._NON_WORD.sub("", "".join(lines)))
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
    number = folded_doc_number(folded) or folded_doc_number(body)
    return Fingerprint(folded_title_key(folded), number, signature)
