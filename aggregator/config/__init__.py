"""config.yaml -> Config: validated with pydantic, errors name the key path and the line.

Relative paths are resolved against the config file's folder, `${NAME}` expands from the
environment, unknown keys are errors. `models` holds the models and the value parsers, `load`
reads the file; the names other modules use are imported from here.
"""

from .load import LoadedConfig, load_config, parse_config
from .models import (
    Config,
    DedupeConfig,
    DigestConfig,
    Duration,
    OutputConfig,
    PollConfig,
    Recipient,
    Regex,
    Rule,
    Selector,
    Selectors,
    ServerConfig,
    Size,
    SmtpConfig,
    SourceConfig,
    Zone,
    check_http_url,
    crontab_trigger,
    parse_duration,
    parse_size,
    split_selector,
)

__all__ = [
    "Config",
    "DedupeConfig",
    "DigestConfig",
    "Duration",
    "LoadedConfig",
    "OutputConfig",
    "PollConfig",
    "Recipient",
    "Regex",
    "Rule",
    "Selector",
    "Selectors",
    "ServerConfig",
    "Size",
    "SmtpConfig",
    "SourceConfig",
    "Zone",
    "check_http_url",
    "crontab_trigger",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
    "split_selector",
]
