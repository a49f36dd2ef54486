"""Typed, frozen configuration: TOML in, `Config` out, errors that name file and key."""

from wsgate.config.load import ConfigError, load_config, parse_config, single_pool_config
from wsgate.config.model import Address, Config, PoolConfig, RouteConfig, ServerConfig

__all__ = [
    "Address",
    "Config",
    "ConfigError",
    "PoolConfig",
    "RouteConfig",
    "ServerConfig",
    "load_config",
    "parse_config",
    "single_pool_config",
]
