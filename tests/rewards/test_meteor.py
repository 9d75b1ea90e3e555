"""METEOR from one long-lived Java process: identical to pycocoevalcap per pair, hand-computed
values, and the process management (restart once, then a clear error; Java missing).

The real JVM costs ~9 s to start, so this module starts two once (ours and pycocoevalcap's)
via module-scoped fixtures; process management is tested against a fake ``java`` (a small
Python script speaking the ``-stdio`` protocol), which starts in milliseconds.
"""

from __future__ import annotations

import shutil
import stat
import sys
import threading
from pathlib import Path

import pytest

from segrl.rewards import make_segment_reward, tokenize
from segrl.rewards.meteor import Meteor, shared_meteor
from tests.conftest import require

needs_java = pytest.mark.usefixtures("java")


@pytest.fixture
def java():
    require(shutil.which("java") is not None, "Java (METEOR runs on it)")

ALPHA, BETA, GAMMA = 0.85, 0.20, 0.60  # METEOR 1.5's English parameters (Denkowski & Lavie, 2014)


def meteor_by_hand(p: float, r: float, chunks: int, matches: float) -> float:
    """Fmean = PR / (alpha P + (1 - alpha) R); penalty = gamma (chunks / matches)^beta."""
    fmean = p * r / (ALPHA * p + (1 - ALPHA) * r)
    return fmean * (1 - GAMMA * (chunks / matches) ** BETA)


PAIRS = [
    ("A red car parked on a road.", ["a red car parked on the street", "A red car next to the road!"]),
    ("dogs playing in a park", ["two dogs play with a ball in the park"]),
    ("a man on a bike", ["a man rides a bicycle down a hill", "a cyclist going down a steep hill"]),
    ("Sales fall in the chart, 2019-2021", ["the bar chart shows sales rising from 2019 to 2021"]),
    ("the x-axis shows 0.16 (log)", ["The x-axis is logarithmic, from 0.16 to 16"]),
    ("cats sleeping on sofas", ["a cat sleeps on a sofa", "a grey cat asleep on the couch", "cat, sofa"]),
]


@pytest.fixture(scope="module")
def meteor():
    require(shutil.which("java") is not None, "Java (METEOR runs on it)")
    m = shared_meteor()
    m.start(wait=False)
    yield m
    m.close()


@pytest.fixture(scope="module")
def pycoco_meteor(meteor):
    from pycocoevalcap.meteor.meteor import Meteor as PycocoMeteor

    m = PycocoMeteor()  # boots while ours does
    yield m
    m.meteor_p.stdin.close()
    m.meteor_p.wait(timeout=30)


def _tok(text: str) -> str:
    return " ".join(tokenize(text))


