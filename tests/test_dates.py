"""Table-driven tests for aggregator.parse.dates; expected values are computed by hand in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from aggregator.parse.dates import looks_chinese_or_ambiguous, parse_date

SH = ZoneInfo("Asia/Shanghai")
CHI = ZoneInfo("America/Chicago")
NOW = datetime(2021, 5, 8, 15, 0, tzinfo=SH)  # = 2021-05-08 07:00 UTC
NEW_YEAR = datetime(2026, 1, 2, 8, 0, tzinfo=SH)  # = 2026-01-02 00:00 UTC
NEW_YEAR_UTC = datetime(2026, 1, 1, 20, 0, tzinfo=UTC)  # already 01-02 04:00 in Shanghai
YEAR_END = datetime(2026, 12, 31, 12, 0, tzinfo=SH)  # = 2026-12-31 04:00 UTC


def u(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    """An expected UTC datetime."""
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


MIDNIGHT_0508 = u(2021, 5, 7, 16)  # 2021-05-08 00:00 in Shanghai

ABSOLUTE: list[tuple[str, tzinfo, datetime]] = [
    ("2021-05-08", SH, MIDNIGHT_0508),
    ("2021-05-08 14:59:43", SH, u(2021, 5, 8, 6, 59, 43)),
    ("2021-05-08 14:59", SH, u(2021, 5, 8, 6, 59)),
    ("2021/5/8", SH, MIDNIGHT_0508),
    ("2021/05/08 14:59", SH, u(2021, 5, 8, 6, 59)),
    ("2021.05.08", SH, MIDNIGHT_0508),
    ("2021年5月8日", SH, MIDNIGHT_0508),
    ("2021年05月08日 14:59", SH, u(2021, 5, 8, 6, 59)),
    ("2021年05月08日14:59:43", SH, u(2021, 5, 8, 6, 59, 43)),
    ("2021-5-8", SH, MIDNIGHT_0508),
    ("２０２１－０５－０８", SH, MIDNIGHT_0508),
    ("２０２１年０５月０８日　１４：５９", SH, u(2021, 5, 8, 6, 59)),
    ("发布时间：2021-05-08", SH, MIDNIGHT_0508),
    ("来源：教育厅 2021-05-08 14:59", SH, u(2021, 5, 8, 6, 59)),
    ("[2021-05-08]", SH, MIDNIGHT_0508),
    ("(2021-05-08)", SH, MIDNIGHT_0508),
    ("日期: 2021-05-08   浏览次数: 123", SH, MIDNIGHT_0508),
    ("2021-05-08", UTC, u(2021, 5, 8)),
    ("2021-05-08", CHI, u(2021, 5, 8, 5)),  # CDT, -05:00
    ("2021-01-08 10:00", CHI, u(2021, 1, 8, 16)),  # CST, -06:00
    # RFC 822
    ("Sat, 08 May 2021 14:59:43 +0800", SH, u(2021, 5, 8, 6, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 +0800", CHI, u(2021, 5, 8, 6, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 GMT", SH, u(2021, 5, 8, 14, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 UTC", SH, u(2021, 5, 8, 14, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 -0500", SH, u(2021, 5, 8, 19, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 EDT", SH, u(2021, 5, 8, 18, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 EST", UTC, u(2021, 5, 8, 19, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 PST", UTC, u(2021, 5, 8, 22, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 PDT", UTC, u(2021, 5, 8, 21, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 MST", UTC, u(2021, 5, 8, 21, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 CDT", UTC, u(2021, 5, 8, 19, 59, 43)),
    ("Sat, 8 May 2021 14:59:43", SH, u(2021, 5, 8, 6, 59, 43)),  # no zone: source tz
    ("Sat, 08 May 2021 14:59 +0800", SH, u(2021, 5, 8, 6, 59)),
    ("Sat, 08 May 21 14:59:43 GMT", SH, u(2021, 5, 8, 14, 59, 43)),
    ("08 May 2021", SH, MIDNIGHT_0508),
    # CST: China Standard Time for +08:00 sources, US Central (-06:00) otherwise
    ("Sat, 08 May 2021 14:59:43 CST", SH, u(2021, 5, 8, 6, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 CST", CHI, u(2021, 5, 8, 20, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 CST", UTC, u(2021, 5, 8, 20, 59, 43)),
    ("Sat, 08 May 2021 14:59:43 CST", ZoneInfo("Asia/Taipei"), u(2021, 5, 8, 6, 59, 43)),
    ("2021-05-08 14:59:43 CST", SH, u(2021, 5, 8, 6, 59, 43)),
    ("2021-05-08 14:59:43 CST", CHI, u(2021, 5, 8, 20, 59, 43)),
    ("Sat May 08 14:59:43 CST 2021", SH, u(2021, 5, 8, 6, 59, 43)),  # Java Date.toString
    ("Sat May 08 14:59:43 CST 2021", CHI, u(2021, 5, 8, 20, 59, 43)),
    # ISO 8601 / RFC 3339
    ("2021-05-08T14:59:43+08:00", CHI, u(2021, 5, 8, 6, 59, 43)),
    ("2021-05-08T06:59:43Z", SH, u(2021, 5, 8, 6, 59, 43)),
    ("2021-05-08T06:59:43.123Z", SH, u(2021, 5, 8, 6, 59, 43, 123000)),
    ("2021-05-08T14:59:43.123456+08:00", SH, u(2021, 5, 8, 6, 59, 43, 123456)),
    ("2021-05-08T14:59:43.123456789+08:00", SH, u(2021, 5, 8, 6, 59, 43, 123456)),
    ("2021-05-08T14:59:43", SH, u(2021, 5, 8, 6, 59, 43)),
    ("2021-05-08T14:59:43-05:00", SH, u(2021, 5, 8, 19, 59, 43)),
    ("2021-05-08T14:59:43+0800", SH, u(2021, 5, 8, 6, 59, 43)),
    ("updated 2021-05-08T06:59:43Z", SH, u(2021, 5, 8, 6, 59, 43)),
    # explicit zones in Chinese text; 北京时间 is Asia/Shanghai whatever the source tz
    ("2021-05-08 14:59 北京时间", CHI, u(2021, 5, 8, 6, 59)),
    ("北京时间2021年05月08日 14:59", UTC, u(2021, 5, 8, 6, 59)),
    ("2021-05-08 14:59 UTC+8", UTC, u(2021, 5, 8, 6, 59)),
    ("2021-05-08 14:59 GMT+08:00", UTC, u(2021, 5, 8, 6, 59)),
    # free-form English (dateutil fallback)
    ("May 8, 2021 2:59 PM EDT", SH, u(2021, 5, 8, 18, 59)),
    ("Saturday, May 8, 2021", CHI, u(2021, 5, 8, 5)),
    ("Posted on 8 May 2021 at 14:59", SH, u(2021, 5, 8, 6, 59)),
    ("Sat May 08 2021 14:59:43 GMT+0800 (China Standard Time)", CHI, u(2021, 5, 8, 6, 59, 43)),
    ("May 8", SH, MIDNIGHT_0508),
    ("Dec 25", SH, u(2020, 12, 24, 16)),  # no year, would be in the future: last year
    ("8 May 2021 2:59 PM", SH, u(2021, 5, 8, 6, 59)),
    ("2021-05-08 2:59 p.m.", SH, u(2021, 5, 8, 6, 59)),
    ("2021-05-08 12:05 AM", UTC, u(2021, 5, 8, 0, 5)),
    ("2021-05-08 12:05 PM", UTC, u(2021, 5, 8, 12, 5)),
    ("May 8, 2021 12:30 AM", UTC, u(2021, 5, 8, 0, 30)),
    ("08-May-2021 14:59", UTC, u(2021, 5, 8, 14, 59)),
    ("2021年5月8日 下午2:59", SH, u(2021, 5, 8, 6, 59)),
    ("2021年5月8日 晚上8时30分", SH, u(2021, 5, 8, 12, 30)),
    ("2021年5月8日 中午12:30", SH, u(2021, 5, 8, 4, 30)),
    ("2021年5月8日 上午9:05", SH, u(2021, 5, 8, 1, 5)),
    ("2021–05–08", SH, MIDNIGHT_0508),  # en dashes
    ("2021-05-08 14:59 Zhang San", SH, u(2021, 5, 8, 6, 59)),  # "Z" is not a zone here
    ("2021-05-08 14:59:43 +0800 (CST)", CHI, u(2021, 5, 8, 6, 59, 43)),
]


@pytest.mark.parametrize(("text", "tz", "expected"), ABSOLUTE)
def test_absolute(text: str, tz: tzinfo, expected: datetime) -> None:
    assert parse_date(text, tz, NOW) == expected


MONTH_DAY: list[tuple[str, datetime, datetime]] = [
    ("05-08", NOW, MIDNIGHT_0508),
    ("[05-08]", NOW, MIDNIGHT_0508),
    ("(05-08)", NOW, MIDNIGHT_0508),
    ("05/08", NOW, MIDNIGHT_0508),
    ("5/8", NOW, MIDNIGHT_0508),
    ("5月8日", NOW, MIDNIGHT_0508),
    ("05月08日", NOW, MIDNIGHT_0508),
    ("０５－０８", NOW, MIDNIGHT_0508),
    ("05-08 14:59", NOW, u(2021, 5, 8, 6, 59)),
    ("5月8日 14:59", NOW, u(2021, 5, 8, 6, 59)),
    ("05-09", NOW, u(2020, 5, 8, 16)),  # tomorrow would be in the future: last year
    ("05-10", NOW, u(2020, 5, 9, 16)),  # further ahead: last year
    ("01-01", NOW, u(2020, 12, 31, 16)),
    # around New Year: now = 2026-01-02 08:00 Asia/Shanghai
    ("12-30", NEW_YEAR, u(2025, 12, 29, 16)),
    ("12-31", NEW_YEAR, u(2025, 12, 30, 16)),
    ("12月31日", NEW_YEAR, u(2025, 12, 30, 16)),
    ("01-01", NEW_YEAR, u(2025, 12, 31, 16)),
    ("01-02", NEW_YEAR, u(2026, 1, 1, 16)),
    ("01-03", NEW_YEAR, u(2025, 1, 2, 16)),
    ("01-04", NEW_YEAR, u(2025, 1, 3, 16)),
    ("[01-02] ", NEW_YEAR_UTC, u(2026, 1, 1, 16)),  # "today" in the source tz, not UTC's 01-01
    ("01-01", NEW_YEAR_UTC, u(2025, 12, 31, 16)),
    # now = 2026-12-31
    ("12-31", YEAR_END, u(2026, 12, 30, 16)),
    ("12-30 23:59", YEAR_END, u(2026, 12, 30, 15, 59)),
    ("01-01", YEAR_END, u(2025, 12, 31, 16)),  # 2027-01-01 would be in the future
    ("01-02", YEAR_END, u(2026, 1, 1, 16)),
    ("02-29", YEAR_END, u(2024, 2, 28, 16)),  # latest leap year
]


@pytest.mark.parametrize(("text", "now", "expected"), MONTH_DAY)
def test_month_day_year_inference(text: str, now: datetime, expected: datetime) -> None:
    assert parse_date(text, SH, now) == expected


RELATIVE: list[tuple[str, datetime, datetime]] = [
    ("刚刚", NOW, u(2021, 5, 8, 7)),
    ("3小时前", NOW, u(2021, 5, 8, 4)),
    ("15分钟前", NOW, u(2021, 5, 8, 6, 45)),
    ("30秒前", NOW, u(2021, 5, 8, 6, 59, 30)),
    ("2天前", NOW, u(2021, 5, 6, 7)),
    ("1周前", NOW, u(2021, 5, 1, 7)),
    ("半小时前", NOW, u(2021, 5, 8, 6, 30)),
    ("发布于 3 小时前", NOW, u(2021, 5, 8, 4)),
    ("３小时前", NOW, u(2021, 5, 8, 4)),
    ("3 hours ago", NOW, u(2021, 5, 8, 4)),
    ("今天 14:30", NOW, u(2021, 5, 8, 6, 30)),
    ("今天", NOW, u(2021, 5, 7, 16)),
    ("昨天", NOW, u(2021, 5, 6, 16)),
    ("昨天 09:15", NOW, u(2021, 5, 7, 1, 15)),
    ("前天", NOW, u(2021, 5, 5, 16)),
    ("前天 23:00", NOW, u(2021, 5, 6, 15)),
    ("yesterday", NOW, u(2021, 5, 6, 16)),
    # calendar words follow the source tz's date, not UTC's
    ("今天 01:00", NEW_YEAR_UTC, u(2026, 1, 1, 17)),
    ("昨天 23:00", NEW_YEAR, u(2026, 1, 1, 15)),
    ("2天前", NEW_YEAR, u(2025, 12, 31)),
]


@pytest.mark.parametrize(("text", "now", "expected"), RELATIVE)
def test_relative(text: str, now: datetime, expected: datetime) -> None:
    assert parse_date(text, SH, now) == expected


def test_relative_in_utc_source() -> None:
    assert parse_date("昨天", UTC, NEW_YEAR) == u(2026, 1, 1)


GARBAGE: list[str | None] = [
    None,
    "",
    "   ",
    "hello world",
    "abc123",
    "May",
    "第3期",
    "１２３",
    "Version 3.14",
    "Tel 555-1234",
    "99:99",
    "14:59",
    "2021-02-30",
    "2021-13-01",
    "2021-00-10",
    "2021年13月1日",
    "2021年2月30日",
    "2021-05-08 25:00",
    "2021-05-08T14:59:43+25:00",
    "0000-01-01",
    "13-45",
    "02-30",
    "00-10",
    "Sat, 31 Feb 2021 14:59:43 GMT",
    "Sat, 08 Foo 2021 14:59:43 GMT",
    "1 Jan 0001 00:00 +1400",  # year 1 is not "01"; +14:00 makes it unrepresentable
]


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_is_none(text: str | None) -> None:
    assert parse_date(text, SH, NOW) is None


def test_long_garbage_is_none_and_fast() -> None:
    assert parse_date("教育" * 5000 + " 1 2 3 " * 1000 + "-" * 5000, SH, NOW) is None


ALL_INPUTS = [t for t, _, _ in ABSOLUTE] + [t for t, _, _ in MONTH_DAY + RELATIVE]


@pytest.mark.parametrize("tz", [SH, CHI, UTC, timezone(timedelta(hours=-3))])
def test_results_always_aware_utc(tz: tzinfo) -> None:
    for text in ALL_INPUTS:
        for now in (NOW, NEW_YEAR, YEAR_END):
            result = parse_date(text, tz, now)
            assert result is not None, text
            assert result.tzinfo is UTC, text
            assert result.utcoffset() == timedelta(0), text


def test_now_is_not_read_from_clock() -> None:
    far_past = datetime(2001, 3, 4, 12, 0, tzinfo=SH)
    assert parse_date("05-08", SH, far_past) == u(2000, 5, 7, 16)
    assert parse_date("May 8", SH, far_past) == u(2000, 5, 7, 16)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024年04月30日", True),
        ("Tue, 30 Apr 2024 10:00:00 CST", True),
        ("04-30", True),
        ("Tue, 30 Apr 10:00:00", True),
        ("２０２４－０４－３０", True),
        ("Tue, 30 Apr 2024 10:00:00 +0800", False),
        ("2024-04-30T10:00:00Z", False),
        ("Tue, 30 Apr 2024 10:00:00 GMT", False),
        ("Tue, 30 Apr 2024 10:00:00 CSTX", False),
        ("", False),
        ("   ", False),
    ],
)
def test_looks_chinese_or_ambiguous(text: str, expected: bool) -> None:
    assert looks_chinese_or_ambiguous(text) is expected
