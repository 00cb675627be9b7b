"""Training presets (YAML), shipped inside the package as ``kptool.presets``."""
