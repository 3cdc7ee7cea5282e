"""Issue: sources without feeds. HTML list pages and article pages, served from 127.0.0.1.

The fixture pages in tests/data/html are original text in the style of Chinese education
sites, stored in their real encodings (GBK, GB18030, Big5, UTF-8).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from aggregator.config import load_config
from aggregator.fetch.charset import charset_decision, decode_html
from aggregator.parse.article import extract_article, repair_title
from aggregator.parse.html import parse_list
from aggregator.service.http import health_document
from aggregator.store import open_store

from .conftest import DATA, run_cli, write_config

HTML = DATA / "html"
ATOM = "{http://www.w3.org/2005/Atom}"
SHANGHAI = ZoneInfo("Asia/Shanghai")
QINGLAN_LIST = "/qlzy/xwzx/xyxw.htm"
QINGLAN_ARTICLES = ("3345", "3338", "3331", "3327", "3320")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- helpers -------------------------------------------------------------------------------------


def fixture(name: str, port: int | None = None) -> bytes:
    body = (HTML / name).read_bytes()
    return body.replace(b"{{PORT}}", str(port).encode()) if port else body


def serve(
    httpserver: HTTPServer,
    path: str,
    name: str,
    content_type: str = "text/html",
    query_string: str | None = None,
) -> str:
    body = fixture(name, httpserver.port)
    httpserver.expect_request(path, query_string=query_string).respond_with_data(
        body, content_type=content_type
    )
    return httpserver.url_for(path) + (f"?{query_string}" if query_string else "")


def serve_qinglan(httpserver: HTTPServer) -> str:
    serve(httpserver, "/qlzy/xwzx/xyxw/2.htm", "qinglan_list_2.htm")
    return serve(httpserver, QINGLAN_LIST, "qinglan_list_1.htm")


def serve_qinglan_articles(httpserver: HTTPServer) -> None:
    for docid in QINGLAN_ARTICLES:
        serve(httpserver, f"/qlzy/info/1021/{docid}.htm", f"qinglan_article_{docid}.htm")


def serve_changing(httpserver: HTTPServer, path: str, body: bytes) -> dict[str, bytes]:
    """Serve `state["body"]` at `path`; the test changes it between polls."""
    state = {"body": body}
    httpserver.expect_request(path).respond_with_handler(
        lambda request: Response(state["body"], content_type="text/html")
    )
    return state


def qinglan(url: str, **extra: Any) -> dict[str, Any]:
    selectors = {
        "item": "ul.news-list li",
        "title": "a",
        "link": "a@href",
        "date": "span.time",
        "next_page": "span.p_next a@href",
    }
    selectors.update(extra.pop("selectors", {}))
    return {
        "name": "青岚职院",
        "url": url,
        "type": "html",
        "timezone": "Asia/Shanghai",
        "selectors": selectors,
        **extra,
    }


def content_selectors() -> dict[str, Any]:
    return {"content": "div.v_news_content", "remove": [".share"], "attachments": "ul.attach a"}


def poll(config: Path) -> str:
    result = run_cli("-c", str(config), "poll")
    assert result.code == 0, result.err
    return result.out


def atom_entries(tmp_path: Path) -> dict[str, etree._Element]:
    doc = etree.fromstring((tmp_path / "public" / "feed.atom").read_bytes())
    return {e.findtext(f"{ATOM}title"): e for e in doc.findall(f"{ATOM}entry")}


def alternate(entry: etree._Element) -> str:
    return next(
        link.get("href")
        for link in entry.findall(f"{ATOM}link")
        if link.get("rel", "alternate") == "alternate"
    )


def enclosures(entry: etree._Element) -> dict[str, tuple[str, str]]:
    return {
        link.get("href"): (link.get("type"), link.get("title"))
        for link in entry.findall(f"{ATOM}link[@rel='enclosure']")
    }


def tags(entry: etree._Element) -> set[str]:
    return {c.get("term") for c in entry.findall(f"{ATOM}category")}


def paths(httpserver: HTTPServer) -> list[str]:
    return [request.path for request, _ in httpserver.log]


def rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "data" / "test.db") as conn:
        return conn.execute(sql).fetchall()


def utc(local: str) -> str:
    """'2021-05-08 00:00' in Asia/Shanghai -> the UTC value Atom shows."""
    naive = datetime.fromisoformat(local)
    return naive.replace(tzinfo=SHANGHAI).astimezone(UTC).isoformat()


def inferred(month: int, day: int) -> str:
    """`[05-08]` has no year: the latest such date not after today, in the source's zone."""
    today = datetime.now(SHANGHAI).date()
    year = today.year if (month, day) <= (today.month, today.day) else today.year - 1
    return utc(f"{year}-{month:02d}-{day:02d} 00:00")


def source_row(config: Path, name: str) -> dict[str, Any]:
    listing = json.loads(run_cli("-c", str(config), "sources", "--json").out)
    return next(r for r in listing if r["name"] == name)


def health_row(config: Path, name: str) -> dict[str, Any]:
    loaded = load_config(config)
    document = health_document(loaded, open_store(loaded.database), datetime.now(UTC))
    return next(s for s in document["sources"] if s["name"] == name)


# --- list pages ---------------------------------------------------------------------------------


