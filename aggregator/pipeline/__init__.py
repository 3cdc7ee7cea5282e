"""The poll, end to end. The whole flow, kept true:

    sources = due(config, store, now)            # all enabled ones for a manual poll
    fetched = fetch(sources)                      # threads; conditional GET; per-host limit
    items   = parse(fetched)                      # worker processes: feedparser / selectors
    arts    = normalize(items)                    # URLs, titles, nh3 sanitize, hashes, rules
    with store.transaction():                     # one per source: all or nothing
        upsert(arts); assign stories (dedupe); record source health
    build_outputs()                               # Atom + page, written atomically

One broken source yields a report with status `error`; the others go on.

The modules, each importing only those listed before it: `jobs` (`due_sources`, `Outcome`,
the worker-side `parse_and_normalize`, `next_poll_at`), then `scrape` (sources without
feeds), `save` (articles, stories and source health into the store) and `build`
(`build_outputs`), then `poller` (`Poller`: the loop, fetching, saving); an import-linter
contract in pyproject.toml holds that order. What code outside the package uses is imported
here.
"""

# The parsing, dedupe and output stages (numpy, lxml, feedparser, nh3, Jinja2, feedgen) are
# imported where they are first used: a poll in which every source answers 304 never needs
# them, and for such a poll interpreter start-up and imports are most of the wall time.

from .build import build_outputs
from .jobs import Outcome, ParseResult, due_sources, next_poll_at, parse_and_normalize
from .poller import POOL_THRESHOLD, Poller
from .save import load_index

__all__ = [
    "POOL_THRESHOLD",
    "Outcome",
    "ParseResult",
    "Poller",
    "build_outputs",
    "due_sources",
    "load_index",
    "next_poll_at",
    "parse_and_normalize",
]
