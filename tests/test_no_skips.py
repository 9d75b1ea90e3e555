"""Tests fail, never skip, where CI has what they need (../shared/data, Java, the pinned dependencies)."""

import re
from pathlib import Path

import pytest

from tests.conftest import require

TESTS = Path(__file__).resolve().parent


def test_require_fails_instead_of_skipping():
    with pytest.raises(pytest.fail.Exception, match="the thing is missing; CI has it"):
        require(False, "the thing")
    require(True, "the thing")


def test_no_test_skips_on_something_ci_has():
    pattern = re.compile(r"importorskip\(|skipif\([^)]*(shared|MULTICHART|SOURCE|java|find_spec|exists\(\))"
                         r"|pytest\.skip\([^)]*(not found|Java|install)", re.IGNORECASE)
    found = [f"{p.relative_to(TESTS)}:{n}" for p in sorted(TESTS.rglob("*.py")) if p.name != "test_no_skips.py"
             for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []
