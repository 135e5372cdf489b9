"""Shared test configuration.

`pytester` runs the plugin's tests in subprocesses. Under CI, hypothesis runs
derandomized so a run is reproducible; locally it explores new examples every time, and
``TRACSEQ_HYPOTHESIS_PROFILE=long`` explores far longer.
"""

import os

from hypothesis import settings

pytest_plugins = ["pytester"]

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
# TRACSEQ_HYPOTHESIS_PROFILE=long: a longer local exploration of every property.
settings.register_profile("long", deadline=None, max_examples=20_000)
settings.load_profile(
    os.environ.get("TRACSEQ_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)
