"""The email digest: select -> render -> send -> ledger, in that order.

A recipient's digest holds the stories first seen since their last digest that they have not
been sent (the ledger), after their filters. Stories are marked sent only after the SMTP
server accepted the message: a failure marks nothing and the next run retries. A crash
between acceptance and the ledger commit can repeat that one message, never lose a story.
"""

from __future__ import annotations

import hashlib
import logging
import os
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from zoneinfo import ZoneInfo

import css_inline
from apscheduler.triggers.cron import CronTrigger
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    select_autoescape,
)

from . import dedupe, metrics
from .config import Config, DigestConfig, Recipient, SmtpConfig, crontab_trigger
from .errors import UsageError
from .model import Story
from .normalize import truncate
from .outputs import also_label, is_chinese
from .outputs.atom import self_url
from .store import DigestLedger, Store

log = logging.getLogger("aggregator.digest")

FIRST_DIGEST_LOOKBACK = timedelta(days=1)
#: Stories committed late (a long poll) still count: the ledger, not the clock, prevents repeats.
FLOOR_MARGIN = timedelta(days=2)
SUMMARY_CHARS = 200


@dataclass(frozen=True)
class Group:
    name: str
    stories: tuple[Story, ...]


@dataclass(frozen=True)
class Digest:
    recipient: str
    stories: tuple[Story, ...]  # every story this message covers (listed or counted in "more")
    groups: tuple[Group, ...]
    more: int
    message: EmailMessage


def select_stories(candidates: Sequence[Story], recipient: Recipient) -> list[Story]:
    """The recipient's filters: any copy's tag or source counts."""
    chosen = []
    for story in candidates:
        tags = {t for c in story.copies for t in c.article.tags}
        sources = {c.article.source for c in story.copies}
        if recipient.tags and not tags & set(recipient.tags):
            continue
        if recipient.sources and not sources & set(recipient.sources):
            continue
        chosen.append(story)
    return chosen


def group_stories(stories: Sequence[Story], group_by: str, other: str) -> list[Group]:
    """Each story once, under its first tag (or its source); groups in order of first story."""
    groups: dict[str, list[Story]] = {}
    for story in stories:
        main = story.preferred.article
        key = (
            ""
            if group_by == "none"
            else main.source
            if group_by == "source"
            else (main.tags[0] if main.tags else other)
        )
        groups.setdefault(key, []).append(story)
    ordered = sorted(groups.items(), key=lambda kv: (kv[0] == other, -len(kv[1]), kv[0]))
    return [Group(name, tuple(items)) for name, items in ordered]


def _environment(digest: DigestConfig) -> Environment:
    loaders: list[BaseLoader] = [PackageLoader("aggregator", "digest_templates")]
    if digest.templates:
        loaders.insert(0, FileSystemLoader(str(digest.templates)))
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short"] = lambda text: truncate(text or "", SUMMARY_CHARS)
    return env


def build_digest(
    config: Config,
    recipient: Recipient,
    stories: Sequence[Story],
    now: datetime,
    failing: Sequence[tuple[str, datetime]] = (),
) -> Digest:
    """Render one recipient's message (multipart/alternative: text and inlined HTML)."""
    digest = config.digest
    assert digest is not None
    tz = ZoneInfo(digest.timezone)
    chinese = any(is_chinese(s.preferred.article.title) for s in stories)
    listed = list(stories[: digest.max_stories])
    groups = group_stories(listed, digest.group_by, "其他" if chinese else "Other")
    more = len(stories) - len(listed)
    local = now.astimezone(tz)
    context = {
        "title": config.output.title,
        "date": local.strftime("%Y-%m-%d"),
        "count": len(stories),
        "groups": groups,
        "more": more,
        "feed_url": self_url(config.output),
        "site_url": config.output.link,
        "tz": tz,
        "also_label": also_label,
        "chinese": chinese,
        "failing": [(name, since.astimezone(tz)) for name, since in failing],
        "group_by": digest.group_by,
    }
    env = _environment(digest)
    text = env.get_template("digest.txt").render(context)
    html = css_inline.inline(env.get_template("digest.html").render(context))
    message = EmailMessage()
    message["Subject"] = digest.subject.format(
        title=config.output.title, date=context["date"], count=len(stories)
    )
    message["From"] = digest.sender
    message["To"] = recipient.address
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(recipient.address, stories, digest.sender)
    message["List-Unsubscribe"] = f"<mailto:{parseaddr(digest.sender)[1]}?subject=unsubscribe>"
    message.set_content(text, charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return Digest(recipient.address, tuple(stories), tuple(groups), more, message)


def message_id(recipient: str, stories: Sequence[Story], sender: str) -> str:
    """Stable for the same recipient and stories: a retried send keeps its Message-ID, so a
    mail system that saw it already can drop the duplicate."""
    digest = hashlib.sha256(f"{recipient}|{','.join(s.uid for s in stories)}".encode()).hexdigest()[
        :32
    ]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<digest.{digest}@{domain}>"


def send(smtp: SmtpConfig, message: EmailMessage) -> None:
    """Raises on any refusal; returns only when the server accepted the message."""
    timeout = smtp.timeout.total_seconds()
    context = ssl.create_default_context(cafile=str(smtp.ca_file) if smtp.ca_file else None)
    if not smtp.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    client: smtplib.SMTP
    if smtp.security == "ssl":
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
    with client:
        if smtp.security == "starttls":
            client.starttls(context=context)
        if smtp.username and smtp.password:
            client.login(smtp.username, smtp.password)
        refused = client.send_message(message)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)


