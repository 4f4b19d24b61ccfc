"""The package's public surface is explicit and stable (DESIGN.md rule 10)."""

import wardgate


def test_public_surface_is_pinned():
    assert sorted(wardgate.__all__) == sorted([
        "Action", "Config", "ConfigError", "Exchange", "Outcome", "Pipeline", "Stage", "Verdict", "__version__",
        "create_app", "load_config", "load_config_text"])
    for name in wardgate.__all__:
        assert hasattr(wardgate, name), name
