"""The config's pydantic models, and the value parsers their fields use (durations, sizes,
time zones, regular expressions, CSS selectors). Models are frozen; unknown keys are errors.

Validation only: reading the file, `${NAME}` expansion and relative paths belong to `load`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cssselect import GenericTranslator, SelectorError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.I)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.I)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def parse_duration(value: Any) -> timedelta:
    """`90s`, `30m`, `2h`, `14d`; a bare number is seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(
            f"invalid duration {value!r}: use a number with s, m, h or d (e.g. 90s, 30m, 2h)"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()]
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be positive")
    return timedelta(seconds=seconds)


def parse_size(value: Any) -> int:
    """`10MB`, `512KB`, `1MiB`; a bare number is bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"invalid size {value!r}: use a number with B, KB, MB or GB (e.g. 10MB)")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])


def _check_zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
        ) from None
    return value


def _check_regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


def split_selector(selector: str) -> tuple[str, str | None]:
    """`a.next@href` -> (`a.next`, `href`); a bare `@href` means the item element itself."""
    css, sep, attr = selector.rpartition("@")
    if sep and attr and re.fullmatch(r"[\w:-]+", attr):
        return css.strip(), attr
    return selector.strip(), None


def _check_selector(value: str | None) -> str | None:
    if value is None:
        return None
    css, _ = split_selector(value)
    if css:
        try:
            GenericTranslator().css_to_xpath(css)
        except SelectorError as exc:
            raise ValueError(f"invalid CSS selector {css!r}: {exc}") from None
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
Zone = Annotated[str, BeforeValidator(_check_zone)]
Regex = Annotated[str, BeforeValidator(_check_regex)]
Selector = Annotated[str, BeforeValidator(_check_selector)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PollConfig(_Model):
    interval: Duration = timedelta(minutes=30)
    timeout: Duration = timedelta(seconds=20)
    concurrency: int = Field(default=8, ge=1, le=256)
    max_bytes: Size = 10 * 10**6
    user_agent: str = "edu-news-aggregator/0.1 (+https://github.com/)"
    timezone: Zone = "UTC"
    max_backoff: Duration = timedelta(hours=24)
    dead_after: Duration = timedelta(days=3)
    per_host: int = Field(default=2, ge=1, le=64)
    allow_private_hosts: bool = False
    workers: int = Field(default=0, ge=0, le=64)  # parse processes; 0 = one per core


class OutputConfig(_Model):
    title: str = "Education News"
    id: str = "urn:example:edu-news"
    link: str = "http://localhost:8080/"
    author: str = "Education News"
    atom_path: Path = Path("public/feed.atom")
    html_path: Path = Path("public/index.html")
    max_entries: int = Field(default=200, ge=1, le=10000)
    self_url: str | None = None  # default: link + feed.atom

    @field_validator("id")
    @classmethod
    def _uri(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", value):
            raise ValueError(f"{value!r} is not a valid URI (e.g. urn:example:edu-news)")
        return value

    @field_validator("link", "self_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        return value if value is None else check_http_url(value)


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class Selectors(_Model):
    item: Selector
    title: Selector
    link: Selector
    date: Selector | None = None
    summary: Selector | None = None
    content: Selector | None = None
    next_page: Selector | None = None
    remove: list[Selector] = []
    attachments: Selector | None = None


def check_http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s?#]+", value, re.I):
        raise ValueError(
            f"{value!r} is not an http(s) URL (only http:// and https:// are accepted)"
        )
    return value


class SourceConfig(_Model):
    name: str = Field(min_length=1)
    url: str
    type: Literal["feed", "html", "auto"] = "feed"
    interval: Duration | None = None
    tags: list[str] = []
    enabled: bool = True
    priority: int = 0
    timezone: Zone | None = None
    selectors: Selectors | None = None
    max_pages: int = Field(default=1, ge=1, le=50)
    title_cleanup: Regex | None = None
    headers: dict[str, str] = {}
    extract: Literal["auto"] | None = None
    follow_offsite: bool = False
    include: Regex | None = None
    exclude: Regex | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @model_validator(mode="after")
    def _html_needs_selectors(self) -> SourceConfig:
        if self.type == "html" and self.selectors is None:
            raise ValueError("an html source needs `selectors` with at least item, title and link")
        return self


class Rule(_Model):
    match: Regex
    tag: str | None = None
    drop: bool = False

    @model_validator(mode="after")
    def _does_something(self) -> Rule:
        if not self.tag and not self.drop:
            raise ValueError("a rule needs `tag: NAME` or `drop: true`")
        return self


class DedupeConfig(_Model):
    enabled: bool = True
    window: Duration = timedelta(days=14)
    threshold: float = Field(default=0.6, gt=0, le=1)


class SmtpConfig(_Model):
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    timeout: Duration = timedelta(seconds=30)
    verify: bool = True
    ca_file: Path | None = None


class Recipient(_Model):
    address: str
    tags: list[str] = []
    sources: list[str] = []

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value):
            raise ValueError(f"{value!r} is not an email address")
        return value


class DigestConfig(_Model):
    schedule: str = "0 7 * * *"
    timezone: Zone = "UTC"
    subject: str = "{title} · {date} · {count} stories"
    sender: str = "Education News <digest@localhost>"
    group_by: Literal["tag", "source", "none"] = "tag"
    max_stories: int = Field(default=100, ge=1)
    skip_empty: bool = True
    templates: Path | None = None
    smtp: SmtpConfig = SmtpConfig()
    recipients: list[Recipient] = []

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            crontab_trigger(value, "UTC")
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def crontab_trigger(expr: str, timezone: str) -> Any:
    """A standard crontab line as an APScheduler 3 trigger. APScheduler 3 counts weekdays from
    Monday = 0; crontab from Sunday = 0 (and 7): numbers in the fifth field become names."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    head, _, step = fields[4].partition("/")

    def name(match: re.Match[str]) -> str:
        number = int(match.group(0))
        if number > 7:
            raise ValueError(f"weekday {number} is out of range 0-7")
        return _WEEKDAYS[number]

    fields[4] = re.sub(r"\d+", name, head) + (f"/{step}" if step else "")
    return CronTrigger(
        minute=fields[0],
        hour=fields[1],
        day=fields[2],
        month=fields[3],
        day_of_week=fields[4],
        timezone=timezone,
    )


class _KeyedError(ValueError):
    """A model-level error that knows which key it is about (`load` names that key and its
    line instead of the model's)."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class Config(_Model):
    database: str = "sqlite:///data/aggregator.db"
    poll: PollConfig = PollConfig()
    output: OutputConfig = OutputConfig()
    server: ServerConfig = ServerConfig()
    dedupe: DedupeConfig = DedupeConfig()
    rules: list[Rule] = []
    digest: DigestConfig | None = None
    sources: list[SourceConfig] = []

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for index, source in enumerate(self.sources):
            if source.name in seen:
                raise _KeyedError(
                    ("sources", index, "name"), f"duplicate source name {source.name!r}"
                )
            seen.add(source.name)
        return self

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    def source_tz(self, source: SourceConfig) -> ZoneInfo:
        return ZoneInfo(source.timezone or self.poll.timezone)

    def interval(self, source: SourceConfig) -> timedelta:
        return source.interval or self.poll.interval
