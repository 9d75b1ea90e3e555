"""Make ``harness.py`` (shared by the fast test and ``make test-faults``) importable from the tests."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
