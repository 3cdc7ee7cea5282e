"""Parse the dates that Chinese and English education news sites and feeds print.

Pure: no I/O and no clock reads (the caller passes ``now``), so results are reproducible.
Cheap regex / stdlib paths run first because this runs on every feed entry of every poll;
dateutil is only a last resort for free-form English text.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import warnings
from zoneinfo import ZoneInfo

from dateutil import parser as du_parser

__all__ = ["looks_chinese_or_ambiguous", "parse_date"]

UTC = dt.UTC
_SHANGHAI = ZoneInfo("Asia/Shanghai")
_CHINA_OFFSET = dt.timedelta(hours=8)
# Fixed offsets in hours; CST is resolved separately (China vs US Central).
_ZONE_HOURS: dict[str, int] = {
    "Z": 0, "UT": 0, "UTC": 0, "GMT": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5,
    "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}  # fmt: skip
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_NUM = {name: i for i, name in enumerate(_MONTHS, 1)}
_MON = "|".join(_MONTHS)

# Input is NFKC-normalised and whitespace-collapsed first, so a single " ?" suffices below.
_TIME = (
    r"(?:(?P<cn>上午|下午|晚上|中午|凌晨) ?)?(?P<H>\d{1,2})[:时](?P<M>\d{2})"
    r"(?:[:分](?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?[分秒]?"
    r"(?: ?(?P<ap>[AaPp]\.?[Mm]\.?)(?![A-Za-z]))?"
)
_ZONE = (
    r"(?P<z>[+-]\d{2}(?::?\d{2})?(?!\d)|(?:UTC|GMT)[+-]\d{1,2}(?::?\d{2})?(?!\d)"
    r"|Z|UTC?|GMT|[ECMP][SD]T)(?![A-Za-z])"
)
_YMD_RE = re.compile(
    r"(?<!\d)(?P<y>\d{4}) ?(?:[-/.]|年) ?(?P<m>\d{1,2}) ?(?:[-/.]|月) ?(?P<d>\d{1,2})(?!\d) ?[日号]?"
    rf"(?:(?:T| ?){_TIME}(?: ?{_ZONE})?)?"
)
_RFC_RE = re.compile(  # RFC 822 and friends: "Sat, 08 May 2021 14:59:43 +0800"
    rf"(?<![A-Za-z\d])(?P<d>\d{{1,2}})[ -](?P<mon>{_MON})[a-z]*\.?,?[ -](?P<y>\d{{4}}|\d{{2}})(?!\d)"
    rf"(?:,? (?:at )?{_TIME}(?: ?{_ZONE})?)?",
    re.IGNORECASE,
)
_MD_RE = re.compile(  # "05-08", "5/8", "5月8日": year must be inferred
    rf"(?<![\d/.-])(?P<m>\d{{1,2}})(?:[-/]|月 ?)(?P<d>\d{{1,2}})(?!\d|[-/.:]\d) ?[日号]?(?: ?{_TIME})?"
)
_AGO_RE = re.compile(
    r"(?P<n>\d+|半) ?(?P<u>秒|分钟|分|小时|个?钟头|天|日|周|星期|个月|年)前"
    r"|(?P<en>\d+) (?P<eu>second|minute|min|hour|day|week)s? ago",
    re.IGNORECASE,
)
_DAY_WORD_RE = re.compile(rf"(?P<w>今天|今日|昨天|昨日|前天|today|yesterday)(?: ?{_TIME})?", re.I)
_JUST_NOW_RE = re.compile(r"刚刚|刚才|just now", re.IGNORECASE)
_OFFSET_RE = re.compile(r"(?:UTC|GMT)?([+-])(\d{1,2}):?(\d{2})?")
_CJK_RE = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_CST_RE = re.compile(r"(?<![A-Za-z])CST(?![A-Za-z])")
_YEAR_RE = re.compile(r"(?<!\d)(?:1[89]|2\d)\d{2}(?!\d)")
_GMT_OFFSET_RE = re.compile(r"(?<![A-Za-z])(?:UTC|GMT)[+-]\d{1,2}(?::?\d{2})?(?!\d)", re.I)
_ENGLISH_MONTH_RE = re.compile(rf"(?<![A-Za-z])(?:{_MON})", re.IGNORECASE)

_UNIT_SECONDS: dict[str, int] = {
    "秒": 1, "second": 1, "分钟": 60, "分": 60, "minute": 60, "min": 60, "小时": 3600,
    "钟头": 3600, "个钟头": 3600, "hour": 3600, "天": 86400, "日": 86400, "day": 86400,
    "周": 604800, "星期": 604800, "week": 604800, "个月": 30 * 86400, "年": 365 * 86400,
}  # fmt: skip
_CN_AFTERNOON = {"下午": 12, "晚上": 12, "中午": 11}  # add 12 hours below these hours
_DASHES = str.maketrans("\u2010\u2011\u2012\u2013\u2014\u2212", "------")
_DAYS_BACK = {"今天": 0, "今日": 0, "today": 0, "昨天": 1, "昨日": 1, "yesterday": 1, "前天": 2}


def looks_chinese_or_ambiguous(text: str) -> bool:
    """Tell the feed parser to distrust feedparser's date (it misreads 年月日, CST, no year)."""
    if not text or not text.strip():
        return False  # nothing for us to parse either; keep whatever feedparser has
    return bool(_CJK_RE.search(text) or _CST_RE.search(text) or not _YEAR_RE.search(_clean(text)))


