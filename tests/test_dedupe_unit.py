"""Unit tests for aggregator.dedupe, stage by stage, on small texts written for these tests.

Every text here is invented; names of schools and districts are fictional.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from aggregator import dedupe
from aggregator.config import DedupeConfig
from aggregator.dedupe import Decision, Entry, Fingerprint, Index
from aggregator.dedupe.index import _LineCounts
from aggregator.model import Article, StoredArticle, Story

CONFIG = DedupeConfig()
T0 = datetime(2024, 3, 18, 2, 0, tzinfo=UTC)

# --- texts ----------------------------------------------------------------------------------

HEDONG_TITLE = "河东职业技术学院职业教育集团成立大会顺利举行"
HEDONG = [
    "3月18日上午，河东职业技术学院职业教育集团成立大会在学院报告厅召开。来自市教育局、"
    "行业协会、三十余家合作企业和十二所中高职院校的代表共二百余人参加会议。",
    "会议审议通过了集团章程，选举产生了第一届理事会。学院党委书记在致辞中表示，集团将围绕"
    "本地装备制造、现代物流和数字商贸三大产业，搭建校企共建共享的人才培养平台，推动专业设置"
    "与产业需求精准对接。",
    "据介绍，集团成员单位将联合开发课程标准和实训项目，共同建设五个产业学院和十个校外实训"
    "基地，并探索订单班、现代学徒制等多种培养方式。今年内，集团计划为成员企业输送技术技能"
    "人才一千二百名，开展职工技能培训三千人次。",
    "市教育局有关负责人指出，组建职业教育集团是深化产教融合、校企合作的重要举措，希望各成员"
    "单位发挥各自优势，在资源共享、师资互聘、技术攻关等方面形成合力，为区域经济高质量发展"
    "提供有力的人才支撑。",
    "会上，六家企业与学院现场签订了合作协议，双方将在设备捐赠、兼职教师选派和学生顶岗实习"
    "等方面开展深度合作。",
]
JIANGNAN_SWAPS = {
    "河东职业技术学院": "江南工业职业学院",
    "3月18日": "4月9日",
    "三十余家": "四十余家",
    "十二所": "九所",
    "二百余人": "三百余人",
    "装备制造、现代物流和数字商贸": "纺织服装、电子信息和文化旅游",
    "五个产业学院和十个": "三个产业学院和八个",
    "一千二百名": "九百名",
    "三千人次": "五千人次",
    "六家": "八家",
}

PRESS_12 = [
    "教育部今天举行2024年第12场新闻发布会，介绍高等职业教育专业目录修订工作有关情况。",
    "新修订的目录共设置专业大类十九个、专业七百四十四个，新增集成电路技术、智能网联汽车"
    "技术等专业，撤并了一批就业面过窄、与产业发展脱节的专业。",
    "教育部职业教育与成人教育司负责人表示，目录修订坚持服务产业转型升级，将推动院校动态调整"
    "专业布局，并同步修订专业教学标准和实训条件建设标准。",
]
PRESS_13 = [
    "教育部今天举行2024年第13场新闻发布会，介绍中小学生暑期安全教育工作有关情况。",
    "发布会介绍，今年暑期前各地将集中开展防溺水、交通安全和网络安全专题教育，中小学要在放假"
    "前向家长发放安全提示，并建立假期联系制度。",
    "教育部基础教育司负责人表示，各地要会同公安、应急管理等部门加强对重点水域和校园周边的"
    "巡查，切实守护学生暑期安全。",
]

NOTICE_TITLE = "教育部办公厅关于做好2024年职业院校学生实习管理工作的通知"
NOTICE = [
    "教职成厅函〔2024〕7号",
    "各省、自治区、直辖市教育厅（教委），新疆生产建设兵团教育局：",
    "为进一步规范职业院校学生实习工作，切实维护学生、学校和实习单位的合法权益，现就做好2024年"
    "实习管理工作通知如下。",
    "一、严格落实实习管理规定。各地要督促职业院校健全实习管理制度，不得安排一年级在校学生到"
    "企业顶岗实习，不得通过中介机构有偿代理组织学生实习。",
    "二、加强实习过程指导。学校要为每名实习学生配备校内指导教师，定期开展巡查，及时掌握学生"
    "思想、工作和安全状况。",
    "三、健全权益保障机制。实习单位应按规定为学生投保实习责任保险，合理确定实习报酬，不得安排"
    "学生从事高危工种作业。",
    "教育部办公厅",
    "2024年3月1日",
]
NOTICE_QA_TITLE = "教育部职业教育与成人教育司负责人就职业院校学生实习管理工作答记者问"
NOTICE_QA = [
    "近日，教育部办公厅印发《关于做好2024年职业院校学生实习管理工作的通知》（教职成厅函"
    "〔2024〕7号）。教育部职业教育与成人教育司负责人就有关问题回答了记者提问。",
    "问：为什么要专门印发这份通知？",
    "答：近年来，职业院校学生实习总体规范有序，但个别地方和学校仍存在实习安排与专业不对口、"
    "实习报酬被克扣等问题，社会反映强烈，有必要再次明确要求、压实责任。",
    "问：通知对学校提出了哪些具体要求？",
    "答：学校要把实习纳入人才培养方案统筹安排，严格审核实习单位资质，为学生配备指导教师，"
    "并畅通学生反映问题的渠道，发现违规行为及时纠正。",
]

BUDGET_TITLE = "Riverside district approves new school budget"
BUDGET = [
    "The Riverside Unified School District board voted 5-2 on Tuesday night to approve a "
    "$48 million budget for the coming school year, ending weeks of debate over class sizes "
    "and staffing.",
    "The plan adds twelve reading specialists for elementary schools, restores after-school "
    "bus routes that were cut last spring, and sets aside money for roof repairs at two "
    "middle schools.",
    "Board members who voted against the budget said it relies too heavily on one-time state "
    "grants. 'We are building next year on money that may not be there the year after,' one "
    "of them said during the meeting.",
    "District officials said they expect enrollment to hold steady and will revisit the "
    "spending plan in January, when updated state funding figures are released.",
]
RALLY_TITLE = "Teachers rally outside Riverside district office after budget vote"
RALLY = [
    "About two hundred teachers and parents gathered outside the Riverside Unified district "
    "office on Wednesday morning, a day after the board adopted its budget, to protest what "
    "they called a freeze on classroom aide positions.",
    BUDGET[1],
    "Union leaders said aides in special education classrooms have not seen a raise in three "
    "years and that several positions remain unfilled. They asked the board to reopen "
    "negotiations before the winter break.",
    "A district spokesperson said the board would hear public comment on staffing at its next "
    "regular meeting but had no plans to amend the budget.",
]
ROUNDUP_1 = [
    "Lakeview High's robotics team placed third at the state championship after a tense "
    "final round against two larger schools.",
    "The county library will extend weekend hours for students preparing for exams through "
    "the end of May.",
    "Parents can now register for the summer reading challenge online; prizes include "
    "bookstore gift cards and a pizza party for the top classroom.",
]
ROUNDUP_2 = [
    "Two Maple Grove teachers were named finalists for the regional educator of the year "
    "award, to be announced at a ceremony in June.",
    "The district's new lunch vendor starts serving all elementary schools next Monday, with "
    "a vegetarian option offered every day of the week.",
    "A community forum on later school start times drew more than eighty residents, most of "
    "whom spoke in favour of a pilot at one high school.",
]
COURIER_FOOTER = (
    "The Valley Courier is an independent nonprofit newsroom covering public schools in the "
    "valley region since 1998."
)
OTHER_NEWS = [
    [
        "Northside Elementary opened a new library wing on Friday, funded by a local bond "
        "measure approved two years ago by voters."
    ],
    [
        "The community college announced free evening classes in welding and electrical work "
        "for adults who never finished high school."
    ],
    [
        "A late snowstorm closed all valley schools on Thursday; the district said the day will "
        "be made up at the end of the school year."
    ],
]


# --- helpers --------------------------------------------------------------------------------


def article(
    title: str,
    paragraphs: Sequence[str],
    *,
    source: str = "src-a",
    url: str | None = None,
    guid: str | None = None,
    published: datetime = T0,
    summary_only: bool = False,
) -> Article:
    """An Article as normalize would produce it: body in <p> tags, text hash over the body."""
    body = "\n".join(paragraphs)
    content = None if summary_only else "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    squeezed = re.sub(r"\s+", "", body)
    digest = hashlib.sha1(squeezed.encode()).hexdigest() if len(body) >= 40 else ""
    url = url or f"https://{source}.example/{abs(hash((title, body))) % 10**8}"
    return Article(
        source=source,
        key=url,
        url=url,
        link=url,
        guid=guid,
        title=title,
        summary=body[:300],
        content=content,
        author=None,
        published=published,
        source_updated=None,
        tags=(),
        enclosures=(),
        content_hash="",
        text_hash=digest,
    )


def entry(a: Article, fp: Fingerprint, story_id: int, article_id: int = 1) -> Entry:
    return Entry(
        article_id, story_id, a.source, a.url, a.guid, a.text_hash, a.published, a.title, fp
    )


class Pipeline:
    """Drives an Index the way the pipeline does: fingerprint, match, assign, add."""

    def __init__(self, config: DedupeConfig = CONFIG) -> None:
        self.index = Index(config)
        self.next_id = 1

    def __call__(self, a: Article) -> Decision:
        fp = self.index.fingerprint(a)
        decision = self.index.match(a, fp)
        story = decision.story_id if decision.story_id is not None else 1000 + self.next_id
        self.index.add(entry(a, fp, story, self.next_id))
        self.next_id += 1
        return decision


def swapped(paragraphs: Sequence[str], swaps: dict[str, str]) -> list[str]:
    out = []
    for paragraph in paragraphs:
        for old, new in swaps.items():
            paragraph = paragraph.replace(old, new)
        out.append(paragraph)
    return out


def to_traditional(text: str) -> str:
    from opencc import OpenCC

    return str(OpenCC("s2t").convert(text))


# --- normalize_title --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "教育部：推进职业教育改革",
        "【转载】教育部：推进职业教育改革",
        "[中国教育报] 教育部：推进职业教育改革",
        "［要闻］【转载】教育部：推进职业教育改革",
        "教育部：推进职业教育改革 - 中国教育新闻网",
        "教育部：推进职业教育改革_某某教育网",
        "教育部：推进职业教育改革—某某在线",
        "教育部：推进职业教育改革 | Edu Daily",
        "教育部：推进职业教育改革 · Edu Daily",
        "教育部：推進職業教育改革",  # traditional
        "教育部 ： 推进职业教育改革 ！",
    ],
)
def test_normalize_title_variants_share_one_key(title: str) -> None:
    assert dedupe.normalize_title(title) == "教育部推进职业教育改革"


def test_normalize_title_full_width_and_case() -> None:
    key = dedupe.normalize_title("２０２４年全国职业院校技能大赛ＡＩ赛项开幕 ｜ 某网")
    assert key == dedupe.normalize_title("2024年全国职业院校技能大赛AI赛项开幕")
    assert key == "2024年全国职业院校技能大赛ai赛项开幕"
    assert dedupe.normalize_title("Schools Get New Funding | Daily Edu") == "schoolsgetnewfunding"


def test_normalize_title_keeps_a_short_title_with_a_dash() -> None:
    # the remainder in front of a "suffix" is too short to be a whole title
    assert dedupe.normalize_title("开学 - 第一课") == "开学第一课"
    assert dedupe.normalize_title("【快讯】") == "快讯"


def test_traditional_table_converts_bodies() -> None:
    body = "".join(HEDONG)
    assert dedupe.fold(to_traditional(body)) == dedupe.fold(body)


@pytest.mark.parametrize(
    ("key", "generic"),
    [
        ("weeklyroundup", True),
        ("教育部新闻发布会", True),
        ("教育部举行第12场新闻发布会", False),  # an ordinal names one press conference
        ("教育部举行2026年新闻发布会", True),  # a year does not
        ("2026年工作动态", True),
        ("weeklyroundup2026", True),
        ("工作动态", True),
        ("newsinbrief", True),
        (dedupe.normalize_title(HEDONG_TITLE), False),
        (dedupe.normalize_title(BUDGET_TITLE), False),
    ],
)
def test_generic_titles(key: str, generic: bool) -> None:
    assert dedupe.is_generic_title(key) is generic


# --- doc_number -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "教职成〔2024〕1号",
        "教职成[2024]1号",
        "教职成［2024］1号",
        "教职成(2024)1号",
        "教职成（2024）1号",
        "教职成【2024】01号",
        "关于印发的通知（教职成〔2024〕1号）",
        "按照教职成 〔2024〕 1 号文件要求",
        "根据教職成〔2024〕1號",
    ],
)
def test_doc_number_bracket_variants(text: str) -> None:
    assert dedupe.doc_number(text) == "教职成〔2024〕1号"


def test_doc_number_other_agencies_and_absence() -> None:
    assert dedupe.doc_number("国务院办公厅通知（国办发〔2026〕5号）") == "国办发〔2026〕5号"
    assert dedupe.doc_number("教发函[2023]12号") == "教发函〔2023〕12号"
    assert dedupe.doc_number("2024年第12场新闻发布会") is None
    assert dedupe.doc_number("") is None


# --- fingerprints and signatures ------------------------------------------------------------


def test_fingerprint_round_trip_through_bytes() -> None:
    fp = dedupe.fingerprint(article(NOTICE_TITLE, NOTICE))
    assert fp.doc_number == "教职成厅函〔2024〕7号"
    assert fp.signature is not None and len(fp.signature) == 8 + 4 * dedupe.NUM_PERM
    stored = Fingerprint.from_stored(fp.title_key, fp.doc_number, memoryview(fp.signature))
    assert stored == fp
    assert stored.hashes is not None and fp.hashes is not None
    assert np.array_equal(stored.hashes, fp.hashes)
    assert stored.shingles == fp.shingles > 0
    assert (
        dedupe.compare(
            entry(article(NOTICE_TITLE, NOTICE), stored, 1),
            entry(article(NOTICE_TITLE, NOTICE), fp, 1),
            CONFIG,
        ).score
        == 1.0
    )


def test_from_stored_drops_signatures_of_another_version_or_size() -> None:
    fp = dedupe.fingerprint(article(BUDGET_TITLE, BUDGET))
    assert fp.signature is not None
    other_version = bytes([0, 0, 0, 99]) + fp.signature[4:]
    assert Fingerprint.from_stored("k", None, other_version).signature is None
    assert Fingerprint.from_stored("k", None, fp.signature[:-4]).signature is None
    assert Fingerprint.from_stored(None, "", None) == Fingerprint("", None, None)


def test_short_body_has_no_signature() -> None:
    fp = dedupe.fingerprint(article("短讯标题足够长的一条新闻", ["点击查看原文"]))
    assert fp.signature is None and fp.hashes is None and fp.shingles == 0


def test_signature_equals_datasketch_minhash() -> None:
    import datasketch  # a dependency (>= 2: its permutation scheme is the one we reproduce)

    shingles = dedupe.shingle_hashes(dedupe.fold("".join(HEDONG)))
    reference = datasketch.MinHash(num_perm=dedupe.NUM_PERM, seed=1, hashfunc=lambda x: x)
    reference.update_batch(shingles.tolist())
    assert np.array_equal(reference.hashvalues, dedupe.minhash(shingles))


def test_shingles_are_characters_for_chinese_and_words_for_english() -> None:
    assert len(dedupe.shingle_hashes("教育部推进改革")) == 5  # 7 characters, 5 trigrams
    assert len(dedupe.shingle_hashes("the board voted five to two")) == 4  # 6 words


def test_body_text_from_content_or_summary() -> None:
    a = replace(article("t", ["x"]), content="<div>第一段<br>第二段</div><p>第三段</p>")
    assert dedupe.body_text(a) == "第一段\n第二段\n第三段"
    assert dedupe.body_text(replace(a, content=None, summary="摘要")) == "摘要"
    assert dedupe.body_text(replace(a, content="<img src='x'>", summary="摘要")) == "摘要"


# --- boilerplate ----------------------------------------------------------------------------


def test_builtin_boilerplate_lines_are_dropped() -> None:
    text = "\n".join(
        [
            HEDONG[0] + "（责任编辑：王某）",
            "来源：某某教育网",
            "最近更新：2024-03-18",
            "扫一扫在手机打开当前页",
            "分享到：微信 微博",
            "图为成立大会现场。",
            "Share this article",
            "Editor: Jane Doe",
            "Subscribe to our newsletter",
        ]
    )
    assert dedupe.content_lines(text) == [dedupe.fold(HEDONG[0])]


def test_boilerplate_footer_copy_matches_closely() -> None:
    plain = dedupe.fingerprint(article(HEDONG_TITLE, HEDONG))
    footer = ["（责任编辑：李某）", "来源：河东日报", "扫一扫在手机打开当前页", "分享到：微信"]
    decorated = dedupe.fingerprint(article(HEDONG_TITLE, [*HEDONG, *footer], source="b"))
    assert dedupe.body_similarity(plain, decorated)[0] == 1.0


def test_index_learns_source_boilerplate_after_three_articles() -> None:
    clean = dedupe.fingerprint(article(BUDGET_TITLE, BUDGET))
    index = Index(CONFIG)
    copy = article(BUDGET_TITLE, [*BUDGET, COURIER_FOOTER], source="courier")
    before = dedupe.body_similarity(clean, dedupe.fingerprint(copy))[0]
    for news in OTHER_NEWS[:2]:
        index.fingerprint(
            article("Other valley school news item", [*news, COURIER_FOOTER], source="courier")
        )
    learned = index.fingerprint(copy)  # the third article with the footer
    assert before < 1.0
    assert dedupe.body_similarity(clean, learned)[0] == 1.0
    # another source's copy of the footer line is not that source's boilerplate
    elsewhere = Index(CONFIG).fingerprint(replace(copy, source="elsewhere"))
    assert dedupe.body_similarity(clean, elsewhere)[0] == before


# --- stage 1: exact keys --------------------------------------------------------------------


def test_exact_keys_url_guid_text_hash() -> None:
    run = Pipeline()
    first = article(BUDGET_TITLE, BUDGET, url="https://a.example/1", guid="tag:a.example,2024:1")
    run(first)
    same_url = article(
        "Totally different headline about buses", ["short"], source="b", url="https://a.example/1"
    )
    assert run(same_url).stage == dedupe.STAGE_URL
    same_guid = replace(same_url, url="https://c.example/9", guid="tag:a.example,2024:1")
    assert run(same_guid).stage == dedupe.STAGE_GUID
    same_text = article("Budget approved by Riverside school board", BUDGET, source="d")
    decision = run(same_text)
    assert (decision.stage, decision.score, decision.story_id) == ("text_hash", 1.0, 1001)


def test_short_guids_are_not_global() -> None:
    run = Pipeline()
    run(article(BUDGET_TITLE, BUDGET, guid="1234"))
    other = article("Lakeview robotics team places third", ROUNDUP_1, source="b", guid="1234")
    assert run(other).story_id is None
    assert not dedupe.is_global_guid("1234")
    assert dedupe.is_global_guid("https://a.example/?p=1234")


def test_same_text_hash_with_contradicting_titles_stays_apart() -> None:
    boiler = ["本网站所刊登的各类新闻信息均来自合作单位，转载请注明出处，如有疑问请与本网联系。"]
    run = Pipeline()
    run(article("河东职业技术学院举行春季运动会", boiler))
    decision = run(article("江南工业职业学院召开教学工作会议", boiler, url="https://x/2"))
    assert decision.story_id is None


def test_doc_number_with_bracket_variant_joins_with_agreeing_title() -> None:
    run = Pipeline()
    run(article(NOTICE_TITLE, NOTICE, source="moe"))
    summary = [
        "为进一步规范职业院校学生实习工作，教育部办公厅印发通知，就做好2024年实习管理工作"
        "作出部署，要求各地严格落实实习管理规定。"
    ]
    copy = article(
        "关于做好2024年职业院校学生实习管理工作的通知（教职成厅函[2024]7号）",
        summary,
        source="province",
        summary_only=True,
    )
    decision = run(copy)
    assert decision.stage == dedupe.STAGE_DOC and decision.story_id == 1001
    assert "教职成厅函〔2024〕7号" in decision.detail


def test_doc_number_commentary_is_another_story() -> None:
    run = Pipeline()
    run(article(NOTICE_TITLE, NOTICE, source="moe"))
    qa = article(NOTICE_QA_TITLE, NOTICE_QA, source="moe")
    assert dedupe.fingerprint(qa).doc_number == "教职成厅函〔2024〕7号"
    decision = run(qa)
    assert decision.story_id is None


def test_doc_number_alone_never_joins() -> None:
    a = dedupe.fingerprint(article(NOTICE_TITLE, NOTICE))
    local = [
        "我市教育局日前召开会议，传达学习教职成厅函〔2024〕7号文件精神，部署本市职业院校"
        "学生实习检查工作，检查将持续到六月底，重点核查实习协议签订和保险购买情况。"
    ]
    b = dedupe.fingerprint(article("我市部署职业院校实习专项检查", local))
    assert a.doc_number == b.doc_number
    verdict = dedupe.match_doc_number(b, a, CONFIG.threshold)
    assert not verdict.matched and "differ" in verdict.detail


# --- stage 2: titles ------------------------------------------------------------------------


def test_prefixed_and_suffixed_title_with_footer_joins_by_title() -> None:
    run = Pipeline()
    run(article(BUDGET_TITLE, BUDGET))
    reprint = article(
        "[Local] Riverside district approves new school budget - Valley Courier",
        [*BUDGET, "Share this story", COURIER_FOOTER],
        source="courier",
    )
    decision = run(reprint)
    assert (decision.stage, decision.story_id) == (dedupe.STAGE_TITLE, 1001)


def test_traditional_reprint_joins() -> None:
    run = Pipeline()
    run(article(HEDONG_TITLE, HEDONG))
    trad = article(to_traditional(HEDONG_TITLE), [to_traditional(p) for p in HEDONG], source="hk")
    decision = run(trad)
    assert (decision.stage, decision.story_id) == (dedupe.STAGE_TITLE, 1001)


def test_summary_only_copy_joins_by_title() -> None:
    run = Pipeline()
    run(article(HEDONG_TITLE, HEDONG))
    own_words = ["河东职业技术学院牵头组建的职业教育集团日前成立，三十余家企业加入。"]
    copy = article(f"【职教】{HEDONG_TITLE}", own_words, source="b", summary_only=True)
    assert run(copy).stage == dedupe.STAGE_TITLE


def test_same_title_with_disagreeing_bodies_stays_apart() -> None:
    title = "Riverside schools add reading specialists and bus routes"
    run = Pipeline()
    run(article(title, BUDGET))
    other = article(title, RALLY[:1] + RALLY[2:] + ROUNDUP_2, source="b")
    decision = run(other)
    assert decision.story_id is None
    verdict = dedupe.match_title(
        dedupe.fingerprint(other), dedupe.fingerprint(article(title, BUDGET))
    )
    assert "bodies differ" in verdict.detail


def test_weekly_roundups_with_different_bodies_stay_apart() -> None:
    run = Pipeline()
    run(article("Weekly roundup", ROUNDUP_1))
    assert run(article("Weekly Roundup", ROUNDUP_2, source="b")).story_id is None
    assert run(article("Weekly roundup", ROUNDUP_2[:1], source="c")).story_id is None


def test_generic_title_never_merges_on_title_alone() -> None:
    a = Fingerprint("教育部新闻发布会", None, None)
    verdict = dedupe.match_title(a, a)
    assert not verdict.matched and "generic" in verdict.detail


# --- stage 3: near-duplicate text -----------------------------------------------------------


def test_trimmed_first_paragraph_copy_joins_as_near_duplicate() -> None:
    run = Pipeline()
    run(article(BUDGET_TITLE, BUDGET))
    trimmed = article("Riverside board passes $48 million school budget", BUDGET[1:], source="b")
    decision = run(trimmed)
    assert (decision.stage, decision.story_id) == (dedupe.STAGE_NEAR, 1001)
    assert CONFIG.threshold <= decision.score < 1.0


def test_trimmed_chinese_copy_with_new_title_joins() -> None:
    run = Pipeline()
    run(article(HEDONG_TITLE, HEDONG))
    trimmed = article(
        "河东职院牵头组建职业教育集团", [*HEDONG[1:], "（责任编辑：赵某）"], source="b"
    )
    decision = run(trimmed)
    assert (decision.stage, decision.story_id) == (dedupe.STAGE_NEAR, 1001)


def test_two_colleges_template_titles_stay_apart() -> None:
    jiangnan_title = HEDONG_TITLE.replace("河东职业技术学院", "江南工业职业学院")
    jiangnan = article(jiangnan_title, swapped(HEDONG, JIANGNAN_SWAPS), source="b")
    run = Pipeline()
    run(article(HEDONG_TITLE, HEDONG))
    assert run(jiangnan).story_id is None
    reason = dedupe.titles_contradict(
        dedupe.normalize_title(HEDONG_TITLE), dedupe.normalize_title(jiangnan_title)
    )
    assert reason is not None and "template" in reason


def test_numbered_press_conferences_stay_apart() -> None:
    run = Pipeline()
    run(article("教育部举行第12场新闻发布会", PRESS_12))
    later = article("教育部举行第13场新闻发布会", PRESS_13, published=T0 + timedelta(days=7))
    assert run(later).story_id is None
    assert "numbers" in str(
        dedupe.titles_contradict("教育部举行第12场新闻发布会", "教育部举行第十三场新闻发布会")
    )


def test_near_duplicate_with_contradicting_numbers_is_refused() -> None:
    a = dedupe.fingerprint(article("教育部举行第12场新闻发布会", PRESS_12))
    b = dedupe.fingerprint(article("教育部举行第13场新闻发布会", PRESS_12))
    verdict = dedupe.match_near_duplicate(a, b, CONFIG.threshold)
    assert not verdict.matched and verdict.score >= CONFIG.threshold
    assert "numbers" in verdict.detail


def test_next_day_follow_up_is_a_new_story() -> None:
    run = Pipeline()
    run(article(BUDGET_TITLE, BUDGET))
    follow_up = article(RALLY_TITLE, RALLY, source="b", published=T0 + timedelta(days=1))
    decision = run(follow_up)
    assert decision.story_id is None


@pytest.mark.parametrize(
    ("a", "b", "contradict"),
    [
        ("Ohio to expand school meals", "Ohio expands school meals", False),
        ("Ohio expands school meals program", "Ohio expands school meals to all students", False),
        ("Springfield College opens new campus", "Shelbyville College opens new campus", True),
        ("教育部召开职业教育工作会议", "教育部召开学前教育工作会议", True),
        ("教育部召开职业教育工作会议", "教育部召开职业教育工作会议部署今年重点任务", False),
        ("3月5日教育部召开会议", "3月6日教育部召开会议", True),
        ("教育部举行第12场新闻发布会", "教育部举行第十三场新闻发布会", True),
        (
            "松江农业职业技术学院2026年公开招聘高层次人才公告",
            "松江农业职院面向社会公开招聘人才30名",
            False,
        ),
        ("教育部举行2026年第7场新闻发布会", "教育部第7场新闻发布会介绍2027届毕业生就业工作", False),
        ("2024年高考报名人数创新高", "教育部：2024年高考报名人数创新高", False),
        ("Riverside district approves new school budget", RALLY_TITLE, False),
        (
            "Lakeview robotics team places third at state",
            "County extends library weekend hours",
            True,
        ),
    ],
)
def test_titles_contradict(a: str, b: str, contradict: bool) -> None:
    reason = dedupe.titles_contradict(dedupe.normalize_title(a), dedupe.normalize_title(b))
    assert (reason is not None) is contradict, reason


def test_window_excludes_old_entries() -> None:
    run = Pipeline()
    run(article(BUDGET_TITLE, BUDGET, url="https://a.example/1"))
    late = article(
        BUDGET_TITLE,
        BUDGET,
        source="b",
        url="https://a.example/1",
        published=T0 + CONFIG.window + timedelta(hours=1),
    )
    index = run.index
    assert index.match(late, index.fingerprint(late)).story_id is None
    inside = replace(late, published=T0 + CONFIG.window - timedelta(hours=1))
    assert index.match(inside, index.fingerprint(inside)).story_id == 1001
    before = replace(late, published=T0 - CONFIG.window - timedelta(hours=1))
    assert index.match(before, index.fingerprint(before)).story_id is None


def test_lsh_arrays_after_merge_and_prune() -> None:
    run = Pipeline()
    run.index._bands.CHUNK = 2  # exercise the sorted arrays, not only the pending rows
    for i, news in enumerate(OTHER_NEWS):
        run(article(f"Valley schools story number {i} of the week", news * 3))
    run(article(BUDGET_TITLE, BUDGET))
    assert (
        run(
            article("Riverside board passes $48 million school budget", BUDGET[1:], source="b")
        ).story_id
        == 1004
    )
    assert run.index.prune(T0 + timedelta(days=1)) == 5
    assert len(run.index) == 0


def test_prune_keeps_recent_entries() -> None:
    run = Pipeline()
    run(article(BUDGET_TITLE, BUDGET, published=T0 - timedelta(days=30)))
    run(article(HEDONG_TITLE, HEDONG))
    assert run.index.prune(T0 - timedelta(days=1)) == 1
    assert len(run.index) == 1
    copy = article(f"【转载】{HEDONG_TITLE}", HEDONG, source="b")
    assert run(copy).story_id == 1002


def test_disabled_index_never_matches() -> None:
    run = Pipeline(DedupeConfig(enabled=False))
    run(article(BUDGET_TITLE, BUDGET, url="https://a.example/1"))
    decision = run(article(BUDGET_TITLE, BUDGET, url="https://a.example/1", source="b"))
    assert (decision.story_id, decision.stage) == (None, dedupe.STAGE_DISABLED)


def test_lsh_shape_finds_pairs_at_threshold() -> None:
    for threshold in (0.3, 0.6, 0.8):
        bands, rows = dedupe.lsh_shape(threshold)
        assert bands * rows <= dedupe.NUM_PERM
        assert 1 - (1 - threshold**rows) ** bands >= 0.97
    assert dedupe.lsh_shape(0.6) == (32, 4)


# --- compare --------------------------------------------------------------------------------


def _entries(a: Article, b: Article) -> tuple[Entry, Entry]:
    return (
        entry(a, dedupe.fingerprint(a), 2, 2),
        entry(b, dedupe.fingerprint(b), 1, 1),
    )


def test_compare_reports_stage_and_score() -> None:
    original = article(BUDGET_TITLE, BUDGET)
    trimmed = article("Riverside board passes $48 million school budget", BUDGET[1:], source="b")
    decision = dedupe.compare(*_entries(trimmed, original), CONFIG)
    assert decision.story_id == 1 and decision.stage == dedupe.STAGE_NEAR
    assert CONFIG.threshold <= decision.score < 1.0
    assert "Jaccard" in decision.detail
    by_title = dedupe.compare(*_entries(replace(original, url="https://b/1"), original), CONFIG)
    assert by_title.stage == dedupe.STAGE_TEXT  # same body: text hash comes first


def test_compare_explains_a_refusal() -> None:
    decision = dedupe.compare(
        *_entries(article(RALLY_TITLE, RALLY), article(BUDGET_TITLE, BUDGET)), CONFIG
    )
    assert decision.story_id is None and decision.stage == dedupe.STAGE_NEW
    assert "near_duplicate:" in decision.detail and "title:" in decision.detail
    far = article(BUDGET_TITLE, BUDGET, published=T0 + timedelta(days=20))
    outside = dedupe.compare(*_entries(far, article(BUDGET_TITLE, BUDGET)), CONFIG)
    assert outside.story_id is None and "window" in outside.detail


# --- arrange --------------------------------------------------------------------------------


def _copy(id_: int, source: str, hours: int) -> StoredArticle:
    a = article(BUDGET_TITLE, BUDGET, source=source, published=T0 + timedelta(hours=hours))
    return StoredArticle(id=id_, story_id=1, article=a, first_seen=T0, updated=T0)


def test_arrange_orders_by_priority_then_date_then_id() -> None:
    copies = (
        _copy(5, "blog", 0),
        _copy(4, "paper", 3),
        _copy(3, "gov", 5),
        _copy(2, "paper", 1),
        _copy(1, "paper", 1),
    )
    story = Story(id=1, uid="u", first_seen=T0, updated=T0, published=T0, copies=copies)
    arranged = dedupe.arrange(story, {"gov": 10, "paper": 1})
    assert [c.id for c in arranged.copies] == [3, 1, 2, 4, 5]
    assert arranged.preferred.id == 3 and arranged.uid == "u"
    assert [c.id for c in dedupe.arrange(story, {}).copies] == [5, 1, 2, 4, 3]


def test_rebuilt_index_decides_like_the_live_one() -> None:
    run = Pipeline()
    originals = [
        article(BUDGET_TITLE, BUDGET),
        article(HEDONG_TITLE, HEDONG, source="b"),
        article(NOTICE_TITLE, NOTICE, source="moe"),
    ]
    stored = []
    for i, a in enumerate(originals, start=1):
        fp = run.index.fingerprint(a)
        run.index.add(entry(a, fp, 100 + i, i))
        stored.append((a, fp.title_key, fp.doc_number, fp.signature))
    rebuilt = Index(CONFIG)
    for i, (a, key, number, signature) in enumerate(stored, start=1):
        rebuilt.add(entry(a, Fingerprint.from_stored(key, number, signature), 100 + i, i))
    probes = [
        article("Riverside board passes $48 million school budget", BUDGET[1:], source="c"),
        article(f"【转载】{HEDONG_TITLE}", HEDONG[:2], source="c"),
        article("关于做好2024年职业院校学生实习管理工作的通知（教职成厅函[2024]7号）", NOTICE),
    ]
    for probe in probes:
        fp = dedupe.fingerprint(probe)
        live, again = run.index.match(probe, fp), rebuilt.match(probe, fp)
        assert live == again and live.story_id is not None


def test_line_counts_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_LineCounts, "LIMIT", 64)
    index = Index(CONFIG)
    for i in range(30):
        lines = [f"Paragraph {i}-{j} about something else entirely, no repeats." for j in range(10)]
        index.fingerprint(article(f"Item {i} of a busy source today", [*lines, COURIER_FOOTER]))
    counts = index._lines._counts["src-a"]
    assert len(counts) <= 64
    assert counts[dedupe.line_key(dedupe.fold(COURIER_FOOTER))] >= dedupe.BOILERPLATE_REPEATS


def test_naive_times_are_taken_as_utc() -> None:
    aware = article(BUDGET_TITLE, BUDGET)
    naive = replace(aware, published=aware.published.replace(tzinfo=None) + timedelta(days=20))
    decision = dedupe.compare(*_entries(naive, aware), CONFIG)
    assert decision.story_id is None and "20 days" in decision.detail


def test_same_numbered_press_conference_summary_joins_by_title() -> None:
    run = Pipeline()
    run(article("教育部举行2024年第12场新闻发布会", PRESS_12))
    summary = article("【转发】教育部举行2024年第12场新闻发布会", PRESS_12[:1], source="b")
    assert run(replace(summary, content=None)).stage == dedupe.STAGE_TITLE