@needs_java
def test_identical_to_pycocoevalcap_per_pair(meteor, pycoco_meteor):
    preds, refs = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    got = meteor(preds, refs)
    gts = {i: [_tok(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [_tok(p)] for i, p in enumerate(preds)}
    for i, refs_i in gts.items():  # pycocoevalcap, one compute_score per pair
        _, (one,) = pycoco_meteor.compute_score({0: refs_i}, {0: res[i]})
        assert abs(got[i] - one) <= 1e-9
    _, batch = pycoco_meteor.compute_score(gts, res)  # and in one pycocoevalcap batch
    assert max(abs(a - b) for a, b in zip(got, batch)) <= 1e-9
    assert all(0.0 < s < 1.0 for s in got)


@needs_java
def test_hand_computed_values(meteor):
    # All words are content words and match exactly, so P and R are plain ratios.
    preds = ["red car", "red car parked", "parked car red", "A red car parked on the street.", "dogs bark loudly"]
    refs = [["red car parked"], ["red car"], ["red car parked"], ["a red car parked on the street"], ["a cat sleeps"]]
    got = meteor(preds, refs)
    # P 1, R 2/3, one chunk of 2 matches: 0.70175 * (1 - 0.6 * 0.5^0.2) = 0.335207
    assert got[0] == pytest.approx(meteor_by_hand(1, 2 / 3, 1, 2), abs=1e-9)
    assert got[0] == pytest.approx(0.3352067804, abs=1e-9)
    assert got[1] == pytest.approx(meteor_by_hand(2 / 3, 1, 1, 2), abs=1e-9)  # 0.444344
    assert got[2] == pytest.approx(meteor_by_hand(1, 1, 3, 3), abs=1e-9)  # 3 chunks: 1 - 0.6 = 0.4
    assert got[3] == 1.0  # identical after tokenisation: METEOR 1.5 gives no fragmentation penalty
    assert got[4] == 0.0  # nothing matches


@needs_java
def test_batch_shape_none_empty_and_repeats(meteor):
    preds = ["a red car", "", "...", "a red car", None, "a red car"]
    refs = [["a red car"], ["a red car"], ["a red car"], [], ["x"], ["?!", "", "a red car"]]
    assert meteor(preds, refs) == [1.0, 0.0, 0.0, None, 0.0, 1.0]
    # scores do not depend on the rest of the batch, and a repeated pair is scored the same
    solo = [meteor([p], [r])[0] for p, r in PAIRS]
    preds2, refs2 = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    assert meteor(preds2[::-1] + preds2, refs2[::-1] + refs2) == solo[::-1] + solo


@needs_java
def test_large_batch_crosses_chunks(meteor):
    from segrl.rewards.meteor import SCORE_CHUNK

    preds = [f"a red car number {i} parked on the street" for i in range(2 * SCORE_CHUNK + 5)]
    refs = [["a red car parked on the street", f"car {i}"] for i in range(len(preds))]
    got = meteor(preds, refs)
    assert len(got) == len(preds) and all(0.0 < s < 1.0 for s in got)
    assert got[:3] == meteor(preds[:3], refs[:3])


@needs_java
def test_thread_safe(meteor):
    preds, refs = [p for p, _ in PAIRS], [r for _, r in PAIRS]
    expected = meteor(preds, refs)
    results: list = [None] * 4
    errors: list = []

    def work(k: int) -> None:
        try:
            results[k] = meteor(preds[k:] + preds[:k], refs[k:] + refs[:k])
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(4):
        assert results[k] == expected[k:] + expected[:k]


@needs_java
def test_through_score_segments(meteor):
    from segrl.rewards.scorer import score_segments

    labels = [["Answer 1", "Answer 2"]] * 2
    refs = [[["red car parked"], ["a cat sleeps"]], [["red car parked"], [""]]]
    s = score_segments(["Answer 1: red car\nAnswer 2: a cat sleeps", "Answer 2: dogs"], labels, refs, meteor)
    assert s.rewards[0, 0].item() == pytest.approx(meteor_by_hand(1, 2 / 3, 1, 2), abs=1e-6)  # float32
    assert s.rewards[0, 1].item() == 1.0 and s.rewards[1].tolist() == [0.0, 0.0]
    assert s.mask.tolist() == [[True, True], [True, False]]  # row 1, segment 2: no reference token


@needs_java
def test_registry_returns_the_shared_instance(meteor):
    metric = make_segment_reward("meteor", reference_corpus=[["unused"]])
    assert metric is meteor and metric is make_segment_reward("meteor")
    assert metric.__name__ == "meteor"


# --------------------------------------------------------------- process management (no JVM)

FAKE_JAVA = """#!{python}
# Speaks METEOR's -stdio protocol: SCORE -> "<hypothesis tokens> 0"; EVAL -> tokens / 100 each, then 0.0
import os, sys
mode, marker = {mode!r}, {marker!r}
first = not os.path.exists(marker)
if first:
    open(marker, "w").close()
if mode == "always_dies":
    sys.stderr.write("boom: this is not a JVM\\n")
    sys.exit(3)
for line in sys.stdin:
    parts = line.rstrip("\\n").split(" ||| ")
    if parts[0] == "SCORE":
        if mode == "dies_mid_batch" and first:
            sys.exit(1)
        print(len(parts[-1].split()), 0, flush=True)
    elif parts[0] == "EVAL":
        for s in parts[1:]:
            print(float(s.split()[0]) / 100, flush=True)
        print(0.0, flush=True)
        if mode == "dies_after_batch" and first:
            sys.exit(0)
"""


def fake_java(tmp_path: Path, mode: str) -> str:
    path = tmp_path / f"java-{mode}"
    path.write_text(FAKE_JAVA.format(python=sys.executable, mode=mode, marker=str(tmp_path / f"{mode}.started")))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_java_missing_is_a_clear_error():
    m = Meteor(java="no-such-java-for-segrl")
    with pytest.raises(RuntimeError, match="METEOR needs Java: 'no-such-java-for-segrl' was not found"):
        m(["a red car"], [["a red car"]])
    # nothing to send: no process needed, no error
    assert m([], []) == [] and m(["", "x"], [["a"], []]) == [0.0, None]


def test_fake_process_protocol_and_close(tmp_path):
    with Meteor(java=fake_java(tmp_path, "ok")) as m:
        assert m(["a b c", "a b"], [["r"], ["r s"]]) == [0.03, 0.02]
        proc = m._proc
        assert proc.poll() is None and m.starts == 1
    assert proc.wait(timeout=5) == 0  # stdin closed -> the process exited
    assert m._proc is None


@pytest.mark.parametrize("mode", ["dies_after_batch", "dies_mid_batch"])
def test_dead_process_is_restarted_once(tmp_path, mode):
    m = Meteor(java=fake_java(tmp_path, mode))
    try:
        first = m(["a b c"], [["r"]])
        second = m(["a b c d", "a"], [["r"], ["r"]])
    finally:
        m.close()
    assert first == [0.03]
    assert second == [0.04, 0.01]
    assert m.starts == 2


def test_second_failure_raises_with_stderr(tmp_path):
    m = Meteor(java=fake_java(tmp_path, "always_dies"))
    with pytest.raises(RuntimeError, match=r"METEOR process failed twice .*boom: this is not a JVM"):
        m(["a b"], [["a b"]])
    assert m.starts == 2
    m.close()


@pytest.mark.slow
@needs_java
def test_real_jvm_killed_is_restarted():
    m = Meteor()
    try:
        before = m(["red car"], [["red car parked"]])
        m._proc.kill()
        m._proc.wait()
        assert m(["red car"], [["red car parked"]]) == before and m.starts == 2
    finally:
        m.close()
