"""Pure parsers that turn fetched feeds and pages into items."""