def parse_date(text: str | None, tz: dt.tzinfo, now: dt.datetime) -> dt.datetime | None:
    """Parse a date as printed by a source; return an aware datetime in UTC, or None."""
    if not text:
        return None
    if now.tzinfo is None:  # be lenient rather than silently using the host's zone
        now = now.replace(tzinfo=UTC)
    try:
        return _parse(_clean(text), tz, now)
    except (ValueError, OverflowError):  # impossible date or out-of-range arithmetic
        return None


def _clean(text: str) -> str:
    """NFKC turns full-width digits and punctuation (２０２１－０５：) into ASCII; dashes too."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_DASHES)
    return " ".join(text.split())


def _parse(text: str, tz: dt.tzinfo, now: dt.datetime) -> dt.datetime | None:
    """Try the cheap, common shapes first; the first shape that matches decides."""
    if not text:
        return None
    if len(text) <= 40 and text[:4].isdigit() and text[4:5] == "-":
        try:  # the common ISO / RFC 3339 case, no regex needed
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)
    default_tz = _SHANGHAI if "北京时间" in text else tz
    if m := _YMD_RE.search(text):
        return _build(int(m["y"]), int(m["m"]), int(m["d"]), m, tz, default_tz)
    if m := _RFC_RE.search(text):
        year = int(m["y"])
        if len(m["y"]) == 2:  # RFC 822 two-digit years
            year += 2000 if year < 70 else 1900
        return _build(year, _MONTH_NUM[m["mon"][:3].lower()], int(m["d"]), m, tz, default_tz)
    local_now = now.astimezone(default_tz)
    if _JUST_NOW_RE.search(text):
        return now.astimezone(UTC)
    if m := _AGO_RE.search(text):
        count = m["n"] or m["en"]
        amount = 0.5 if count == "半" else int(count)
        unit = (m["u"] or m["eu"]).lower()
        return (now - dt.timedelta(seconds=amount * _UNIT_SECONDS[unit])).astimezone(UTC)
    if m := _DAY_WORD_RE.search(text):
        day = local_now.date() - dt.timedelta(days=_DAYS_BACK[m["w"].lower()])
        return _build(day.year, day.month, day.day, m, tz, default_tz)
    if m := _MD_RE.search(text):
        month, day_of_month = int(m["m"]), int(m["d"])
        inferred = _infer_year(month, day_of_month, local_now)
        if inferred is None:
            return None
        return _build(inferred, month, day_of_month, m, tz, default_tz)
    if not _CJK_RE.search(text) and _ENGLISH_MONTH_RE.search(text):
        return _parse_english(text, tz, default_tz, local_now)
    return None


def _build(
    year: int, month: int, day: int, m: re.Match[str], tz: dt.tzinfo, default_tz: dt.tzinfo
) -> dt.datetime | None:
    """Combine date parts with the match's optional time and zone groups."""
    groups = m.groupdict()
    frac = (groups.get("f") or "")[:6].ljust(6, "0")
    hour = int(groups.get("H") or 0)
    if groups.get("ap") and hour <= 12:  # 12-hour clock: 12 AM is midnight, 12 PM is noon
        hour = hour % 12 + (12 if groups["ap"][0] in "Pp" else 0)
    elif groups.get("cn") in _CN_AFTERNOON and hour < _CN_AFTERNOON[groups["cn"]]:
        hour += 12
    naive = dt.datetime(
        year, month, day, hour, int(groups.get("M") or 0),
        int(groups.get("S") or 0), int(frac),
    )  # fmt: skip
    zone = _zone(groups["z"], tz, naive) if groups.get("z") else default_tz
    return None if zone is None else naive.replace(tzinfo=zone).astimezone(UTC)


