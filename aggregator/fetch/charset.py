"""Bytes of a fetched HTML page -> text: the charset decision, part of the HTTP stage.

The HTTP header, then <meta charset> (or the XML declaration), then a BOM, then detection
(charset-normalizer) for GBK, Big5 and friends. Pure: bytes and the Content-Type in, text
out; the requests themselves are in `__init__.py`.
"""

from __future__ import annotations

import codecs
import re

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""", re.I)
_ALIASES = {
    "x-gbk": "gbk",
    "gb_2312-80": "gb2312",
    "x-euc-cn": "gb2312",
    "windows-936": "gbk",
    "x-big5": "big5",
    "latin-1": "latin_1",
    "x-sjis": "shift_jis",
}
# What browsers actually use for a declared name (WHATWG Encoding): the supersets.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "cp950": "big5hkscs",
    "latin-1": "cp1252",
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
}
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SINGLE_BYTE = {"cp1252", "windows-1252", "ascii", "iso8859-15", "cp1250", "cp1251"}
_UTF8 = {"utf-8", "utf-8-sig"}
_HIGH_BYTES = bytes(range(0x81, 0x100))
# A lead byte then a trail byte in 0x40-0x7E: about 40% of Big5 text, rare in GB text (only
# the GBK extensions, and a CJK character followed by a Latin letter, miscounted).
_LOW_TRAIL = re.compile(rb"[\x81-\xfe][\x40-\x7e]")
_UTF8_CJK = re.compile(rb"[\xe3-\xe9][\x80-\xbf][\x80-\xbf]")
_DETECT_BYTES = 200_000
_CONFIDENT = 0.2  # charset-normalizer "chaos" below this counts as a confident detection


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    try:
        found = codecs.lookup(_ALIASES.get(name, name)).name
    except LookupError:
        return None
    return _SUPERSETS.get(found, found)


def header_charset(content_type: str | None) -> str | None:
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type or "", re.I)
    return match.group(1) if match else None


def _decoded(body: bytes, codec: str) -> str | None:
    """The strictly decoded text, or None when the bytes are not valid in `codec`."""
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _utf8_text(body: bytes) -> str | None:
    """Valid UTF-8 with three-byte sequences (CJK): legacy CJK text practically never is,
    though a few GBK pairs alone can pass for two-byte UTF-8 (学院 is D1A7 D4BA)."""
    if body.isascii() or not _UTF8_CJK.search(body):
        return None
    return _decoded(body, "utf-8")


def _implausible(body: bytes, codec: str) -> bool:
    """A declaration that decodes without error can still be wrong: Big5 bytes are valid
    GB18030 (and mostly the reverse). Cheap byte statistics say when to ask detection."""
    if codec not in ("gb18030", "big5hkscs"):
        return False
    sample = body[:_DETECT_BYTES]
    pairs = (len(sample) - len(sample.translate(None, _HIGH_BYTES))) // 2
    if pairs < 20:
        return False
    low = len(_LOW_TRAIL.findall(sample)) / pairs
    return low > 0.2 if codec == "gb18030" else low < 0.1


def _detect(body: bytes) -> tuple[str, str] | None:
    """charset-normalizer's pick and the text, when it is confident and the body decodes."""
    import charset_normalizer  # only for pages that declare no usable charset

    best = charset_normalizer.from_bytes(body[:_DETECT_BYTES]).best()
    if best is None or best.chaos >= _CONFIDENT:
        return None
    codec = _codec(best.encoding)
    text = _decoded(body, codec) if codec else None
    return (codec, text) if codec and text is not None else None


def _decide(body: bytes, content_type: str | None) -> tuple[str, str, str | None]:
    """(codec, how it was decided, the text when already strictly decoded)."""
    head = body[:4096]
    meta, xml = _META_CHARSET.search(head), _XML_ENCODING.search(head)
    declarations = (
        ("the HTTP header", header_charset(content_type)),
        ("<meta>", meta.group(1).decode("ascii", "ignore") if meta else None),
        ("the XML declaration", xml.group(1).decode("ascii", "ignore") if xml else None),
    )
    declared: str | None = None
    said = ""  # "the HTTP header says gb2312", for the explanation
    for where, name in declarations:
        codec = _codec(name)
        if codec is None:
            continue
        if declared is None:
            declared, said = codec, f"{where} says {name}"
        if codec in _SINGLE_BYTE:
            continue  # checked below: only when the bytes are neither UTF-8 nor detected CJK
        text = _decoded(body, codec)
        if text is None:
            continue
        if codec not in _UTF8 and (utf8 := _utf8_text(body)) is not None:
            return "utf-8", f"UTF-8 bytes, although {where} says {name}", utf8
        if _implausible(body, codec) and (detected := _detect(body)) and detected[0] != codec:
            return detected[0], f"detected, although {where} says {name}", detected[1]
        return codec, f"declared: {where} says {name}", text
    for bom, bom_codec in _BOMS:
        if body.startswith(bom):
            return bom_codec, "byte order mark", None
    although = f", although {said}" if said else ""
    if body.isascii():
        return declared or "utf-8", "ASCII only", None
    if (text := _decoded(body, "utf-8")) is not None:
        return "utf-8", f"valid UTF-8{although}", text
    detected = _detect(body)
    if detected and not (declared in _SINGLE_BYTE and detected[0] in _SINGLE_BYTE):
        return detected[0], f"detected{although}", detected[1]
    if declared:
        return declared, f"declared ({said}), detection unsure", None
    return "utf-8", "nothing declared or detected: UTF-8 with replacement characters", None


def charset_decision(body: bytes, content_type: str | None) -> tuple[str, str]:
    """(codec, how it was decided). The HTTP header, then <meta charset> / http-equiv (or the
    XML declaration), then a BOM, then detection (charset-normalizer). A declaration that
    fails to decode, or that decodes into implausible text (UTF-8 bytes, Big5 read as GBK,
    CJK bytes under a Western single-byte label), yields to confident detection. GB2312 and
    GBK are read as GB18030, Big5 as Big5-HKSCS, Latin-1 as windows-1252 (their supersets)."""
    codec, how, _ = _decide(body, content_type)
    return codec, how


def decide_charset(body: bytes, content_type: str | None) -> str:
    """The codec to decode an HTML page with; see `charset_decision`."""
    return _decide(body, content_type)[0]


def decode_html(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Return (text, charset used); undecodable bytes are replaced, never raised."""
    charset, _, text = _decide(body, content_type)
    if text is None:
        text = body.decode(charset, errors="replace")
    return text, charset
