"""Layers point one way: neutral modules <- tasks, rewards <- trainers (read from the import statements)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "segrl"
NEUTRAL = ("segrl.segments", "segrl.grounding_objects", "segrl.prompts", "segrl.registry")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (top level and inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def segrl_imports(package: str) -> dict[str, set[str]]:
    return {p.name: {m for m in imports(p) if m.startswith("segrl.")} for p in sorted((ROOT / package).glob("*.py"))}


def test_rewards_import_no_task_and_no_trainer():
    bad = {f: sorted(m for m in ms if m.startswith(("segrl.tasks", "segrl.trainers"))) for f, ms in
           segrl_imports("rewards").items()}
    assert {f: m for f, m in bad.items() if m} == {}


def test_tasks_import_no_reward_and_no_trainer():
    bad = {f: sorted(m for m in ms if m.startswith(("segrl.rewards", "segrl.trainers"))) for f, ms in
           segrl_imports("tasks").items()}
    assert {f: m for f, m in bad.items() if m} == {}


def test_trainers_import_no_task_module():
    """Only ``train.py``, the composition root of ``segrl train``, reads the task registry; the
    trainers may use the row schema's helpers (``segrl.tasks.base``) and nothing else of ``segrl.tasks``."""
    found = {}
    for f, ms in segrl_imports("trainers").items():
        tasks = sorted(m for m in ms if m.startswith("segrl.tasks") and not m.startswith("segrl.tasks.base"))
        if tasks and f != "train.py":
            found[f] = tasks
    assert found == {}


@pytest.mark.parametrize("module", NEUTRAL)
def test_neutral_modules_import_no_layer_above(module):
    path = ROOT.parent / (module.replace(".", "/") + ".py")
    above = sorted(m for m in imports(path) if m.startswith(("segrl.tasks", "segrl.rewards", "segrl.trainers")))
    assert above == []
