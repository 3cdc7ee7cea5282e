"""After a poll: the Atom file and the page rebuilt from the store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from ..config import Config
from ..store import Store


def build_outputs(config: Config, store: Store, now: datetime) -> int:
    """Rebuild the Atom file and the page from the store; returns the number of entries."""
    from .. import dedupe
    from ..outputs import write_atomic
    from ..outputs.atom import render_atom
    from ..outputs.page import render_page

    priorities = {s.name: s.priority for s in config.sources}
    stories = [
        dedupe.arrange(s, priorities) for s in store.recent_stories(config.output.max_entries)
    ]
    urls = {s.name: s.url for s in config.sources}
    write_atomic(Path(config.output.atom_path), render_atom(stories, config.output, urls, now))
    write_atomic(Path(config.output.html_path), render_page(stories, config.output, urls, now))
    return len(stories)
