"""Poll benchmark: `aggregator poll` against the `reader` library on the same generated feeds.

For each size N (``--sizes 200,1000``) the script generates N feeds (RSS 2.0 and Atom, ~35
entries and ~110 KB each, Chinese and English HTML), serves them from 127.0.0.1 with
conditional GET (ETag, Last-Modified, 304), and times four subprocesses:

* ``aggregator poll`` on an empty database (cold), then again (warm: every feed answers 304);
* ``reader``: ``add_feed`` for each feed + ``update_feeds(workers=8)`` (cold), then
  ``update_feeds(workers=8, scheduled=False)`` (warm).

Each run reports wall time, feeds/s, entries/s, and peak memory: the largest process of the
run's tree (``ru_maxrss`` from ``os.wait4``) and the sampled peak of the whole tree (PSS).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import inspect
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = 35  # entries a feed
FEED_BYTES = 110_000  # target size of one feed
WORKERS = 8  # aggregator poll.concurrency and reader update_feeds(workers=...)
TARGET_RATIO = 0.5  # our wall time / reader's, cold and warm
TARGET_MB = 250.0  # peak memory of one aggregator poll

# --- text ----------------------------------------------------------------------------------
# Word lists for original, random text. Sentences are drawn word by word from large lists, so
# two articles share few token 3-grams (as unrelated news does) and dedupe is not fooled.


def _words(text: str) -> list[str]:
    return text.split()


_EN_DET = _words("the a every each one another this that some no")
_EN_ADJ = _words("""
rural urban public private local national regional annual digital early secondary primary
vocational higher remote bilingual small large new former senior junior independent free
mandatory optional crowded underfunded rising falling delayed revised ambitious modest
controversial popular quiet sudden gradual major minor temporary permanent weekly monthly
statewide citywide experimental traditional flexible strict shared online outdoor indoor
accessible inclusive competitive elite struggling thriving overdue detailed broad narrow
""")
_EN_NOUN = _words("""
school district teacher pupil student parent principal board council college university
campus classroom curriculum syllabus exam test grade score budget grant fund scholarship
tuition fee loan library laboratory canteen bus timetable term semester lesson lecture
seminar course degree diploma certificate apprenticeship internship workshop programme
policy reform review report survey study audit inspection committee union strike protest
enrolment admission attendance absence behaviour wellbeing counselling meal uniform
textbook tablet laptop network platform app portal deadline calendar holiday assessment
coursework homework project research faculty dean provost trustee governor minister
agency regulator inspector charity foundation donor sponsor partnership pilot scheme
vacancy shortage salary pension contract contractor building roof playground gym field
""")
_EN_VERB = _words("""
approved rejected announced postponed expanded reduced doubled halved reviewed defended
questioned funded cancelled launched piloted redesigned replaced renamed merged split
extended shortened opened closed inspected praised criticised delayed accelerated cut
raised froze restored suspended welcomed challenged published leaked adopted dropped
""")
_EN_ADV = _words("""
quietly sharply finally formally narrowly unanimously reluctantly repeatedly briefly
""")
_EN_PREP = _words("in across for with under after before during within among against beside")
_EN_SYL = _words("bran wick holm ford ley ton mar ash stead by dale mere thorp cot ham lin wood")

_ZH_PLACE = _words("""
北京市 上海市 天津市 重庆市 河北省 山西省 辽宁省 吉林省 江苏省 浙江省 安徽省 福建省 江西省
山东省 河南省 湖北省 湖南省 广东省 海南省 四川省 贵州省 云南省 陕西省 甘肃省 青海省
""")
_ZH_NOUN = _words("""
教育 学校 学生 教师 课程 课堂 考试 招生 高校 大学 中学 小学 幼儿园 职业 技能 培训 科研
创新 改革 质量 公平 资源 平台 体育 美育 劳动 心理 健康 安全 食堂 宿舍 图书馆 实验室 教材
作业 阅读 写作 数学 语文 英语 物理 化学 生物 历史 地理 艺术 音乐 美术 编程 乡村 城市 社区
家庭 家长 校长 辅导员 专业 学科 学位 研究生 本科 毕业生 就业 实习 企业 项目 计划 方案 政策
文件 会议 活动 比赛 奖学金 资助 补贴 经费 标准 规范 制度 机制 体系 服务 需求 目标 任务
措施 成效 经验 问题 挑战 未来 教研 师资 队伍 基地 园区 联盟 集团 试点 示范 名单 指南 清单
课后 假期 暑期 寒假 开学 毕业 升学 学业 负担 素养 能力 品德 传统 文化 科学 技术 工程
""")
_ZH_VERB = _words("""
推进 加强 完善 落实 开展 组织 实施 提升 优化 促进 支持 鼓励 引导 探索 建立 健全 推动
深化 扩大 提高 规范 部署 启动 发布 印发 召开 举办 评估 检查 总结 保障 统筹 衔接 培育
""")
_ZH_ADV = _words("进一步 全面 持续 积极 稳步 切实 着力 扎实 有序 大力")
_ZH_NAME = _words("张 王 李 赵 刘 陈 杨 黄 周 吴")


def _place(rng: random.Random) -> str:
    return "".join(rng.choice(_EN_SYL) for _ in range(2)).capitalize()


def _en_sentence(rng: random.Random) -> str:
    words = [rng.choice(_EN_DET), rng.choice(_EN_ADJ), rng.choice(_EN_NOUN)]
    if rng.random() < 0.3:
        words += ["in", _place(rng)]
    if rng.random() < 0.3:
        words.append(rng.choice(_EN_ADV))
    words += [rng.choice(_EN_VERB), rng.choice(_EN_DET), rng.choice(_EN_ADJ), rng.choice(_EN_NOUN)]
    words += [rng.choice(_EN_PREP), rng.choice(_EN_DET), rng.choice(_EN_NOUN)]
    if rng.random() < 0.2:
        words += [f"by {rng.randint(2, 95)} percent"]
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


def _zh_sentence(rng: random.Random) -> str:
    parts = [rng.choice(_ZH_PLACE)] if rng.random() < 0.3 else []
    parts += [rng.choice(_ZH_NOUN), rng.choice(_ZH_NOUN)]
    if rng.random() < 0.5:
        parts.append(rng.choice(_ZH_ADV))
    parts += [rng.choice(_ZH_VERB), rng.choice(_ZH_NOUN), "的" * (rng.random() < 0.4)]
    parts += [rng.choice(_ZH_NOUN), rng.choice(_ZH_NOUN)]
    if rng.random() < 0.5:
        parts += ["，", rng.choice(_ZH_VERB), rng.choice(_ZH_NOUN), rng.choice(_ZH_NOUN)]
    if rng.random() < 0.15:
        parts.append(f"，共有{rng.randint(3, 900)}所学校参与")
    return "".join(parts) + "。"


def _title(rng: random.Random, zh: bool) -> str:
    if zh:
        return (
            rng.choice(_ZH_PLACE) * (rng.random() < 0.5)
            + rng.choice(_ZH_VERB)
            + rng.choice(_ZH_NOUN)
            + rng.choice(_ZH_NOUN)
            + rng.choice(_ZH_NOUN)
            + rng.choice(["方案", "工作", "行动", "试点", "会议", "通知"])
        )
    return " ".join(
        [
            _place(rng),
            rng.choice(_EN_NOUN),
            rng.choice(_EN_VERB),
            rng.choice(_EN_ADJ),
            rng.choice(_EN_NOUN),
            rng.choice(_EN_NOUN),
        ]
    )


def _paragraph(rng: random.Random, zh: bool, site: str) -> str:
    """One <p> of 3-6 sentences, sometimes with a link (relative or absolute) or emphasis."""
    sentences = [(_zh_sentence if zh else _en_sentence)(rng) for _ in range(rng.randint(3, 6))]
    sentences = [html.escape(s, quote=False) for s in sentences]
    roll = rng.random()
    if roll < 0.25:
        href = rng.choice(
            [
                f"/topics/{rng.randrange(500)}",
                f"../reports/{rng.randrange(9000)}.pdf",
                f"{site}news/{rng.randrange(99999)}.html",
                f"https://partner{rng.randrange(40)}.example/item?id={rng.randrange(10**6)}",
            ]
        )
        label = "相关报道" if zh else "the full report"
        sentences.append(f'<a href="{html.escape(href)}">{label}</a>' + ("。" if zh else "."))
    elif roll < 0.4:
        sentences[0] = f"<strong>{sentences[0]}</strong>"
    return "<p>" + ("" if zh else " ").join(sentences) + "</p>"


def _body(
    rng: random.Random, zh: bool, site: str, budget: int, encode: Callable[[str], int]
) -> str:
    """Article HTML of about `budget` encoded bytes: paragraphs, images, headings, lists."""
    parts: list[str] = []
    if rng.random() < 0.6:
        alt = "现场图片" if zh else "Pupils in a classroom"
        parts.append(
            f'<p><img src="images/{rng.randrange(10**5)}.jpg" alt="{alt}" '
            f'width="640" height="360"></p>'
        )
    if rng.random() < 0.05:
        parts.append("<script>track('view')</script>")
    size = 0
    while size < budget:
        roll = rng.random()
        if roll < 0.08:
            parts.append(f"<h2>{html.escape(_title(rng, zh))}</h2>")
        elif roll < 0.14:
            items = "".join(
                f"<li>{html.escape((_zh_sentence if zh else _en_sentence)(rng))}</li>"
                for _ in range(rng.randint(2, 4))
            )
            parts.append(f"<ul>{items}</ul>")
        elif roll < 0.18:
            parts.append(f"<blockquote>{_paragraph(rng, zh, site)}</blockquote>")
        elif roll < 0.22:
            parts.append(f'<p><img src="/static/photos/{rng.randrange(10**5)}.png" alt=""></p>')
        else:
            parts.append(_paragraph(rng, zh, site))
        size = encode("".join(parts))
    name = rng.choice(_ZH_NAME) + rng.choice(["明", "华", "伟", "芳", "静"]) if zh else _place(rng)
    parts.append(f"<p>{'责任编辑：' if zh else 'Editor: '}{name}</p>")
    return "".join(parts)


# --- feeds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Article:
    """One generated entry, before it is written as RSS or Atom XML."""

    title: str
    link: str
    guid: str
    published: datetime
    author: str
    tags: tuple[str, ...]
    summary: str
    content: str


@dataclass(frozen=True)
class Doc:
    """One served feed: its bytes and validators."""

    body: bytes
    content_type: str
    etag: str
    last_modified: str
    entries: int


def _rss_size(text: str) -> int:
    return len(text.encode())


def _atom_size(text: str) -> int:
    return len(html.escape(text, quote=False).encode())


def _summary(content: str, zh: bool) -> str:
    """The first words of the body as plain text (the feed's <description>/<summary>)."""
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", content)).split())
    return text[: 120 if zh else 280]


def _wire_story(seed: int, number: int, anchor: datetime) -> Article:
    """A story that several feeds reprint (with their own link, GUID and title affix)."""
    rng = random.Random(f"{seed}:wire:{number}")
    zh = rng.random() < 0.5
    budget = FEED_BYTES // ENTRIES - 900
    content = _body(rng, zh, "https://wire.example/", budget, _rss_size)
    when = anchor - timedelta(minutes=rng.randrange(10 * 24 * 60))
    return Article(_title(rng, zh), "", "", when, "", (), _summary(content, zh), content)


def _articles(
    seed: int, index: int, total: int, anchor: datetime
) -> tuple[str, str, list[Article]]:
    """Site URL, site name and the entries of feed `index` (newest first)."""
    rng = random.Random(f"{seed}:feed:{index}")
    lang = ("en", "zh", "mixed")[index % 3]
    site = f"https://site{index:04d}.example/"
    zh_site = lang == "zh" or (lang == "mixed" and rng.random() < 0.5)
    name = (
        f"{rng.choice(_ZH_PLACE)}教育信息网{index}"
        if zh_site
        else f"The {_place(rng)} Education Post {index}"
    )
    encode = _rss_size if index % 2 == 0 else _atom_size
    wire_count = max(1, total * 2 // 3)
    reprints = {5, 17} if total > 1 else set()
    articles = []
    for k in range(ENTRIES):
        zh = lang == "zh" or (lang == "mixed" and rng.random() < 0.5)
        slug = f"{anchor:%Y/%m}/{index}-{k}-{rng.randrange(10**6)}.html"
        link = f"{site}news/{slug}"
        if rng.random() < 0.1:
            link = f"/news/{slug}"  # a relative link, resolved against the feed URL
        elif rng.random() < 0.1:
            link += "?utm_source=rss&utm_medium=feed"
        guid = link if rng.random() < 0.5 else f"{site}?p={index * 1000 + k}"
        budget = int(FEED_BYTES / ENTRIES * rng.uniform(0.8, 1.2)) - (1100 if zh else 900)
        author = (rng.choice(_ZH_NAME) + "记者") if zh else f"{_place(rng)} Desk"
        tags = tuple(rng.sample(_ZH_NOUN if zh else _EN_NOUN, rng.randint(1, 3)))
        if k in reprints:
            wire = _wire_story(seed, rng.randrange(wire_count), anchor)
            affix = rng.choice([f"【{name}】{wire.title}", f"{wire.title} - {name}", wire.title])
            when = wire.published + timedelta(minutes=rng.randrange(240))
            articles.append(
                Article(
                    affix, link, guid, min(when, anchor), author, tags, wire.summary, wire.content
                )
            )
            continue
        content = _body(rng, zh, site, budget, encode)
        when = anchor - timedelta(minutes=rng.randrange(10 * 24 * 60))
        articles.append(
            Article(_title(rng, zh), link, guid, when, author, tags, _summary(content, zh), content)
        )
    articles.sort(key=lambda a: a.published, reverse=True)
    return site, name, articles


def _rss(index: int, site: str, name: str, articles: Sequence[Article]) -> str:
    naive_dates = index % 10 == 4  # some Chinese sites print local time without a zone
    shanghai = ZoneInfo("Asia/Shanghai")
    items = []
    for a in articles:
        date = (
            a.published.astimezone(shanghai).strftime("%Y-%m-%d %H:%M:%S")
            if naive_dates
            else format_datetime(a.published)
        )
        permalink = "true" if a.guid == a.link else "false"
        tags = "".join(f"<category>{html.escape(t)}</category>" for t in a.tags)
        items.append(
            f"<item><title>{html.escape(a.title)}</title><link>{html.escape(a.link)}</link>"
            f'<guid isPermaLink="{permalink}">{html.escape(a.guid)}</guid><pubDate>{date}</pubDate>'
            f"<dc:creator>{html.escape(a.author)}</dc:creator>{tags}"
            f"<description>{html.escape(a.summary)}</description>"
            f"<content:encoded><![CDATA[{a.content}]]></content:encoded></item>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>'
        f"<title>{html.escape(name)}</title><link>{site}</link>"
        f"<description>{html.escape(name)}</description><ttl>30</ttl>\n{''.join(items)}"
        "</channel></rss>\n"
    )


def _atom(index: int, site: str, name: str, articles: Sequence[Article]) -> str:
    entries = []
    for k, a in enumerate(articles):
        base = f' xml:base="{site}news/"' if k % 4 == 0 else ""
        tags = "".join(f'<category term="{html.escape(t)}"/>' for t in a.tags)
        stamp = a.published.isoformat().replace("+00:00", "Z")
        entries.append(
            f'<entry{base}><title type="html">{html.escape(a.title)}</title>'
            f'<link rel="alternate" type="text/html" href="{html.escape(a.link)}"/>'
            f"<id>{html.escape(a.guid)}</id><published>{stamp}</published><updated>{stamp}</updated>"
            f"<author><name>{html.escape(a.author)}</name></author>{tags}"
            f'<summary type="html">{html.escape(a.summary, quote=False)}</summary>'
            f'<content type="html">{html.escape(a.content, quote=False)}</content></entry>\n'
        )
    updated = max(a.published for a in articles).isoformat().replace("+00:00", "Z")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{html.escape(name)}</title><id>{site}</id><updated>{updated}</updated>"
        f'<link rel="alternate" href="{site}"/>\n{"".join(entries)}</feed>\n'
    )


def generate(count: int, seed: int, anchor: datetime) -> dict[str, Doc]:
    """`count` feeds by URL path: even ones RSS 2.0, odd ones Atom 1.0."""
    docs = {}
    for index in range(count):
        site, name, articles = _articles(seed, index, count, anchor)
        rss = index % 2 == 0
        text = (_rss if rss else _atom)(index, site, name, articles)
        body = text.encode()
        newest = max(a.published for a in articles)
        docs[f"/feeds/{index:04d}.{'rss' if rss else 'atom'}"] = Doc(
            body=body,
            content_type=("application/rss+xml" if rss else "application/atom+xml")
            + "; charset=utf-8",
            etag='"' + hashlib.sha1(body).hexdigest() + '"',
            last_modified=format_datetime(newest.astimezone(UTC), usegmt=True),
            entries=len(articles),
        )
    return docs


# --- server --------------------------------------------------------------------------------


class FeedServer(ThreadingHTTPServer):
    """Serves `docs` with conditional GET; counts the answers by status."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, docs: dict[str, Doc]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.docs = docs
        self.counts: dict[int, int] = {}
        self.lock = threading.Lock()

    def count(self, status: int) -> None:
        with self.lock:
            self.counts[status] = self.counts.get(status, 0) + 1

    def take_counts(self) -> dict[int, int]:
        """The counts since the last call."""
        with self.lock:
            counts, self.counts = self.counts, {}
        return counts

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real feed servers do
    server: FeedServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        doc = self.server.docs.get(self.path.split("?", 1)[0])
        if doc is None:
            self._reply(404, b"not found", "text/plain")
            return
        if _not_modified(
            doc, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        ):
            self.send_response(304)
            self.send_header("ETag", doc.etag)
            self.send_header("Last-Modified", doc.last_modified)
            self.end_headers()
            self.server.count(304)
            return
        self._reply(200, doc.body, doc.content_type, doc)

    def _reply(self, status: int, body: bytes, content_type: str, doc: Doc | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if doc is not None:
            self.send_header("ETag", doc.etag)
            self.send_header("Last-Modified", doc.last_modified)
        self.end_headers()
        self.wfile.write(body)
        self.server.count(status)


def _not_modified(doc: Doc, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """RFC 9110: If-None-Match wins when present (weak comparison); else If-Modified-Since."""
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or doc.etag in tags
    if if_modified_since:
        try:
            return parsedate_to_datetime(doc.last_modified) <= parsedate_to_datetime(
                if_modified_since
            )
        except (TypeError, ValueError):
            return False
    return False


@contextmanager
def serving(docs: dict[str, Doc]) -> Iterator[FeedServer]:
    """The feed server in a background thread for the duration of the block."""
    server = FeedServer(docs)
    thread = threading.Thread(target=server.serve_forever, name="feed-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# --- measuring -----------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _memory(pid: int) -> int:
    """PSS of one process in bytes (shared pages split among sharers), else RSS."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _children(pid: int) -> list[int] | None:
    """Direct children from /proc/PID/task/*/children (cheap); None where the kernel has no
    such file, and the caller scans all of /proc instead (~5 ms a time)."""
    try:
        tasks = list(os.scandir(f"/proc/{pid}/task"))
        return [
            int(child)
            for task in tasks
            for child in Path(task.path, "children").read_text().split()
        ]
    except FileNotFoundError:
        return [] if not Path(f"/proc/{pid}").exists() else None
    except OSError:
        return []


def tree_memory(pid: int) -> int | None:
    """Memory of a process and all its descendants now (Linux /proc, else psutil, else None)."""
    if Path("/proc/self/stat").exists():
        kids: dict[int, list[int]] | None = None
        todo, total = [pid], 0
        while todo:
            current = todo.pop()
            total += _memory(current)
            children = _children(current)
            if children is None:
                kids = kids if kids is not None else _children_map()
                children = kids.get(current, [])
            todo.extend(children)
        return total
    try:
        import psutil
    except ImportError:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return sum(int(p.memory_info().rss) for p in procs)
    except psutil.Error:
        return None


class Sampler(threading.Thread):
    """Samples `tree_memory(pid)` until stopped; keeps the peak.

    Every 0.2 s: a sample costs a few ms of CPU (PSS makes the kernel walk each process's
    page tables), and sampling every 50 ms with a scan of all of /proc took ~15% of a core
    from the run being measured, more from a tool that keeps both cores busy than from one
    that keeps one busy. Memory grows smoothly here, so the peak is not missed.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        super().__init__(name="memory-sampler", daemon=True)
        self.pid, self.interval = pid, interval
        self.peak: int | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            value = tree_memory(self.pid)
            if value is not None and value > (self.peak or 0):
                self.peak = value
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@dataclass
class Measured:
    """One finished subprocess: wall time, exit code, peak memory in MB."""

    wall: float
    code: int
    maxrss_mb: float
    tree_mb: float | None
    cpu: float  # user + system seconds of the process and its waited-for children
    load: float  # 1-minute load average when the run started (others' work skews wall time)


def measure(
    cmd: Sequence[str], *, cwd: Path, stdout: Path, env: dict[str, str] | None = None
) -> Measured:
    """Run `cmd` to completion. Peak memory comes from this child's own rusage (`os.wait4`):
    `getrusage(RUSAGE_CHILDREN)` would be the max over every child run so far."""
    load = os.getloadavg()[0]
    with stdout.open("wb") as out, stdout.with_suffix(".err").open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=out, stderr=err, env=env)
        sampler = Sampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    tree = sampler.peak / 2**20 if sampler.peak is not None else None
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(wall, proc.returncode, usage.ru_maxrss * scale / 2**20, tree, cpu, load)


@dataclass
class Result:
    """One timed run of one tool in one phase."""

    size: int
    tool: str
    phase: str
    run: Measured
    entries_served: int  # entries in the feeds polled (200 or 304 alike)
    stored: int | None = None  # articles (ours) or entries (reader) in the database after the run
    statuses: dict[str, int] = field(default_factory=dict)
    http: dict[str, int] = field(default_factory=dict)
    inner: float | None = None  # reader: seconds inside the child for the timed calls

    @property
    def wall(self) -> float:
        return self.run.wall

    @property
    def feeds_per_s(self) -> float:
        return self.size / self.run.wall

    @property
    def entries_per_s(self) -> float:
        return self.entries_served / self.run.wall

    @property
    def peak_mb(self) -> float:
        """The larger of the biggest single process and the sampled tree total."""
        return max(self.run.maxrss_mb, self.run.tree_mb or 0.0)


# --- the two tools -------------------------------------------------------------------------


def write_config(folder: Path, urls: Sequence[str], per_host: int | None) -> Path:
    """An aggregator config for the run (format as tests/conftest.py::write_config)."""
    poll: dict[str, Any] = {"concurrency": WORKERS, "timeout": "20s"}
    if per_host is not None:
        poll["per_host"] = per_host
    data = {
        "database": "sqlite:///data/bench.db",
        "poll": poll,
        "output": {
            "title": "Bench News",
            "id": "urn:example:bench-news",
            "link": "http://127.0.0.1:8080/",
            "author": "Bench Desk",
        },
        "sources": [{"name": f"Feed {i:04d}", "url": url} for i, url in enumerate(urls)],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _http(server: FeedServer) -> dict[str, int]:
    return {str(k): v for k, v in sorted(server.take_counts().items())}


def run_aggregator(
    python: str, config: Path, phase: str, server: FeedServer, size: int, entries: int
) -> Result:
    """`aggregator poll` as a subprocess; statuses from its per-source lines."""
    folder = config.parent
    out = folder / f"poll-{phase}.out"
    cmd = [python, "-m", "aggregator.cli", "-c", str(config), "poll"]
    measured = measure(cmd, cwd=folder, stdout=out, env=_env())
    statuses: dict[str, int] = {}
    for line in out.read_text("utf-8").splitlines():
        for status, mark in (
            ("ok", "  ok new="),
            ("not_modified", "  not modified"),
            ("error", "  error: "),
        ):
            if mark in line:
                statuses[status] = statuses.get(status, 0) + 1
    stored = None
    db = folder / "data" / "bench.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            stored = int(conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0])
    return Result(size, "aggregator", phase, measured, entries, stored, statuses, _http(server))


def run_reader(
    python: str,
    folder: Path,
    urls_file: Path,
    phase: str,
    server: FeedServer,
    size: int,
    entries: int,
) -> Result:
    """This script's `--reader-child` as a subprocess, so its memory is its own."""
    script = str(Path(__file__).resolve())
    cmd = [python, script, "--reader-child", phase, str(folder / "reader.sqlite"), str(urls_file)]
    out = folder / f"reader-{phase}.out"
    measured = measure(cmd, cwd=folder, stdout=out, env=_env())
    lines = out.read_text("utf-8").strip().splitlines()
    info: dict[str, Any] = json.loads(lines[-1]) if lines and measured.code == 0 else {}
    statuses = {"error": int(info["broken"])} if info.get("broken") else {}
    return Result(
        size,
        "reader",
        phase,
        measured,
        entries,
        info.get("entries"),
        statuses,
        _http(server),
        info.get("seconds"),
    )


def reader_child(phase: str, db: str, urls_file: str) -> int:
    """In the child: cold = add every feed + update_feeds; warm = update_feeds again."""
    import reader

    started = time.perf_counter()
    rdr = reader.make_reader(db)
    if phase == "cold":
        for url in Path(urls_file).read_text().split():
            rdr.add_feed(url)
        rdr.update_feeds(workers=WORKERS)
    elif "scheduled" in inspect.signature(rdr.update_feeds).parameters:
        rdr.update_feeds(workers=WORKERS, scheduled=False)
    else:
        rdr.update_feeds(workers=WORKERS)
    seconds = time.perf_counter() - started
    broken = sum(1 for feed in rdr.get_feeds() if feed.last_exception)
    entries = rdr.get_entry_counts().total
    rdr.close()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "entries": entries,
                "broken": broken,
                "version": reader.__version__,
            }
        )
    )
    return 0


