"""Completion records: a torn checkpoint is never chosen (skipped with a message, or refused)."""

import json

import pytest

from segrl.trainers.checkpoint import (
    COMPLETE,
    MARKER,
    ResumeError,
    resolve_resume,
    torn_reason,
    write_completion_record,
)


def checkpoint(out, step, record=True):
    c = out / f"checkpoint-{step}"
    c.mkdir(parents=True)
    for name in ("trainer_state.json", "optimizer.pt", "scheduler.pt", "model.safetensors", "rng_state.pth"):
        (c / name).write_bytes(b"x" * 10)
    if record:
        write_completion_record(c)
    return c


def test_record_lists_sizes_and_detects_truncation(tmp_path):
    c = checkpoint(tmp_path, 2)
    assert json.loads((c / COMPLETE).read_text())["files"]["optimizer.pt"] == 10
    assert torn_reason(c) is None
    (c / "optimizer.pt").write_bytes(b"x" * 5)  # a write cut short
    assert torn_reason(c) == "optimizer.pt has 5 bytes, recorded 10"
    (c / "rng_state.pth").unlink()
    assert "rng_state.pth" in torn_reason(c)
    (c / COMPLETE).unlink()
    assert "no completion record" in torn_reason(c)


def test_marker_wins_newer_torn_skipped_named_torn_refused(tmp_path, capsys):
    checkpoint(tmp_path, 2)
    (tmp_path / MARKER).write_text("checkpoint-2\n")
    checkpoint(tmp_path, 4, record=False)  # killed mid-save after latest was last moved
    assert resolve_resume("auto", tmp_path) == str(tmp_path / "checkpoint-2")
    assert "skipping checkpoint-4, newer than latest: no completion record" in capsys.readouterr().err

    (tmp_path / "checkpoint-2" / "optimizer.pt").write_bytes(b"x")  # the marked one torn later (disk fault)
    with pytest.raises(ResumeError, match="checkpoint-2 .* is torn, refusing it: optimizer.pt has 1 bytes"):
        resolve_resume("auto", tmp_path)
    with pytest.raises(ResumeError, match="is torn"):
        resolve_resume(str(tmp_path / "checkpoint-2"), tmp_path)


def test_no_marker_uses_newest_recorded_else_starts_fresh(tmp_path, capsys):
    checkpoint(tmp_path, 2, record=False)
    assert resolve_resume("auto", tmp_path) is None  # only a torn one: fresh start, said so
    assert "skipping torn" in capsys.readouterr().err
    checkpoint(tmp_path, 4)  # killed between its record and latest
    assert resolve_resume("auto", tmp_path) == str(tmp_path / "checkpoint-4")
