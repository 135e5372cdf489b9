"""Shared test configuration.

`pytester` runs the plugin's tests in subprocesses. Under CI, hypothesis runs
derandomized so a run is reproducible; locally it explores new examples every time.
"""

import os

from hypothesis import settings

pytest_plugins = ["pytester"]

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