# --- driver --------------------------------------------------------------------------------


def bench_size(size: int, args: argparse.Namespace, base: Path) -> list[Result]:
    """Generate, serve and time both tools on `size` feeds; repeated `args.repeat` times."""
    anchor = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    started = time.perf_counter()
    docs = generate(size, args.seed, anchor)
    total = sum(len(d.body) for d in docs.values())
    entries = sum(d.entries for d in docs.values())
    print(
        f"N={size}: generated {size} feeds, {entries} entries, {total / size / 1000:.0f} KB "
        f"a feed on average, in {time.perf_counter() - started:.1f}s",
        flush=True,
    )
    results: list[Result] = []
    with serving(docs) as server:
        urls = [server.url(path) for path in docs]
        for rep in range(args.repeat):
            folder = base / f"n{size}-r{rep}"
            (folder / "agg").mkdir(parents=True)
            (folder / "reader").mkdir()
            config = write_config(folder / "agg", urls, args.per_host)
            urls_file = folder / "reader" / "urls.txt"
            urls_file.write_text("\n".join(urls) + "\n")
            tools = [t for t in ("aggregator", "reader") if t in args.tools]
            for tool in tools:
                for phase in ("cold", "warm"):
                    server.take_counts()
                    if tool == "aggregator":
                        result = run_aggregator(args.python, config, phase, server, size, entries)
                    else:
                        result = run_reader(
                            args.python, folder / "reader", urls_file, phase, server, size, entries
                        )
                    print(_row(result), flush=True)
                    if result.run.code != 0:
                        print(
                            f"  !! {tool} {phase} exited {result.run.code}: see {folder}",
                            flush=True,
                        )
                    results.append(result)
    return results


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _row(r: Result) -> str:
    http = "/".join(f"{r.http.get(s, 0)}" for s in ("200", "304"))
    statuses = ",".join(f"{k}={v}" for k, v in sorted(r.statuses.items())) or "-"
    inner = f"{r.inner:.2f}" if r.inner is not None else "-"
    stored = "-" if r.stored is None else str(r.stored)
    return (
        f"{r.size:>5} {r.tool:<10} {r.phase:<4} {r.wall:>7.2f} {r.run.cpu:>7.2f} {inner:>7} "
        f"{r.feeds_per_s:>7.1f} {r.entries_per_s:>9.0f} {_mb(r.run.maxrss_mb):>6} "
        f"{_mb(r.run.tree_mb):>7} {stored:>6} {http:>9} {r.run.load:>5.1f}  {statuses}"
    )