def describe_failure(exc: BaseException) -> str:
    """A reason for the log and the ledger, never the password."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return f"SMTP {exc.smtp_code} {text}".strip()
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}"


def failing_sources(config: Config, store: Store, now: datetime) -> list[tuple[str, datetime]]:
    return [
        (h.name, h.failing_since)
        for h in store.health()
        if h.failing_since and h.dead(now, config.poll.dead_after)
    ]


@dataclass(frozen=True)
class _Inputs:
    """What every recipient's digest of one run reads alike (the ledger is read per recipient)."""

    ledger: DigestLedger
    priorities: dict[str, int]
    failing: list[tuple[str, datetime]]


def _inputs(config: Config, store: Store, now: datetime) -> _Inputs:
    priorities = {s.name: s.priority for s in config.sources}
    return _Inputs(DigestLedger(store), priorities, failing_sources(config, store, now))


def prepare(config: Config, store: Store, now: datetime, only: Sequence[str] = ()) -> list[Digest]:
    """The digests due now, one per recipient with something to send."""
    digest = config.digest
    assert digest is not None
    inputs = _inputs(config, store, now)
    prepared = (
        _prepare_one(config, inputs, recipient, now)
        for recipient in digest.recipients
        if not only or recipient.address in only
    )
    return [item for item in prepared if item is not None]


def _prepare_one(
    config: Config, inputs: _Inputs, recipient: Recipient, now: datetime
) -> Digest | None:
    """One recipient's digest from the ledger as it is now; None when there is nothing to send."""
    digest = config.digest
    assert digest is not None
    last = inputs.ledger.last_sent(recipient.address)
    floor = (last - FLOOR_MARGIN) if last else now - FIRST_DIGEST_LOOKBACK
    candidates = [
        dedupe.arrange(s, inputs.priorities)
        for s in inputs.ledger.undelivered(recipient.address, floor)
    ]
    chosen = select_stories(candidates, recipient)
    if not chosen and (digest.skip_empty or _sent_since_schedule(digest, last, now)):
        return None  # an empty digest goes out at most once a period (instances may race)
    chosen.sort(key=lambda s: s.preferred.article.published, reverse=True)
    return build_digest(config, recipient, chosen, now, inputs.failing)


@dataclass(frozen=True)
class Delivery:
    recipient: str
    status: str  # sent | failed | dry_run | busy
    stories: int
    error: str | None = None

    def line(self) -> str:
        if self.status == "failed":
            return f"{self.recipient}: error: {self.error} (nothing marked; retried next run)"
        if self.status == "dry_run":
            return f"{self.recipient}: {self.stories} stories (dry run: not sent, not marked)"
        if self.status == "busy":
            return f"{self.recipient}: another instance is sending this digest ({self.error})"
        return f"{self.recipient}: sent {self.stories} stories"


#: How long an instance may take to send one digest before another may take it over (an
#: instance that crashed mid-send lets go this way; the ledger still sends no story twice).
CLAIM = timedelta(minutes=10)


