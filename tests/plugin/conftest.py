"""pytester runs whole pytest sessions in a subprocess, the plugin loaded by its entry point."""

pytest_plugins = ["pytester"]