HEADER = (
    f"{'N':>5} {'tool':<10} {'run':<4} {'wall_s':>7} {'cpu_s':>7} {'inner_s':>7} {'feeds/s':>7} "
    f"{'entries/s':>9} {'rss_MB':>6} {'tree_MB':>7} {'stored':>6} {'200/304':>9} {'load':>5}  statuses"
)


def _median(results: list[Result]) -> Result:
    """The run with the median wall time (the lower middle one for an even count)."""
    ordered = sorted(results, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


def report(results: list[Result]) -> bool:
    """Print the table and our/reader ratios; True when every target is met."""
    keys = sorted(
        {(r.size, r.tool, r.phase) for r in results}, key=lambda k: (k[0], k[1], k[2] != "cold")
    )
    table = {k: _median([r for r in results if (r.size, r.tool, r.phase) == k]) for k in keys}
    print("\n" + HEADER)
    for r in table.values():
        print(_row(r))
    met = True
    print()
    for size in sorted({k[0] for k in keys}):
        for phase in ("cold", "warm"):
            ours, theirs = (
                table.get((size, "aggregator", phase)),
                table.get((size, "reader", phase)),
            )
            if ours is None:
                continue
            mem_ok = ours.peak_mb < TARGET_MB and ours.run.code == 0
            line = f"N={size:<5} {phase}: peak {ours.peak_mb:.1f} MB ({_verdict(mem_ok)} < {TARGET_MB:.0f})"
            met = met and mem_ok
            if theirs is not None:
                ratio = ours.wall / theirs.wall
                met = met and ratio <= TARGET_RATIO
                line += (
                    f"; wall ours/reader {ratio:.2f}x ({_verdict(ratio <= TARGET_RATIO)} <= {TARGET_RATIO}x)"
                    f"; cpu {ours.run.cpu / theirs.run.cpu:.2f}x"
                    f"; rss {ours.run.maxrss_mb / theirs.run.maxrss_mb:.2f}x"
                )
            print(line)
    return met


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def compile_package(python: str) -> None:
    """Byte-compile the aggregator package once, as `pip install` does for reader. An editable
    install under PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module from source
    in every timed run (~50 ms a run)."""
    where = subprocess.run(
        [python, "-c", "import aggregator, os; print(os.path.dirname(aggregator.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([python, "-m", "compileall", "-q", where], check=True)
    print(f"byte-compiled {where}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", default="200,1000", help="feed counts, comma separated (default 200,1000)"
    )
    parser.add_argument(
        "--seed", type=int, default=20240601, help="generator seed (default 20240601)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per size; the median is reported"
    )
    parser.add_argument("--tools", default="aggregator,reader", help="which tools to time")
    parser.add_argument(
        "--per-host",
        type=int,
        default=None,
        help="set poll.per_host (default: the aggregator's own default)",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for the subprocesses")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (configs, DBs, logs)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--serve",
        type=int,
        metavar="N",
        help="only generate and serve N feeds, write a config, wait for Ctrl-C",
    )
    parser.add_argument(
        "--reader-child", nargs=3, metavar=("PHASE", "DB", "URLS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.reader_child:
        return reader_child(*args.reader_child)
    args.tools = {t.strip() for t in args.tools.split(",")}
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    base = Path(tempfile.mkdtemp(prefix="aggregator-bench-"))
    if args.serve:
        return serve_only(args.serve, args, base)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; work folder {base}")
    if "aggregator" in args.tools:
        compile_package(args.python)
    print(HEADER, flush=True)
    results: list[Result] = []
    try:
        for size in sizes:
            results.extend(bench_size(size, args, base))
    finally:
        failed = any(r.run.code != 0 for r in results)
        if args.keep or failed:
            print(f"work folder kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    met = report(results)
    if args.json:
        rows = [
            {**asdict(r), "feeds_per_s": r.feeds_per_s, "entries_per_s": r.entries_per_s}
            for r in results
        ]
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if args.check and not met else 0


def serve_only(size: int, args: argparse.Namespace, base: Path) -> int:
    """Serve `size` feeds and write a config for them, for profiling `aggregator poll` by hand."""
    docs = generate(
        size, args.seed, datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    with serving(docs) as server:
        config = write_config(base, [server.url(p) for p in docs], args.per_host)
        (base / "urls.txt").write_text("\n".join(server.url(p) for p in docs) + "\n")
        print(f"serving {size} feeds; config: {config}; urls: {base / 'urls.txt'}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
