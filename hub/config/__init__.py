"""Configuration: `hub.toml` and the secrets file, validated into typed settings."""

from hub.config.loader import ConfigError, ConfigProblem, default_config_path, load_secrets, load_settings
from hub.config.settings import Secrets, Settings

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "Secrets",
    "Settings",
    "default_config_path",
    "load_secrets",
    "load_settings",
]
