"""Crash-anywhere resume: SIGKILLed ``segrl train`` processes resume to the uninterrupted result.

The fast test kills one run twice, inside checkpoint writing (``optimizer.pt`` half written) and
inside the ``latest`` update (its temporary file written, not renamed); ``make test-faults`` runs the
full campaign, 24 kill points drawn from every point of :mod:`segrl.faults` with seed 0.
"""

import json
import os
from pathlib import Path

import pytest
from datasets import DatasetDict
from harness import run_campaign

FULL_KILLS = int(os.environ.get("SEGRL_FAULT_KILLS", "24"))


@pytest.fixture(scope="module")
def job_data(tmp_path_factory, colour_data):
    path = tmp_path_factory.mktemp("faults") / "data"
    DatasetDict(train=colour_data, test=colour_data.select(range(4))).save_to_disk(str(path))
    return path


def test_kill_inside_checkpoint_write_and_latest_update(tmp_path, colour_warm_model, job_data):
    campaign = run_campaign(tmp_path, colour_warm_model[0], job_data, kills=2,
                            faults=["torn:optimizer.pt@2", "marker_tmp@1"])
    first, second = campaign.kills
    # Killed half-way through checkpoint-4's optimizer.pt: the next launch resumes from checkpoint-2, the
    # last one marked complete, and leaves the torn checkpoint-4 aside.
    assert first["resumed_from"] is None and second["torn_on_disk"] == ["checkpoint-4"]
    assert Path(second["resumed_from"]).name == "checkpoint-2"
    (run,) = campaign.trajectories
    assert run["launches"] == 3 and run["equal"] and run["param_diff"] <= 1e-6 and run["reward_diff"] <= 1e-6
    assert campaign.summary()["torn_checkpoints_seen_at_resume"] == 1


@pytest.mark.slow
def test_crash_anywhere_campaign(tmp_path, colour_warm_model, job_data):
    """``make test-faults``: >= 20 seeded kill points; prints the summary (and writes it to
    ``$SEGRL_FAULT_SUMMARY`` when set)."""
    campaign = run_campaign(tmp_path, colour_warm_model[0], job_data, kills=FULL_KILLS, seed=0)
    summary = campaign.summary()
    print(json.dumps(summary, indent=1))
    if os.environ.get("SEGRL_FAULT_SUMMARY"):
        Path(os.environ["SEGRL_FAULT_SUMMARY"]).write_text(json.dumps({**summary, "kills": campaign.kills,
                                                                        "runs": campaign.trajectories}, indent=1))
    assert summary["kill_points"] >= 20 and summary["runs_finished"] == summary["runs_equal_1e-6"] >= 1
    assert len(summary["points"]) >= 8  # the draws cover mid-step, checkpoint pieces, record, latest, timer
