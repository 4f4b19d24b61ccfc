"""wardgate: a reverse-proxy LLM gateway with guardrails."""

from wardgate.app import create_app
from wardgate.config import Config, ConfigError, load_config, load_config_text
from wardgate.exchange import Action, Exchange, Outcome, Verdict
from wardgate.pipeline import Pipeline, Stage

__all__ = [
    "Action",
    "Config",
    "ConfigError",
    "Exchange",
    "Outcome",
    "Pipeline",
    "Stage",
    "Verdict",
    "__version__",
    "create_app",
    "load_config",
    "load_config_text",
]

__version__ = "0.1.0"
