"""Stories -> the HTML page (Jinja2): the latest stories and the subscribe link."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from jinja2 import Environment, PackageLoader, select_autoescape

from ..config import OutputConfig
from ..model import Story
from . import also_label
from .atom import self_url

_env = Environment(
    loader=PackageLoader("aggregator.outputs", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_page(
    stories: Sequence[Story], output: OutputConfig, source_urls: Mapping[str, str], now: datetime
) -> bytes:
    template = _env.get_template("index.html")
    return template.render(
        title=output.title,
        feed_url=self_url(output),
        stories=stories,
        built=now,
        also_label=also_label,
        source_urls=source_urls,
    ).encode("utf-8")
