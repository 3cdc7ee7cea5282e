"""The README is the contract: every command, flag and config key appears in it."""

from __future__ import annotations

import argparse

from pydantic import BaseModel

from aggregator.cli import _parser
from aggregator.config import (
    Config,
    DigestConfig,
    Recipient,
    Rule,
    Selectors,
    SmtpConfig,
    SourceConfig,
)

from .conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _keys(model: type[BaseModel], prefix: str) -> list[str]:
    return [f"{prefix}{name}" for name in model.model_fields]


def test_every_config_key_is_documented() -> None:
    expected = ["database", "rules", "digest", "sources"]
    for section in ("poll", "output", "server", "dedupe"):
        field = Config.model_fields[section].annotation
        assert isinstance(field, type) and issubclass(field, BaseModel)
        expected += _keys(field, f"{section}.")
    expected += [f"`{k}`" for k in SourceConfig.model_fields if k != "selectors"]
    expected += _keys(Selectors, "selectors.")
    expected += [
        k for k in _keys(DigestConfig, "digest.") if k not in ("digest.smtp", "digest.recipients")
    ]
    expected += _keys(SmtpConfig, "digest.smtp.")
    expected += _keys(Recipient, "digest.recipients[].")
    expected += [f"{k}:" for k in Rule.model_fields]
    missing = [key for key in expected if key not in README]
    assert not missing, f"README lacks config keys: {missing}"


def test_every_command_and_flag_is_documented() -> None:
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, command in sub.choices.items():
        if f"aggregator {name}" not in README:
            missing.append(name)
        for action in command._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help" and flag not in README:
                    missing.append(f"{name} {flag}")
    assert not missing, f"README lacks: {missing}"
    for target in ("make run", "make test", "make lint"):
        assert target in README