def _zone(token: str, tz: dt.tzinfo, naive: dt.datetime) -> dt.tzinfo | None:
    """Resolve a zone token; CST is China Standard Time for +08:00 sources, else US Central."""
    token = token.upper()
    if token == "CST" and naive.replace(tzinfo=tz).utcoffset() == _CHINA_OFFSET:
        return dt.timezone(_CHINA_OFFSET)
    if (fixed := _ZONE_HOURS.get(token)) is not None:
        return UTC if fixed == 0 else dt.timezone(dt.timedelta(hours=fixed))
    if m := _OFFSET_RE.fullmatch(token):
        hours, minutes = int(m[2]), int(m[3] or 0)
        if hours > 14 or minutes > 59:
            return None  # not a real offset: treat the whole date as garbage
        offset = dt.timedelta(hours=hours, minutes=minutes)
        return dt.timezone(-offset if m[1] == "-" else offset)
    return None


def _infer_year(month: int, day: int, local_now: dt.datetime) -> int | None:
    """Latest year giving a date not after today in the source's zone."""
    limit = local_now.date()
    for year in range(limit.year, limit.year - 9, -1):  # 9 years: always reaches a leap year
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            continue
        if candidate <= limit:
            return year
    return None


def _parse_english(
    text: str, tz: dt.tzinfo, default_tz: dt.tzinfo, local_now: dt.datetime
) -> dt.datetime | None:
    """Slow path for free-form English ("May 8, 2021 2:59 PM EDT", Java's Date.toString)."""
    default = local_now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)

    def tzinfos(name: str | None, offset: int | None) -> dt.tzinfo | None:
        # Always answering via this callable also stops dateutil from consulting the host zone.
        if name:
            return _zone(name, tz, default)
        return None if offset is None else dt.timezone(dt.timedelta(seconds=offset))

    if not any(ch.isdigit() for ch in text):
        return None
    explicit: dt.tzinfo | None = None
    if z := _GMT_OFFSET_RE.search(text):  # dateutil reads "GMT+0800" POSIX-style, i.e. as -8
        if (explicit := _zone(z[0], tz, default)) is None:
            return None
        text = f"{text[: z.start()]} {text[z.end() :]}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = du_parser.parse(text, default=default, fuzzy=True, tzinfos=tzinfos)
    except Exception:  # dateutil raises assorted errors on junk; a bad date must not abort a poll
        return None
    if not _YEAR_RE.search(text) and parsed.date() > local_now.date() + dt.timedelta(days=1):
        parsed = parsed.replace(year=parsed.year - 1)  # no year printed: the latest past one
    if explicit is not None:
        parsed = parsed.replace(tzinfo=explicit)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=default_tz)).astimezone(UTC)
