"""Reading config.yaml: one YAML parse that also records the line of every key, `${NAME}`
expanded from the environment, relative paths resolved against the config file's folder,
then `models.Config`. Every error names the key path and its line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import ConfigError
from .models import Config, _KeyedError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: Path


def _line_map(
    node: yaml.Node, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]
) -> None:
    """Record the 1-based line of every key path; duplicate keys are an error."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise ConfigError(
                    f"{_fmt((*path, key))}: duplicate key (line {key_node.start_mark.line + 1})"
                )
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            _line_map(child, (*path, index), lines)


def _fmt(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def _expand_env(
    value: Any, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]
) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, (*path, k), lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*path, i), lines) for i, v in enumerate(value)]
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"{_fmt(path)} (line {_line_of(path, lines)}): environment variable {name} is not set"
                )
            return os.environ[name]

        return _ENV.sub(repl, value)
    return value


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths mean relative to the config file, not to the working directory."""
    db = data.get("database")
    if isinstance(db, str) and db.startswith("sqlite:///") and not db.startswith("sqlite:////"):
        rest = db[len("sqlite:///") :]
        if rest and not rest.startswith(":memory:"):
            data["database"] = "sqlite:///" + str(base / rest)
    output = data.get("output")
    output = output if isinstance(output, dict) else {}
    for key, default in (("atom_path", "public/feed.atom"), ("html_path", "public/index.html")):
        output[key] = str(base / str(output.get(key, default)))
    if "output" in data or output:
        data["output"] = output
    digest = data.get("digest")
    if isinstance(digest, dict):
        if isinstance(digest.get("templates"), str):
            digest["templates"] = str(base / digest["templates"])
        smtp = digest.get("smtp")
        if isinstance(smtp, dict) and isinstance(smtp.get("ca_file"), str):
            smtp["ca_file"] = str(base / smtp["ca_file"])


def parse_config(text: str, base: Path, name: str = "config.yaml") -> Config:
    """Validate config text; every error names the key path and its line in `name`."""
    try:
        kind = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~15x faster
        loader = kind(text)
        try:  # one parse: the node tree gives the lines, and the data is built from it
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{name}: YAML syntax error at {where}: {problem}") from None
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _line_map(node, (), lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{name}: the top level must be a mapping of keys (database, poll, sources, ...)"
        )
    data = _expand_env(data, (), lines)
    _resolve_paths(data, base)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, lines, name)) from None


def _describe(exc: ValidationError, lines: dict[tuple[str | int, ...], int], name: str) -> str:
    messages = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        ctx_error = (error.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _KeyedError):
            loc = ctx_error.loc
        loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        line = _line_of(loc, lines)
        where = f" (line {line})" if line else ""
        messages.append(f"{_fmt(loc)}{where}: {message}")
    return f"{name}: invalid config:\n  " + "\n  ".join(messages)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return parse_config(text, path.resolve().parent, str(path))
