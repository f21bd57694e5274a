"""Reading the YAML data files (catalog, criteria, profiles, simulator assumptions)."""

from __future__ import annotations

from typing import Any

import yaml

# libyaml's parser when PyYAML was built with it (its wheels are), else the pure-Python one: the same documents
# and errors, 8x faster on the packaged data (0.37 -> 0.05 s of CPU for the 26 files, 185 KB), which every
# process start and every simulator worker pays.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """Parse one YAML document safely (as `yaml.safe_load`); raises `yaml.YAMLError` on bad input."""
    return yaml.load(text, Loader=_LOADER)