def test_gbk_list_pages_relative_links_chinese_dates_and_pagination(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    url = serve_qinglan(httpserver)
    config = write_config(tmp_path, [qinglan(url, max_pages=3)])
    assert "青岚职院  ok new=8 updated=0" in poll(config)
    entries = atom_entries(tmp_path)
    base = httpserver.url_for("/qlzy/info/1021/")
    expected = {
        "青岚职院召开2021年春季学期教学工作推进会": ("3345", "2021-05-08"),
        # the list cuts this title short; the title attribute has it whole
        "我院学子在全省职业院校技能大赛中斩获一等奖三项": ("3338", "2021-05-06"),
        "学院开展“青春心向党 建功新时代”五四主题团日活动": ("3331", "2021-05-04"),
        "智能制造学院与本地汽车零部件企业共建实训基地": ("3327", "2021-04-29"),
        "关于开展2021年学生资助政策宣传月活动的通知": ("3320", "2021-04-27"),
        # page 2, whose links are relative to /qlzy/xwzx/xyxw/2.htm
        "图书馆举办“书香校园”读书月启动仪式": ("3312", "2021-04-23"),
        "学院召开2021年度安全稳定工作会议": ("3306", "2021-04-20"),
        "护理系学生赴社区开展健康义诊志愿服务": ("3299", "2021-04-16"),
    }
    assert set(expected) <= set(entries)
    for title, (docid, day) in expected.items():
        entry = entries[title]
        assert alternate(entry) == f"{base}{docid}.htm"
        assert entry.findtext(f"{ATOM}published") == utc(f"{day} 00:00")
    assert entries["青岚职院召开2021年春季学期教学工作推进会"].findtext(f"{ATOM}published") == (
        "2021-05-07T16:00:00+00:00"
    )
    # page 2 has no next link: the poll stops there although max_pages is 3
    assert paths(httpserver) == [QINGLAN_LIST, "/qlzy/xwzx/xyxw/2.htm"]


def test_max_pages_limits_pagination(tmp_path: Path, httpserver: HTTPServer) -> None:
    url = serve_qinglan(httpserver)
    config = write_config(tmp_path, [qinglan(url)])  # max_pages defaults to 1
    assert "ok new=5 updated=0" in poll(config)
    assert paths(httpserver) == [QINGLAN_LIST]


def test_utf8_provincial_page_with_bracket_dates_cleanup_filters_and_rules(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    url = serve(httpserver, "/yunze/jyzx/index.html", "yunze_list.html")
    selectors = {"item": "ul.list_ul li", "title": "a", "link": "a@href", "date": "span.date"}
    base = {"url": url, "type": "html", "selectors": selectors, "title_cleanup": r"^【[^】]*】"}
    sources = [
        {"name": "云泽教育厅", "tags": ["省厅"], "exclude": "一图读懂", **base},
        {"name": "只看招生", "include": "招生|劳动教育", **base},
    ]
    rules = [
        {"tag": "招生考试", "match": "招生|考试"},
        {"tag": "劳动教育", "match": "劳动教育"},
        {"drop": True, "match": "招聘"},
    ]
    config = write_config(tmp_path, sources, rules=rules)
    out = poll(config)
    assert "云泽教育厅  ok new=4 updated=0" in out
    assert "只看招生   ok new=2 updated=0" in out
    entries = atom_entries(tmp_path)
    site = httpserver.url_for("/yunze/jyzx/")
    expected = {
        # title attribute (the text is cut), 【通知】 removed by title_cleanup
        "云泽省教育厅关于做好2021年普通高校招生考试安全工作的通知": (
            f"{site}202105/t20210508_5501.html",
            inferred(5, 8),
            {"省厅", "招生考试"},
        ),
        "全省中小学劳动教育现场推进会在澜州召开": (
            f"{site}202105/t20210507_5496.html",
            inferred(5, 7),
            {"省厅", "劳动教育"},
        ),
        "高校毕业生就业创业工作视频会议召开": (
            f"http://localhost:{httpserver.port}/moe/202105/t20210506_9912.html",
            inferred(5, 6),
            {"省厅"},
        ),
        "我省启动第二批乡村温馨校园建设": (
            f"{site}202104/t20210430_5470.html",
            inferred(4, 30),
            {"省厅"},
        ),
    }
    for title, (link, published, expected_tags) in expected.items():
        entry = entries[title]
        assert alternate(entry) == link
        assert entry.findtext(f"{ATOM}published") == published
        assert tags(entry) == expected_tags
    titles = {title for (title,) in rows(tmp_path, "select title from articles")}
    assert not any("招聘" in t for t in titles), "the drop rule removes the job advert"
    assert not any("一图读懂" in t for t in titles), "exclude removes the infographic"
    assert not any(t.startswith("【") for t in titles)
    included = rows(tmp_path, "select title from articles where source = '只看招生' order by title")
    assert [t for (t,) in included] == [
        "云泽省教育厅关于做好2021年普通高校招生考试安全工作的通知",
        "全省中小学劳动教育现场推进会在澜州召开",
    ]


def test_table_layout_declaring_gb2312_with_gb18030_only_characters(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    url = serve(httpserver, "/songxi/tzgg.asp", "songxi_table.html")
    source = {
        "name": "松溪师院",
        "url": url,
        "type": "html",
        "selectors": {
            "item": "table.listtable tr:not(.head)",
            "title": "td.t a",
            "link": "td.t a",
            "date": "td.d",
        },
    }
    config = write_config(tmp_path, [source])
    started = datetime.now(UTC).replace(microsecond=0)
    out = poll(config)
    assert "松溪师院  ok new=6 updated=0 [warning: 1 item(s) without a parsed date]" in out
    entries = atom_entries(tmp_path)
    show = httpserver.url_for("/songxi/show.asp")
    expected = {
        "关于表彰2020年度“王堃励志奖学金”获得者的决定": ("2286", "2021-05-07 00:00"),  # 堃: GBK
        "材料学院“镕铸匠心”冶金实践周开幕": ("2281", "2021-05-06 00:00"),  # 镕: GBK
        "历史系举办“南汉刘䶮与岭南开发”学术讲座": ("2279", "2021-05-05 00:00"),  # 䶮: GB18030
        "古文字研究中心发布“𠀀”等生僻字整理成果": ("2275", "2021-04-30 15:30"),  # 4-byte
        "2021年上半年大学英语四、六级考试报名通知": ("2270", "2021-04-26 00:00"),
    }
    for title, (docid, local) in expected.items():
        assert alternate(entries[title]) == f"{show}?id={docid}"
        assert entries[title].findtext(f"{ATOM}published") == utc(local)
    # a pinned row without a date is dated when first seen
    pinned = entries["[置顶]松溪师范学院2021年本科招生章程"]
    assert datetime.fromisoformat(pinned.findtext(f"{ATOM}published")) >= started
    assert not any("\ufffd" in title for title in entries)


def test_big5_page(tmp_path: Path, httpserver: HTTPServer) -> None:
    url = serve(httpserver, "/beiling/news.php", "beiling_big5.html", "text/html; charset=big5")
    source = {
        "name": "北嶺科大",
        "url": url,
        "type": "html",
        "timezone": "Asia/Taipei",
        "selectors": {"item": "div.newsbox dd", "title": "a", "link": "a", "date": "em"},
    }
    config = write_config(tmp_path, [source])
    assert "北嶺科大  ok new=3 updated=0" in poll(config)
    entries = atom_entries(tmp_path)
    detail = httpserver.url_for("/beiling/news_detail.php")
    assert alternate(entries["本校榮獲教育部「大學社會責任實踐計畫」補助"]) == f"{detail}?id=812"
    assert alternate(entries["資訊工程學系舉辦人工智慧應用競賽頒獎典禮"]) == f"{detail}?id=809"
    published = entries["圖書館延長期中考試期間開放時間公告"].findtext(f"{ATOM}published")
    assert published == "2021-04-29T16:00:00+00:00"  # Asia/Taipei is +08:00 too


@pytest.mark.parametrize(
    ("name", "content_type", "title"),
    [
        # <meta> says gb2312, the bytes are UTF-8 (a template that was never updated)
        ("lanzhou_mislabeled.html", "text/html", "澜州师专举行第十五届校园科技文化艺术节开幕式"),
        # the server says gbk, the bytes are Big5 (they decode as GBK too, into nonsense)
        ("beiling_big5.html", "text/html; charset=gbk", "圖書館延長期中考試期間開放時間公告"),
        # the server says utf-8 for everything, the page is GBK
        (
            "qinglan_list_1.htm",
            "text/html; charset=utf-8",
            "关于开展2021年学生资助政策宣传月活动的通知",
        ),
    ],
)
def test_a_wrongly_declared_charset_still_decodes(
    tmp_path: Path, httpserver: HTTPServer, name: str, content_type: str, title: str
) -> None:
    url = serve(httpserver, "/list", name, content_type)
    source = {
        "name": "mislabeled",
        "url": url,
        "type": "html",
        "selectors": {"item": "li, dd", "title": "a", "link": "a@href"},
    }
    config = write_config(tmp_path, [source])
    assert "mislabeled  ok new=" in poll(config)
    assert title in atom_entries(tmp_path)


CHARSET_CASES = {
    "meta gbk": (fixture("qinglan_list_1.htm"), None, "gb18030", "declared: <meta> says gbk"),
    "meta gb2312, GB18030-only characters": (
        fixture("songxi_table.html"),
        "text/html",
        "gb18030",
        "declared: <meta> says gb2312",
    ),
    "header big5": (
        fixture("beiling_big5.html"),
        "text/html; charset=BIG5",
        "big5hkscs",
        "declared: the HTTP header says BIG5",
    ),
    "Big5 bytes, header says gb2312": (
        fixture("beiling_big5.html"),
        "text/html; charset=gb2312",
        "big5hkscs",
        "detected, although the HTTP header says gb2312",
    ),
    "UTF-8 bytes, meta says gb2312 (does not decode)": (
        fixture("lanzhou_mislabeled.html"),
        None,
        "utf-8",
        "valid UTF-8, although <meta> says gb2312",
    ),
    "UTF-8 bytes, header says gbk (decodes, into nonsense)": (
        "<p>中文</p>".encode(),
        "text/html; charset=gbk",
        "utf-8",
        "UTF-8 bytes, although the HTTP header says gbk",
    ),
    "header utf-8 fails, meta utf-8 holds": (
        fixture("yunze_list.html"),
        "text/html; charset=gbk",
        "utf-8",
        "declared: <meta> says utf-8",
    ),
    "Western header, meta gbk": (
        fixture("qinglan_list_1.htm"),
        "text/html; charset=iso-8859-1",
        "gb18030",
        "declared: <meta> says gbk",
    ),
    "BOM": (b"\xef\xbb\xbf<p>\xe4\xb8\xad\xe6\x96\x87</p>", None, "utf-8-sig", "byte order mark"),
    "XML declaration": (
        '<?xml version="1.0" encoding="gbk"?><p>学院</p>'.encode("gbk"),
        None,
        "gb18030",
        "declared: the XML declaration says gbk",
    ),
    "nothing declared": (
        "<p>青岚职业技术学院新闻中心通知公告</p>".encode("gbk"),
        None,
        "gb18030",
        "detected",
    ),
    "header utf-8 lies, nothing else": (
        "<p>青岚职业技术学院新闻中心通知公告</p>".encode("gbk"),
        "text/html; charset=utf-8",
        "gb18030",
        "detected, although the HTTP header says utf-8",
    ),
}


@pytest.mark.parametrize("case", list(CHARSET_CASES))
def test_charset_decision(case: str) -> None:
    body, content_type, codec, how = CHARSET_CASES[case]
    assert charset_decision(body, content_type) == (codec, how)
    decoded, used = decode_html(body, content_type)
    assert used == codec and "\ufffd" not in decoded
    assert re.search("[\u4e00-\u9fff]", decoded)


def test_titles_are_text_even_with_angle_brackets(tmp_path: Path, httpserver: HTTPServer) -> None:
    page = (
        "<html><body><ul>"
        '<li><a href="/n/1.html">关于印发&lt;实验室安全手册&gt;的通知 &amp; 附表</a>'
        "<span>2021-05-08</span><p>摘要：a&lt;b 的说明</p></li>"
        "</ul></body></html>"
    )
    httpserver.expect_request("/list").respond_with_data(page, content_type="text/html")
    source = {
        "name": "s",
        "url": httpserver.url_for("/list"),
        "type": "html",
        "selectors": {"item": "li", "title": "a", "link": "a", "date": "span", "summary": "p"},
    }
    config = write_config(tmp_path, [source])
    poll(config)
    entry = atom_entries(tmp_path)["关于印发<实验室安全手册>的通知 & 附表"]
    assert entry.findtext(f"{ATOM}summary") == "摘要：a<b 的说明"


# --- article pages ------------------------------------------------------------------------------


def test_article_pages_give_content_and_attachments_and_are_fetched_once(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_qinglan_articles(httpserver)
    state = serve_changing(httpserver, QINGLAN_LIST, fixture("qinglan_list_1.htm"))
    url = httpserver.url_for(QINGLAN_LIST)
    config = write_config(tmp_path, [qinglan(url, selectors=content_selectors())])
    out = poll(config)
    assert "青岚职院  ok new=5 updated=0" in out
    assert "content selector matched nothing on 1 article page(s)" in out  # 3327: new template
    entries = atom_entries(tmp_path)
    root = httpserver.url_for("/qlzy/")

    meeting = entries["青岚职院召开2021年春季学期教学工作推进会"]
    content = meeting.findtext(f"{ATOM}content")
    assert "5月7日下午，学院在行政楼第一会议室召开2021年春季学期教学工作推进会" in content
    assert f'src="{root}__local/A/3B/91/meeting_0507.jpg"' in content  # relative made absolute
    assert "<script" not in content and "trackView" not in content
    assert "text-indent" not in content  # <style> dropped
    assert "分享到" not in content  # removed by `remove: [.share]`
    assert "网站首页" not in content and "版权所有" not in content  # only the content element
    assert enclosures(meeting) == {
        f"{root}docs/2021/jxjc_report.pdf": ("application/pdf", "期中教学检查情况通报.pdf"),
        f"{root}docs/2021/kcsz_list.docx": (DOCX, "课程思政示范课程名单.docx"),
    }

    # the VSB attachment list sits outside the content and links to download.jsp?...
    awards = entries["我院学子在全省职业院校技能大赛中斩获一等奖三项"]
    download = httpserver.url_for(
        "/system/_content/download.jsp?urltype=news.DownloadAttachUrl&owner=1700000001&wbfileid=5521"
    )
    assert enclosures(awards) == {download: (XLSX, "获奖名单.xlsx")}
    assert "一等奖3项、二等奖4项" in awards.findtext(f"{ATOM}content")

    notice = entries["关于开展2021年学生资助政策宣传月活动的通知"]
    assert sorted(t for t, _ in enclosures(notice).values()) == sorted(
        [
            "application/msword",
            "application/wps-office.wps",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/ofd",
            "application/zip",
            "application/vnd.rar",
        ]
    )
    # the content selector found nothing on the redesigned article: the list fields stay
    plant = entries["智能制造学院与本地汽车零部件企业共建实训基地"]
    assert plant.find(f"{ATOM}content") is None
    assert alternate(plant) == f"{root}info/1021/3327.htm"

    article_paths = [p for p in paths(httpserver) if "/info/" in p]
    assert sorted(article_paths) == sorted(f"/qlzy/info/1021/{d}.htm" for d in QINGLAN_ARTICLES)

    # Next poll: one new item on the list. Only its page is fetched (it fails: 404), the known
    # ones are not fetched again, and their stored bodies are kept, not blanked.
    new_item = (
        '<li><a href="../info/1021/3350.htm">学院举行新版官网上线仪式</a>'
        '<span class="time">2021年05月10日</span></li>\n'
    ).encode("gbk")
    first = b'<li id="line_u8_0">'
    state["body"] = state["body"].replace(first, new_item + first)
    httpserver.expect_request("/qlzy/info/1021/3350.htm").respond_with_data("gone", status=404)
    httpserver.log.clear()
    out = poll(config)
    assert "青岚职院  ok new=1 updated=0" in out
    assert "1 article page(s) could not be fetched (HTTP 404" in out
    assert [p for p in paths(httpserver) if "/info/" in p] == ["/qlzy/info/1021/3350.htm"]
    entries = atom_entries(tmp_path)
    assert "5月7日下午" in entries["青岚职院召开2021年春季学期教学工作推进会"].findtext(
        f"{ATOM}content"
    )
    assert len(enclosures(entries["关于开展2021年学生资助政策宣传月活动的通知"])) == 7
    assert alternate(entries["学院举行新版官网上线仪式"]) == f"{root}info/1021/3350.htm"


def test_article_pages_at_most_two_at_a_time_per_host(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    url = serve(httpserver, QINGLAN_LIST, "qinglan_list_1.htm")
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def slow(body: bytes) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            time.sleep(0.15)
            with lock:
                state["now"] -= 1
            return Response(body, content_type="text/html")

        return handler

    for docid in QINGLAN_ARTICLES:
        body = fixture(f"qinglan_article_{docid}.htm")
        httpserver.expect_request(f"/qlzy/info/1021/{docid}.htm").respond_with_handler(slow(body))
    config = write_config(tmp_path, [qinglan(url, selectors=content_selectors())])
    assert "ok new=5" in poll(config)
    assert state["max"] == 2


def _yunze_article(request: Request) -> Response:
    docid = re.search(r"(t\d+_\d+)\.html$", request.path)
    body = fixture("yunze_article.html").decode("utf-8")
    body = body.replace("{{DOCID}}", docid.group(1) if docid else "?").replace(
        "{{TITLE}}", f"文章 {request.path}"
    )
    return Response(body, content_type="text/html; charset=utf-8")


@pytest.mark.parametrize("follow_offsite", [False, True])
def test_offsite_article_links_need_follow_offsite(
    tmp_path: Path, httpserver: HTTPServer, follow_offsite: bool
) -> None:
    url = serve(httpserver, "/yunze/jyzx/index.html", "yunze_list.html")
    httpserver.expect_request(re.compile(r"^/(yunze/jyzx|moe)/2021\d\d/.*")).respond_with_handler(
        _yunze_article
    )
    source = {
        "name": "云泽教育厅",
        "url": url,
        "type": "html",
        "follow_offsite": follow_offsite,
        "selectors": {
            "item": "ul.list_ul li",
            "title": "a",
            "link": "a@href",
            "date": "span.date",
            "content": "div.TRS_Editor",
        },
    }
    # localhost is another host name for the same server; the SSRF guard on links the
    # aggregator follows by itself would refuse its loopback address, hence allow_private_hosts
    config = write_config(tmp_path, [source], poll={"allow_private_hosts": follow_offsite})
    assert "云泽教育厅  ok new=6" in poll(config)
    offsite = [r for r, _ in httpserver.log if r.path.startswith("/moe/")]
    onsite = [r for r, _ in httpserver.log if r.path.startswith("/yunze/jyzx/2021")]
    assert len(onsite) == 5
    bodies = dict(rows(tmp_path, "select link, content from articles"))
    reprint = bodies[f"http://localhost:{httpserver.port}/moe/202105/t20210506_9912.html"]
    if follow_offsite:
        assert [r.host for r in offsite] == [f"localhost:{httpserver.port}"]
        assert "稿件编号：t20210506_9912" in reprint
    else:
        assert offsite == []
        assert reprint is None
    content = bodies[httpserver.url_for("/yunze/jyzx/202104/t20210430_5470.html")]
    assert "稿件编号：t20210430_5470" in content
    image = httpserver.url_for("/yunze/jyzx/202104/W020210508_t20210430_5470.png")
    assert f'src="{image}"' in content


def test_extract_auto_uses_trafilatura_and_keeps_list_fields_when_a_page_fails(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    url = serve(httpserver, "/beiling/news.php", "beiling_big5.html")
    serve(httpserver, "/beiling/news_detail.php", "beiling_detail_812.html", query_string="id=812")
    httpserver.expect_request("/beiling/news_detail.php").respond_with_data("gone", status=404)
    source = {
        "name": "北嶺科大",
        "url": url,
        "type": "html",
        "extract": "auto",
        "selectors": {"item": "div.newsbox dd", "title": "a", "link": "a", "date": "em"},
    }
    config = write_config(tmp_path, [source])
    out = poll(config)
    assert "北嶺科大  ok new=3 updated=0" in out
    assert "2 article page(s) could not be fetched (HTTP 404 NOT FOUND ×2)" in out
    entries = atom_entries(tmp_path)
    content = entries["本校榮獲教育部「大學社會責任實踐計畫」補助"].findtext(f"{ATOM}content")
    assert "山城共學：偏鄉數位學伴與在地產業創新" in content
    assert "聯絡我們" not in content  # the menu is not the article
    failed = entries["資訊工程學系舉辦人工智慧應用競賽頒獎典禮"]
    assert failed.find(f"{ATOM}content") is None
    assert failed.findtext(f"{ATOM}published") == "2021-05-04T16:00:00+00:00"


def test_unchanged_list_page_costs_nothing(tmp_path: Path, httpserver: HTTPServer) -> None:
    body = fixture("qinglan_list_1.htm")
    serve_qinglan_articles(httpserver)

    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"list-v1"':
            return Response(status=304, headers={"ETag": '"list-v1"'})
        return Response(body, content_type="text/html", headers={"ETag": '"list-v1"'})

    httpserver.expect_request(QINGLAN_LIST).respond_with_handler(handler)
    source = qinglan(httpserver.url_for(QINGLAN_LIST), selectors=content_selectors())
    config = write_config(tmp_path, [source])
    assert "ok new=5" in poll(config)
    httpserver.log.clear()
    assert "青岚职院  not modified" in poll(config)
    assert [(r.path, resp.status_code) for r, resp in httpserver.log] == [(QINGLAN_LIST, 304)]
    assert rows(tmp_path, "select count(*) from articles where content is not null") == [(4,)]


# --- breakage -----------------------------------------------------------------------------------


def test_redesigned_page_is_an_error_not_an_empty_success(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    state = serve_changing(httpserver, QINGLAN_LIST, fixture("qinglan_list_1.htm"))
    config = write_config(tmp_path, [qinglan(httpserver.url_for(QINGLAN_LIST))])
    assert "ok new=5" in poll(config)
    state["body"] = fixture("qinglan_redesign.htm")
    out = poll(config)
    assert "青岚职院  error: selector matched 0 items" in out
    assert run_cli("-c", str(config), "poll", "--fail-on-error").code == 1
    row = source_row(config, "青岚职院")
    assert row["status"] == "error" and "selector matched 0 items" in row["last_error"]
    assert "selector matched 0 items" in run_cli("-c", str(config), "sources").out
    health = health_row(config, "青岚职院")
    assert health["status"] == "error" and "selector matched 0 items" in health["last_error"]


def test_item_count_falling_by_half_and_dateless_items_are_warnings(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    full = fixture("qinglan_list_1.htm")
    state = serve_changing(httpserver, QINGLAN_LIST, full)
    url = httpserver.url_for(QINGLAN_LIST)
    undated = qinglan(url, selectors={"date": "span.date-was-renamed"})
    undated["name"] = "无日期"
    config = write_config(tmp_path, [qinglan(url), undated])
    out = poll(config)
    assert "青岚职院  ok new=5 updated=0\n" in out
    assert "[warning: no date parsed on any item (check the date selector)]" in out
    assert source_row(config, "无日期")["warnings"] == [
        "no date parsed on any item (check the date selector)"
    ]
    state["body"] = re.sub(rb'<li id="line_u8_[234]">.*?</li>\s*', b"", full)
    out = poll(config)
    assert "青岚职院  ok new=0 updated=0 [warning: item count fell to 2 from about 5]" in out
    assert source_row(config, "青岚职院")["warnings"] == ["item count fell to 2 from about 5"]
    assert "warning: item count fell to 2 from about 5" in run_cli("-c", str(config), "sources").out
    assert health_row(config, "青岚职院")["warnings"] == ["item count fell to 2 from about 5"]


@pytest.mark.parametrize("kind", ["412", "js-cookie"])
def test_bot_challenge_is_an_error(tmp_path: Path, httpserver: HTTPServer, kind: str) -> None:
    challenge = fixture("challenge.html")
    status = 412 if kind == "412" else 200
    httpserver.expect_request("/list").respond_with_data(
        challenge, status=status, content_type="text/html"
    )
    config = write_config(tmp_path, [qinglan(httpserver.url_for("/list"))])
    out = poll(config)
    line = next(line for line in out.splitlines() if line.startswith("青岚职院"))
    assert "error:" in line and "bot challenge" in line
    if kind == "412":
        assert "HTTP 412" in line
    row = source_row(config, "青岚职院")
    assert row["status"] == "error" and "bot challenge" in row["last_error"]
    assert "bot challenge" in health_row(config, "青岚职院")["last_error"]


# --- feed discovery -----------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["page", "feed"])
def test_type_auto_uses_a_feed_or_the_feed_a_page_links(
    tmp_path: Path, httpserver: HTTPServer, start: str
) -> None:
    serve(httpserver, "/ylg/rss.xml", "ylg_rss.xml", "application/rss+xml")
    page = serve(httpserver, "/ylg/xwdt.htm", "with_feed_link.html")
    url = page if start == "page" else httpserver.url_for("/ylg/rss.xml")
    config = write_config(tmp_path, [{"name": "云泽理工", "url": url, "type": "auto"}])
    assert "云泽理工  ok new=1 updated=0" in poll(config)
    entry = atom_entries(tmp_path)["云泽理工学院获批两个国家级一流本科专业建设点"]
    assert entry.findtext(f"{ATOM}published") == "2021-05-07T02:00:00+00:00"


def test_type_auto_without_a_feed_says_selectors_are_needed(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    url = serve(httpserver, "/yunze/jyzx/index.html", "yunze_list.html")
    config = write_config(tmp_path, [{"name": "云泽教育厅", "url": url, "type": "auto"}])
    out = poll(config)
    assert "云泽教育厅  error: this page has no feed: set type: html with selectors" in out
    result = run_cli("-c", str(config), "preview", "云泽教育厅")
    assert result.code == 2
    assert "this page has no feed: give selectors (--item, --title, --link, --date)" in result.out


# --- check --------------------------------------------------------------------------------------

CONFIG_HEAD = """database: sqlite:///data/test.db
sources:
  - name: ok-feed
    url: http://127.0.0.1:9/feed
  - name: 青岚职院
    url: http://127.0.0.1:9/qlzy/xwzx/xyxw.htm
    type: html
"""


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            "    selectors:\n      title: a\n      link: a@href\n",
            "sources[1].selectors.item (line 8): required key is missing",
        ),
        (
            "    selectors:\n      item: li\n      title: a\n",
            "sources[1].selectors.link (line 8): required key is missing",
        ),
        (
            "    selectors:\n      item: ul.news-list li[\n      title: a\n      link: a\n",
            "sources[1].selectors.item (line 9): invalid CSS selector 'ul.news-list li['",
        ),
        (
            "    selectors:\n      item: li\n      title: a\n      link: a\n"
            "      remove: [div.share, 'p:nth-child(((']\n",
            "sources[1].selectors.remove[1] (line 12): invalid CSS selector",
        ),
        (
            "    selectors:\n      item: li\n      title: a\n      link: a\n      date: span..time\n",
            "sources[1].selectors.date (line 12): invalid CSS selector",
        ),
        ("    timezone: Asia/Shanghai\n", "sources[1] (line 5): an html source needs `selectors`"),
        (
            "    selectors:\n      item: li\n      title: a\n      link: a\n    title_cleanup: '【('\n",
            "sources[1].title_cleanup (line 12): invalid regular expression",
        ),
    ],
)
def test_check_rejects_bad_html_sources(tmp_path: Path, tail: str, expected: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG_HEAD + tail, encoding="utf-8")
    result = run_cli("-c", str(config), "check")
    assert result.code == 2
    assert expected in result.err, result.err
    assert "Traceback" not in result.err


def test_check_accepts_a_complete_html_source(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    tail = (
        "    timezone: Asia/Shanghai\n    max_pages: 3\n    title_cleanup: '^【[^】]*】'\n"
        "    follow_offsite: false\n    extract: auto\n    headers: {Referer: 'http://127.0.0.1:9/'}\n"
        "    selectors:\n      item: ul.news-list li\n      title: a\n      link: a@href\n"
        "      date: span.time\n      summary: p.intro\n      content: div.v_news_content\n"
        "      next_page: 'span.p_next a@href'\n      remove: [.share, script]\n"
        "      attachments: ul.attach a\n"
        "rules:\n  - {tag: 招生, match: 招生|录取}\n  - {drop: true, match: 招聘}\n"
    )
    config.write_text(CONFIG_HEAD + tail, encoding="utf-8")
    result = run_cli("-c", str(config), "check")
    assert result.code == 0, result.err
    assert "2 sources (2 enabled: 1 feed, 1 html)" in result.out


# --- preview ------------------------------------------------------------------------------------


def test_preview_prints_a_table_and_stores_nothing(tmp_path: Path, httpserver: HTTPServer) -> None:
    url = serve_qinglan(httpserver)
    config = write_config(tmp_path, [])
    result = run_cli(
        "-c", str(config), "preview", url, "--type", "html", "--item", "ul.news-list li",
        "--title", "a", "--link", "a@href", "--date", "span.time", "--next-page", "span.p_next a",
    )  # fmt: skip
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"fetched {url}: HTTP 200, {len(fixture('qinglan_list_1.htm'))} bytes"
    assert lines[1] == "encoding: gb18030 (declared: <meta> says gbk)"
    assert lines[2] == f"5 items; next page: {httpserver.url_for('/qlzy/xwzx/xyxw/2.htm')}"
    assert lines[3].split() == ["#", "DATE", "TITLE", "LINK", "SUMMARY"]
    first = lines[4]
    assert first.split()[:4] == [
        "1",
        "2021-05-08T00:00+08:00",
        "青岚职院召开2021年春季学期教学工作推进会",
        httpserver.url_for("/qlzy/info/1021/3345.htm"),
    ]
    assert "我院学子在全省职业院校技能大赛中斩获一等奖三项" in lines[5]
    # columns line up by display width (a CJK character takes two columns)
    link_column = lines[3].index("LINK")
    assert all(_columns(line[: line.index("http")]) == link_column for line in lines[4:9])
    assert len(paths(httpserver)) == 1, "preview fetches the one page only"
    assert not (tmp_path / "data").exists(), "preview stores nothing"


def _columns(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def test_preview_of_a_named_source_shows_warnings(tmp_path: Path, httpserver: HTTPServer) -> None:
    url = serve(httpserver, "/songxi/tzgg.asp", "songxi_table.html")
    source = {
        "name": "松溪师院",
        "url": url,
        "type": "html",
        "title_cleanup": r"^\[置顶\]",
        "selectors": {
            "item": "table.listtable tr",
            "title": "td.t a",
            "link": "td.t a",
            "date": "td.d",
        },
    }
    config = write_config(tmp_path, [source], rules=[{"drop": True, "match": "四、六级"}])
    result = run_cli("-c", str(config), "preview", "松溪师院", "--limit", "3")
    assert result.code == 0, result.err
    out = result.out
    assert "encoding: gb18030 (declared: <meta> says gb2312)" in out
    assert "6 items (showing 3)" in out
    assert "松溪师范学院2021年本科招生章程" in out and "[置顶]" not in out  # title_cleanup
    assert "(no date)" in out
    assert "关于表彰2020年度“王堃励志奖学金”获得者的决定" in out
    assert "2021-05-07T00:00+08:00" in out
    assert "warning: 1 item(s) without a title or link were skipped" in out  # the header row
    assert "warning: 1 item(s) without a parsed date" in out
    assert not (tmp_path / "data").exists()
    dropped = run_cli("-c", str(config), "preview", "松溪师院")
    assert (
        "2021年上半年大学英语四、六级考试报名通知  (dropped: include/exclude/rules)" in dropped.out
    )


def test_preview_reports_detected_encoding_and_zero_items(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    url = serve(httpserver, "/list", "beiling_big5.html", "text/html; charset=gb2312")
    config = write_config(tmp_path, [])
    good = run_cli("-c", str(config), "preview", url, "--item", "dd", "--title", "a", "--link", "a")
    assert good.code == 0, good.err
    assert "encoding: big5hkscs (detected, although the HTTP header says gb2312)" in good.out
    assert "本校榮獲教育部「大學社會責任實踐計畫」補助" in good.out
    assert "warning: no date selector: a poll dates items when it first sees them" in good.out
    none = run_cli(
        "-c", str(config), "preview", url, "--item", "li.x", "--title", "a", "--link", "a"
    )
    assert none.code == 1
    assert "0 items" in none.out and "warning: selector matched 0 items" in none.out


def test_preview_usage_errors(tmp_path: Path) -> None:
    config = write_config(tmp_path, [])
    missing = run_cli("-c", str(config), "preview", "http://127.0.0.1:9/x", "--type", "html")
    assert missing.code == 2
    assert "an html preview needs --item, --title and --link" in missing.err
    bad = run_cli(
        "-c", str(config), "preview", "http://127.0.0.1:9/x", "--item", "li[", "--title", "a",
        "--link", "a",
    )  # fmt: skip
    assert bad.code == 2 and "--item: invalid CSS selector" in bad.err
    unknown = run_cli("-c", str(config), "preview", "no-such-source")
    assert (
        unknown.code == 2 and "neither a configured source name nor an http(s) URL" in unknown.err
    )


# --- the parser on its own ----------------------------------------------------------------------


def _source(**selectors: Any) -> Any:
    from aggregator.config import SourceConfig

    return SourceConfig.model_validate(
        {"name": "t", "url": "http://x.example/", "type": "html", "selectors": selectors}
    )


def test_parse_list_resolves_against_base_href_and_xhtml_declaration() -> None:
    page = (
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html><html><head>'
        '<base href="http://cdn.example.edu.cn/news/"></head><body><ul>'
        '<li><a href="2021/0508.htm">开学典礼</a><i>2021年5月8日 10:30</i></li>'
        '<li><a href="javascript:void(0)">无链接</a></li>'
        '</ul><a class="next" href="?page=2">下一页</a></body></html>'
    )
    source = _source(item="li", title="a", link="a", date="i", next_page="a.next")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    parsed = parse_list(page, "http://www.example.edu.cn/list.htm", source, SHANGHAI, now)
    assert [(i.title, i.link) for i in parsed.items] == [
        ("开学典礼", "http://cdn.example.edu.cn/news/2021/0508.htm")
    ]
    assert parsed.items[0].published == datetime(2021, 5, 8, 2, 30, tzinfo=UTC)
    assert parsed.next_page == "http://cdn.example.edu.cn/news/?page=2"
    assert parsed.warnings == ("1 item(s) without a title or link were skipped",)


def test_truncated_list_title_is_repaired_from_the_article_page() -> None:
    text, _ = decode_html(fixture("qinglan_article_3338.htm"), None)
    source = _source(item="li", title="a", link="a", content="div.v_news_content")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    page = extract_article(text, "http://x.example/qlzy/info/1021/3338.htm", source, SHANGHAI, now)
    assert page.title == "我院学子在全省职业院校技能大赛中斩获一等奖三项"
    assert repair_title("我院学子在全省职业院校技能大赛中斩获...", page.title) == page.title
    assert repair_title("完全不同的标题…", page.title) == "完全不同的标题…"
    assert repair_title("不截断的标题", page.title) == "不截断的标题"
    assert repair_title("开学典礼…", "开学典礼隆重举行 - 某某大学") == "开学典礼隆重举行"


def test_fast_link_resolution_agrees_with_urljoin() -> None:
    """parse_list resolves a page's links through a cached folder join; it must give exactly
    what urllib's urljoin gives, dot segments, queries and odd corners included."""
    import random
    from urllib.parse import urljoin

    from aggregator.parse.html import _join

    bases = [
        "http://www.example.edu.cn/qlzy/xwzx/xyxw.htm",
        "http://www.example.edu.cn/a/b/list.asp?page=2#top",
        "http://www.example.edu.cn",
        "https://www.example.edu.cn/a/",
        "http://user@www.example.edu.cn:8080/a/b;p?q",
    ]
    parts = ["..", ".", "info", "3345.htm", "", "?id=1", "#f", "x:y", "//", ";p", "..x", "中文"]
    rng = random.Random(7)
    hrefs = ["../info/1021/3345.htm", "show.asp?id=2286", "//cdn.example.cn/a.pdf", "?page=2"]
    hrefs += [
        "/".join(rng.choice(parts) for _ in range(rng.randint(1, 5)))
        + rng.choice(["", "?z=/..", "#/.", ";x"])
        for _ in range(3000)
    ]
    for base in bases:
        for href in hrefs:
            assert _join(base, href) == urljoin(base, href), (base, href)


def test_links_are_cleaned_like_a_browser_would() -> None:
    page = (
        "<ul>"
        '<li><a href=" 2021/通知 附件.htm\n">空格与换行</a></li>'
        '<li><a href="http://[::1">坏主机</a></li>'
        '<li><a href="http://news.example.cn:99999/x">坏端口</a></li>'
        '<li><a href="mailto:office@example.cn">邮件</a></li>'
        '<li><a href="HTTPS://News.Example.cn/a/../b.htm">大写</a></li>'
        "</ul>"
    )
    source = _source(item="li", title="a", link="a")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    parsed = parse_list(page, "http://www.example.cn/list/", source, SHANGHAI, now)
    assert [i.link for i in parsed.items] == [
        "http://www.example.cn/list/2021/通知%20附件.htm",
        "https://News.Example.cn/a/../b.htm",  # urljoin leaves another scheme's URL as is
    ]
    assert parsed.warnings == ("3 item(s) without a title or link were skipped",)


def test_a_failing_later_list_page_keeps_the_earlier_items(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    url = serve(httpserver, QINGLAN_LIST, "qinglan_list_1.htm")
    httpserver.expect_request("/qlzy/xwzx/xyxw/2.htm").respond_with_data("busy", status=503)
    config = write_config(tmp_path, [qinglan(url, max_pages=2)])
    out = poll(config)
    assert "青岚职院  ok new=5 updated=0 [warning: list page 2" in out
    assert "HTTP 503" in out
