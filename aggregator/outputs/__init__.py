"""Outputs built from stories: the Atom feed and the HTML page. Pure: bytes in memory;
the pipeline writes them (atomically)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_CJK = re.compile(r"[\u3400-\u9fff]")


def is_chinese(text: str) -> bool:
    return bool(_CJK.search(text))


def also_label(text: str) -> str:
    return "同时刊发于：" if is_chinese(text) else "Also published by: "


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of one: temp file + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
