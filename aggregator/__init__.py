"""Education-news aggregator: poll sources, deduplicate reprints, republish Atom and a digest."""

__version__ = "0.1.0"
