"""Which box convention a grounding run's answers use: exact or loose (``segrl.tasks.grounding.loose_box``).

``python -m segrl.analysis.box_modes DATA EVAL_DIR [PAD]`` prints, for the greedy answers (``predictions.jsonl``) and the
sampled ones (``predictions_sampled.jsonl``, when there), the share of predicted objects that the Hungarian matching
(:func:`segrl.rewards.grounding.match_objects`) pairs with a target whose box is *exact* (mean L1 < 10 px to the
target's box, VisionReasoner's L1 hit) or *loose* (mean L1 < 10 px to the target's loose box at ``PAD``, default
0.25), the rest being *other*; one JSON line per file. The diagnostic of the v12-v15 pilots (results/drseg/NOTES.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from datasets import load_from_disk

from segrl.rewards.grounding import L1_THRESHOLD, match_objects, parse_answer, targets_from_references
from segrl.tasks.grounding import loose_box


def box_modes(records: list[dict], rows: dict, pad: float = 0.25) -> dict[str, float]:
    """The box conventions of a run's answers.

    Args:
        records: ``[{"id", "completion"}]`` (a ``predictions*.jsonl``'s lines). rows: id -> the row
            (``segment_references``, ``meta`` with ``image_size``). pad: the loose annotator's margin.

    Returns:
        ``{"exact", "loose", "other"}``: shares (rounded to 3 places) of the predicted objects the Hungarian
        matching pairs with a target (so at most ``min(M, N)`` per answer; unmatched extra objects are not counted),
        and ``objects``, their number. An object is exact when its mean L1 to the target's box is below
        VisionReasoner's 10 px, loose when that holds for :func:`~segrl.tasks.grounding.loose_box` of the target
        instead (the two cannot both hold for a box of side > 20 px at pad 0.25).

    Raises:
        KeyError: a record's id is not in ``rows``.
    """
    counts = {"exact": 0, "loose": 0, "other": 0}
    for rec in records:
        row = rows[rec["id"]]
        size = tuple(json.loads(row["meta"])["image_size"])
        targets = targets_from_references(row["segment_references"])
        preds = parse_answer(rec["completion"]).objects
        m = match_objects(preds, targets)
        for i, j in zip(m.rows, m.cols):
            box = np.array(preds[i].bbox, dtype=float)
            if np.abs(box - np.array(targets[j].bbox)).mean() < L1_THRESHOLD:
                counts["exact"] += 1
            elif np.abs(box - np.array(loose_box(targets[j].bbox, pad, size))).mean() < L1_THRESHOLD:
                counts["loose"] += 1
            else:
                counts["other"] += 1
    n = sum(counts.values())
    return {**{k: round(v / n, 3) if n else 0.0 for k, v in counts.items()}, "objects": n}


def main(data: str, eval_dir: str, pad: float = 0.25) -> None:
    """Print one JSON line of :func:`box_modes` per predictions file of ``eval_dir`` (test split of ``data``)."""
    ds = load_from_disk(data)
    rows = {r["id"]: r for r in ds["test"].select_columns(["id", "segment_references", "meta"]).to_list()}
    for name in ("predictions.jsonl", "predictions_sampled.jsonl"):
        path = Path(eval_dir) / name
        if path.exists():
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            print(json.dumps({"file": str(path), **box_modes(records, rows, pad)}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(float(a) for a in sys.argv[3:4]))
