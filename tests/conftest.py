"""Shared test configuration: `pytester` runs the plugin's tests in subprocesses."""

pytest_plugins = ["pytester"]
