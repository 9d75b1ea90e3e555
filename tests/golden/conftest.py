"""Make ``golden.py`` (the runner shared with ``make golden-update``) importable from the tests."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
