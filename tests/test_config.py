"""`aggregator check`: a valid config gets a summary, a broken one names the key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ROOT, run_cli

VALID = """\
database: sqlite:///data/x.db
poll: {interval: 30m, timeout: 20s}
sources:
  - name: One
    url: https://one.example.org/feed
  - name: Two
    url: https://two.example.org/rss
    interval: 2h
"""


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    result = run_cli("-c", str(path), "check")
    assert "Traceback" not in result.err
    return result.code, result.out + result.err


def test_valid_config_prints_a_summary(tmp_path: Path) -> None:
    code, out = check(tmp_path, VALID)
    assert code == 0
    assert out.startswith("config ok: 2 sources (2 enabled: 2 feed)")
    assert len(out.strip().splitlines()) == 1


def test_shipped_config_is_valid() -> None:
    result = run_cli("-c", str(ROOT / "config.yaml"), "check")
    assert result.code == 0, result.err
    sources = result.out.split("config ok: ")[1].split(" sources")[0]
    assert int(sources) >= 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            VALID.replace("    interval: 2h", "    intervall: 2h"),
            "sources[1].intervall (line 8): unknown key",
        ),
        (
            VALID.replace("name: Two", "name: One"),
            "sources[1].name (line 6): duplicate source name 'One'",
        ),
        (
            VALID.replace("https://two.example.org/rss", "file:///etc/passwd"),
            "sources[1].url (line 7): 'file:///etc/passwd' is not an http(s) URL",
        ),
        (
            VALID.replace("https://one.example.org/feed", "ftp://one.example.org/feed"),
            "sources[0].url (line 5)",
        ),
        (
            VALID.replace("interval: 2h", "interval: 2 fortnights"),
            "sources[1].interval (line 8): invalid duration",
        ),
        (VALID.replace("timeout: 20s", "timeout: soon"), "poll.timeout (line 2): invalid duration"),
        (
            VALID.replace("  - name: Two\n", "  - name: Two\n   bad: [\n"),
            "YAML syntax error at line",
        ),
        (VALID + "output: {id: not a uri}\n", "output.id (line 9): 'not a uri' is not a valid URI"),
        (VALID + "sources2: []\n", "sources2 (line 9): unknown key"),
        (
            VALID.replace("    url: https://one.example.org/feed\n", ""),
            "sources[0].url (line 4): required key is missing",
        ),
        (VALID + "poll: {}\n", "poll: duplicate key (line 9)"),
        (
            VALID.replace("name: One", "name: One\n    timezone: Mars/Base"),
            "sources[0].timezone (line 5): unknown time zone",
        ),
    ],
)
def test_broken_config_names_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    code, out = check(tmp_path, text)
    assert code == 2
    assert expected in out


def test_environment_variables_expand_and_unset_ones_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = VALID.replace("https://one.example.org/feed", "https://one.example.org/${FEED_PATH}")
    monkeypatch.setenv("FEED_PATH", "atom.xml")
    assert check(tmp_path, text)[0] == 0
    monkeypatch.delenv("FEED_PATH")
    code, out = check(tmp_path, text)
    assert code == 2 and "FEED_PATH is not set" in out and "sources[0].url (line 5)" in out


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("-c", str(tmp_path / "nope.yaml"), "check")
    assert result.code == 2
    assert "config file not found" in result.err


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator.config import load_config

    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "config.yaml").write_text(VALID, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = load_config("conf/config.yaml")
    assert config.database == f"sqlite:///{folder.resolve()}/data/x.db"
    assert config.output.atom_path == folder.resolve() / "public" / "feed.atom"
    assert config.output.html_path == folder.resolve() / "public" / "index.html"


def test_unwritable_database_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    path = tmp_path / "config.yaml"
    path.write_text(
        VALID.replace("sqlite:///data/x.db", "sqlite:///data/sub/x.db"), encoding="utf-8"
    )
    result = run_cli("-c", str(path), "build")
    assert result.code == 3
    assert "cannot open database" in result.err and "Traceback" not in result.err
