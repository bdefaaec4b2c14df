"""The router's configuration: :mod:`~router.config.schema` says what a valid config is,
:mod:`~router.config.load` reads ``config.yaml`` into one (every problem with its path).

A config with any problem raises :class:`ConfigError`; nothing half-valid is ever served.
"""

from router.config.load import DEFAULT_CONFIG, ConfigError, load_config, parse_config
from router.config.schema import (
    AdminConfig,
    BackendConfig,
    Config,
    HealthConfig,
    KeyConfig,
    LimitsConfig,
    MetricsConfig,
    ModelConfig,
    QueueConfig,
    RedisConfig,
    RetryConfig,
    ServerConfig,
    StoreConfig,
    Timeouts,
    TlsConfig,
    TokenEstimateConfig,
)

__all__ = [
    "DEFAULT_CONFIG",
    "AdminConfig",
    "BackendConfig",
    "Config",
    "ConfigError",
    "HealthConfig",
    "KeyConfig",
    "LimitsConfig",
    "MetricsConfig",
    "ModelConfig",
    "QueueConfig",
    "RedisConfig",
    "RetryConfig",
    "ServerConfig",
    "StoreConfig",
    "Timeouts",
    "TlsConfig",
    "TokenEstimateConfig",
    "load_config",
    "parse_config",
]
