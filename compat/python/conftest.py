"""pytest configuration for the Python client-compatibility suite (see kavka_fixtures)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kavka_fixtures import *  # noqa: E402,F401,F403
from kavka_fixtures import pytest_runtest_makereport  # noqa: E402,F401
