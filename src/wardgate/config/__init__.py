"""Configuration: YAML files validated once, at the edge, into frozen objects."""

from wardgate.config.load import ConfigError, Problem, load_config, load_config_text
from wardgate.config.schema import Config

__all__ = ["Config", "ConfigError", "Problem", "load_config", "load_config_text"]