def run_digest(
    config: Config,
    store: Store,
    now: datetime,
    *,
    dry_run: bool = False,
    out: str | None = None,
    only: Sequence[str] = (),
) -> list[Delivery]:
    """Send every due digest, one message per recipient; failures are recorded, not raised."""
    digest = config.digest
    assert digest is not None
    unknown = [a for a in only if a not in {r.address for r in digest.recipients}]
    if unknown:
        raise UsageError(f"{unknown[0]!r} is not a configured recipient")
    results: list[Delivery] = []
    claimant = f"{socket.gethostname()}:{os.getpid()}"
    inputs = _inputs(config, store, now)
    for recipient in digest.recipients:
        if only and recipient.address not in only:
            continue
        if not dry_run:
            # Several instances may run the digest: one at a time sends a recipient's, and
            # what it sends is read after its claim, so it sees what another instance sent.
            with store.transaction() as tx:
                taken = tx.claim_digest(
                    recipient.address, now, now + CLAIM, claimant, abandoned=_crashed_here
                )
            if taken is not None:
                until = taken.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
                results.append(Delivery(recipient.address, "busy", 0, f"claimed until {until}"))
                continue
        outcome = None
        try:
            item = _prepare_one(config, inputs, recipient, now)
            if item is not None:
                outcome = _deliver(config, store, now, item, dry_run, out)
                results.append(outcome)
        finally:
            if not dry_run and outcome is None:  # nothing to send, or an error: let go
                with store.transaction() as tx:
                    tx.release_digest(recipient.address)
    return results


def _crashed_here(claimant: str) -> bool:
    """A claim held by a process on this host that no longer runs (killed mid-send) is taken
    over at once; one from another host is waited out (`CLAIM`)."""
    host, _, pid = claimant.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _deliver(
    config: Config, store: Store, now: datetime, item: Digest, dry_run: bool, out: str | None
) -> Delivery:
    """Send one digest; its stories are marked (and the claim let go) only once the server
    accepted it; a failure is recorded and marks nothing."""
    digest = config.digest
    assert digest is not None
    if out:
        _write_eml(Path(out), item, now.astimezone(ZoneInfo(digest.timezone)))
    if dry_run:
        return Delivery(item.recipient, "dry_run", len(item.stories))
    try:
        send(digest.smtp, item.message)
    except (smtplib.SMTPException, OSError) as exc:
        reason = describe_failure(exc)
        log.warning(
            "digest to %s failed: %s (nothing marked; retried next run)", item.recipient, reason
        )
        with store.transaction() as tx:
            tx.record_digest_failure(item.recipient, reason, now)
        metrics.digest_recorded("failed")
        return Delivery(item.recipient, "failed", len(item.stories), reason)
    # Only now, after the server accepted the message, are its stories marked sent.
    with store.transaction() as tx:
        tx.mark_delivered(
            item.recipient, [s.id for s in item.stories], item.message["Message-ID"], now
        )
    log.info("digest to %s: %d stories sent", item.recipient, len(item.stories))
    metrics.digest_recorded("sent")
    return Delivery(item.recipient, "sent", len(item.stories))


def _write_eml(folder: Path, item: Digest, local: datetime) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{item.recipient.replace('@', '_at_')}-{local:%Y%m%d-%H%M}.eml"
    (folder / name).write_bytes(bytes(item.message))


def cron_trigger(digest: DigestConfig) -> CronTrigger:
    trigger: CronTrigger = crontab_trigger(digest.schedule, digest.timezone)
    return trigger


def previous_fire(digest: DigestConfig, now: datetime) -> datetime | None:
    """The last time the schedule fired at or before `now` (looking back two days)."""
    trigger = cron_trigger(digest)
    fire = trigger.get_next_fire_time(None, now - timedelta(days=2))
    last = None
    while fire is not None and fire <= now:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


def _sent_since_schedule(digest: DigestConfig, last_sent: datetime | None, now: datetime) -> bool:
    fire = previous_fire(digest, now)
    return last_sent is not None and fire is not None and last_sent >= fire


def missed_run(digest: DigestConfig, last_run: datetime | None, now: datetime) -> bool:
    """A run the service missed while down is made up once at start-up, if within a day."""
    fire = previous_fire(digest, now)
    if fire is None or now - fire > timedelta(days=1):
        return False
    return last_run is None or last_run < fire


def retry_delay(failures: int) -> timedelta:
    """Backoff between retries of a failed send: 5 min doubling, at most 2 h."""
    return min(timedelta(minutes=5) * 2 ** max(failures - 1, 0), timedelta(hours=2))
