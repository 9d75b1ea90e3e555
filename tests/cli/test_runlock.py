"""One writer per run directory: a second process is refused at once, naming the holder; a dead
holder's lock is taken over and reported."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from segrl.cli import app
from segrl.runlock import LOCK_NAME, RunLockedError, acquire, run_lock

REPO = Path(__file__).resolve().parents[2]
HOLD = "import sys, time; from segrl.runlock import acquire; acquire(sys.argv[1], 'segrl train (holder)'); " \
       "print('held', flush=True); time.sleep(120)"


@pytest.fixture
def holder(tmp_path):
    """A real second process holding the lock of ``tmp_path / 'run'``; yields (run dir, process)."""
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    yield run, proc
    proc.kill()
    proc.wait()


def test_second_writer_fails_at_once_naming_the_holder(holder, tmp_path):
    run, proc = holder
    with pytest.raises(RunLockedError, match=rf"in use by pid {proc.pid} on host {socket.gethostname()} "
                                             r"\(segrl train \(holder\)\)"):
        acquire(run)
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({"task": "multichart", "output_dir": str(run),
                                      "data": {"path": str(tmp_path)}, "train": {"max_steps": 1}}))
    for argv in (["train", "--config", str(config)],
                 ["eval", "multichart", "--model", "hub/id", "--data", str(tmp_path), "--out", str(run)]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2, result.output
        assert f"in use by pid {proc.pid}" in result.output and len(result.output.strip().splitlines()) == 1


def test_dead_holder_is_detected_and_reported(holder, capsys):
    run, proc = holder
    os.kill(proc.pid, signal.SIGKILL)  # dies holding it: the file stays, the kernel lock goes
    proc.wait()
    assert (run / LOCK_NAME).exists()
    with run_lock(run) as lock:
        assert lock.stale["pid"] == proc.pid and lock.holder["pid"] == os.getpid()
        assert f"its holder, pid {proc.pid} on host" in capsys.readouterr().err
        with pytest.raises(RunLockedError):  # held again, now by this process
            acquire(run)
    assert not (run / LOCK_NAME).exists()  # a clean release removes the file
    with run_lock(run) as lock:
        assert lock.stale is None and "stale" not in capsys.readouterr().err
