"""`serve`'s settings from the environment: each variable stands for one flag, and a flag
given on the command line wins over its variable. For the settings that change per host
or container (where the unit file or image stays the same).

    WSGATE_CONFIG      --config FILE
    WSGATE_LISTEN      --listen, comma-separated: "0.0.0.0:8080,[::]:8080"
    WSGATE_UPSTREAMS   --upstream, comma-separated
    WSGATE_WORKERS     --workers N
    WSGATE_ADMIN       --admin HOST:PORT
    WSGATE_PID_FILE    --pid-file PATH (also read by `wsgate reload`)
    WSGATE_LOG_FORMAT  --log-format json|text
    WSGATE_LOG_LEVEL   --log-level debug|info|warning|error

An empty variable counts as unset. Pure: the arguments and a mapping in, the arguments
out, or a ConfigError naming the variable.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from wsgate.config.load import ConfigError
from wsgate.observe.log import FORMATS, LEVELS

SOURCE = "environment"
# variable -> (attribute of the parsed arguments, kind)
VARIABLES: dict[str, tuple[str, str]] = {
    "WSGATE_CONFIG": ("config", "text"),
    "WSGATE_LISTEN": ("listen", "list"),
    "WSGATE_UPSTREAMS": ("upstream", "list"),
    "WSGATE_WORKERS": ("workers", "count"),
    "WSGATE_ADMIN": ("admin", "text"),
    "WSGATE_PID_FILE": ("pid_file", "text"),
    "WSGATE_LOG_FORMAT": ("log_format", "format"),
    "WSGATE_LOG_LEVEL": ("log_level", "level"),
}
# What a flag that was not given, and has no variable set, means.
DEFAULTS: dict[str, object] = {"workers": 1, "log_format": "json", "log_level": "info"}


def apply_environment(args: argparse.Namespace, environ: Mapping[str, str]) -> list[str]:
    """Fill every flag not given on the command line (None or []) from its variable,
    else its default. Returns the names of the variables used."""
    used = []
    for name, (attr, kind) in VARIABLES.items():
        if not hasattr(args, attr):
            continue
        value = environ.get(name, "").strip()
        if getattr(args, attr) not in (None, []) or not value:
            if getattr(args, attr) is None and attr in DEFAULTS:
                setattr(args, attr, DEFAULTS[attr])
            continue
        setattr(args, attr, _parse(name, kind, value))
        used.append(name)
    return used


def _parse(name: str, kind: str, value: str) -> object:
    if kind == "list":
        items = [item.strip() for item in value.split(",") if item.strip()]
        if not items:
            raise ConfigError(SOURCE, name, "comma-separated HOST:PORT addresses", value)
        return items
    if kind == "count":
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(SOURCE, name, "an integer >= 1", value)
        return int(value)
    if kind == "format" and value not in FORMATS:
        raise ConfigError(SOURCE, name, f"one of {', '.join(FORMATS)}", value)
    if kind == "level" and value not in LEVELS:
        raise ConfigError(SOURCE, name, f"one of {', '.join(LEVELS)}", value)
    return value
