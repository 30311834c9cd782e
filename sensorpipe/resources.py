"""Files that ship inside the package: the detectors and the example configuration files.

They live in the package folder, so a checkout and an installed wheel find them the same way.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
MODELS = PACKAGE_DIR / "models"
EXAMPLE_CONFIG_DIR = PACKAGE_DIR / "config"
# Name on the command line (`sensorpipe config example NAME`) -> file in EXAMPLE_CONFIG_DIR.
EXAMPLE_CONFIGS = {
    "edge": "edge.example.toml",
    "edge-camera": "edge-camera.example.toml",
    "gateway": "gateway.example.toml",
    "ingest": "ingest.example.toml",
    "registry": "registry.example.toml",
    "serve": "serve.example.toml",
}


def example_config(name: str) -> Path:
    """The path of the example configuration `name` (a key of EXAMPLE_CONFIGS)."""
    return EXAMPLE_CONFIG_DIR / EXAMPLE_CONFIGS[name]
