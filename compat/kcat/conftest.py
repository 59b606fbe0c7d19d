"""pytest configuration for the kcat suite: the same broker fixtures as compat/python."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

from kavka_fixtures import *  # noqa: E402,F401,F403
from kavka_fixtures import pytest_runtest_makereport  # noqa: E402,F401
