"""Shared fixture for the Makefile tests: run a real `make` target against a stand-in `segrl` that only records
its arguments (one line per call in ``calls.txt``) and its ``PYTHONPATH`` (``pythonpath.txt``)."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def run_make():
    """``run_make(cwd, target, *overrides)`` -> `subprocess.CompletedProcess` of ``make -f Makefile target`` in
    ``cwd`` with ``SEGRL`` set to the stand-in (``cwd/fake-segrl``) and ``cwd/scripts`` linked to the repo's."""
    def run(cwd: Path, target: str, *overrides: str, timeout: int = 120) -> subprocess.CompletedProcess:
        if not (cwd / "scripts").exists():
            (cwd / "scripts").symlink_to(REPO / "scripts")
        fake = cwd / "fake-segrl"
        fake.write_text('#!/bin/sh\necho "$@" >> calls.txt\necho "$PYTHONPATH" >> pythonpath.txt\n')
        fake.chmod(0o755)
        return subprocess.run(
            ["make", "-f", str(REPO / "Makefile"), "-o", ".venv/.installed", target, f"SEGRL={fake}", *overrides],
            cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "SEGRL": str(fake)},
        )
    return run
