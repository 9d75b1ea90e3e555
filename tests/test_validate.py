"""``segrl validate``: typed config loading, and the dry run on a tiny model + a small dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from datasets import DatasetDict
from typer.testing import CliRunner

from segrl import validate
from segrl.cli import validate as validate_cli
from segrl.config import ConfigError, load_config
from segrl.tasks.base import save_dataset_atomic
from tests.conftest import require

MULTICHART = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multichartqa"

# ------------------------------------------------------------------------------ typed config


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,named",
    [
        ("colour: red\n", "colour"),  # unknown top-level key
        ("data:\n  pathh: data/x\n", "pathh"),  # unknown nested key
        ("model:\n  tiny:\n    layers: 3\n", "layers"),  # unknown key two levels down
        ("train:\n  num_generatons: 4\n", "num_generatons"),  # unknown SegmentGRPOConfig field
    ],
)
def test_unknown_keys_are_errors_naming_file_and_key(tmp_path, text, named):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=named) as err:
        load_config(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "text,named,expected",
    [
        ("sft:\n  max_steps: ten\n", "sft.max_steps", "integer"),
        ("sft:\n  max_steps: 2.5\n", "sft.max_steps", "integer"),
        ("sft:\n  enabled: 1\n", "sft.enabled", "true/false"),
        ("data:\n  test_fraction: a fifth\n", "data.test_fraction", "number"),
        ("data:\n  limit: [1, 2]\n", "data.limit", "integer"),
        ("model: models/tiny\n", "model", "mapping"),
        ("task: 3\n", "task", "string"),
    ],
)
def test_wrong_types_are_errors_naming_the_key(tmp_path, text, named, expected):
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(write(tmp_path, text))
    assert named in str(err.value)


def test_values_are_typed_and_overrides_apply(tmp_path):
    text = "data:\n  test_fraction: 1e-1\n  limit: null\nsft:\n  learning_rate: 3\n"
    cfg = load_config(write(tmp_path, text),
                      ["data.limit=7", "eval.max_new_tokens=12", "train.max_steps=5"])
    assert cfg.data.test_fraction == 0.1 and isinstance(cfg.data.test_fraction, float)  # YAML's "1e-1" string
    assert cfg.sft.learning_rate == 3.0 and isinstance(cfg.sft.learning_rate, float)
    assert (cfg.data.limit, cfg.eval.max_new_tokens, cfg.train["max_steps"]) == (7, 12, 5)


@pytest.mark.parametrize("override,named", [
    ("data.pathh=x", "pathh"),
    ("eval.batch_size=big", "eval.batch_size"),
    ("train.not_a_field=1", "not_a_field"),
])
def test_bad_overrides_name_the_key(tmp_path, override, named):
    with pytest.raises(ConfigError, match=named):
        load_config(write(tmp_path, "task: multichart\n"), [override])


def test_override_without_equals_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_config(None, ["data.path"])
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


# ------------------------------------------------------------------------------ validate


def as_multichart(row):
    return {"task": "multichart"}


@pytest.fixture(scope="module")
def colour_dataset(tmp_path_factory, colour_data) -> Path:
    """The colour rows as a saved train/test DatasetDict whose rows say ``task: multichart``."""
    data = colour_data.map(as_multichart)
    ds = DatasetDict({"train": data.select(range(12)), "test": data.select(range(12, 16))})
    return save_dataset_atomic(ds, tmp_path_factory.mktemp("data") / "colours")


def config(tmp_path: Path, data: Path, model: Path | str, data_options: dict | None = None,
           **sections) -> Path:
    raw = {
        "task": "multichart",
        "output_dir": str(tmp_path / "run"),
        "data": {"path": str(data), **(data_options or {})},
        "model": {"name_or_path": str(model)},
        "train": {"num_generations": 2, "per_device_train_batch_size": 2, "max_steps": 1},
        **sections,
    }
    return write(tmp_path, yaml.safe_dump(raw))


def statuses(report) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def detail(report, name: str) -> str:
    return next(c["detail"] for c in report["checks"] if c["name"] == name)


def cli(*args) -> tuple[int, str]:
    app = typer.Typer()
    app.command()(validate_cli.command)
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_validate_passes_on_tiny_model_and_small_dataset(tmp_path, colour_dataset, colour_tiny_model):
    path = config(tmp_path, colour_dataset, colour_tiny_model)
    report = validate.main(path, [])
    assert report["ok"] is True and report["config"] == str(path)
    assert statuses(report) == {
        "config": "ok", "task": "ok", "dataset": "ok", "schema": "ok", "references parse": "ok",
        "reward accuracy on references": "ok", "reward format on references": "ok",
        "rewards on garbage": "ok", "model": "ok",
    }
    assert "train 12, test 4 rows" in detail(report, "dataset")
    assert "16 rows" in detail(report, "schema")
    assert "generated" in detail(report, "model") and "'c12'" in detail(report, "model")  # first test row
    n_garbage = validate.GARBAGE_ROWS * len(validate.garbage(["Answer 1"], "x"))
    assert detail(report, "rewards on garbage").startswith(f"{n_garbage} garbage completions")

    code, out = cli(path)
    assert code == 0, out
    assert "segrl validate" in out and "model" in out and "FAIL" not in out


def test_unknown_config_key_fails_naming_it(tmp_path, colour_dataset, colour_tiny_model):
    path = config(tmp_path, colour_dataset, colour_tiny_model, eval={"splitt": "test"})
    report = validate.main(path, [])
    assert report["ok"] is False
    assert report["checks"][0]["name"] == "config" and report["checks"][0]["status"] == "FAIL"
    assert "splitt" in report["checks"][0]["detail"] and str(path) in report["checks"][0]["detail"]
    assert set(statuses(report).values()) == {"FAIL", "skip"}  # nothing else could run

    code, out = cli(path)
    assert code == 1 and "splitt" in out
    code, out = cli(config(tmp_path, colour_dataset, colour_tiny_model), "--set", "sft.max_steps=lots")
    assert code == 1 and "sft.max_steps" in out


def corrupted(tmp_path, colour_data, fix) -> Path:
    """A saved dataset whose rows went through ``fix(row) -> dict`` (row ids c0..c15)."""
    data = colour_data.map(lambda row: {"task": "multichart", **fix(row)})
    ds = DatasetDict({"train": data.select(range(12)), "test": data.select(range(12, 16))})
    return save_dataset_atomic(ds, tmp_path / "bad-data")


def test_reference_that_does_not_parse_to_its_segments_fails_naming_the_row(tmp_path, colour_data,
                                                                            colour_tiny_model):
    def fix(row):
        if row["id"] == "c3":  # Answer 2 written twice, the second label misspelt
            return {"reference": row["reference"].replace("Answer 2:", "Answer 2: purple\nAnswr 2:")}
        return {}

    report = validate.main(config(tmp_path, corrupted(tmp_path, colour_data, fix), colour_tiny_model), [])
    assert report["ok"] is False
    st = statuses(report)
    assert st["references parse"] == "FAIL" and st["schema"] == "ok" and st["model"] == "ok"
    msg = detail(report, "references parse")
    assert "train row 'c3'" in msg and "'Answer 2' parses to 'purple\\nAnswr 2:" in msg
    assert "c1'" not in msg  # only the broken row is named
    # The reward on that reference is not the max either, and says which row.
    assert st["reward accuracy on references"] == "FAIL"
    msg = detail(report, "reward accuracy on references")
    assert "train row 'c3': 'Answer 2' reference scores 0, not 1" in msg


def test_schema_problems_name_rows(tmp_path, colour_data, colour_tiny_model):
    def fix(row):
        if row["id"] == "c1":
            return {"segment_references": row["segment_references"][:1]}  # 2 labels, 1 reference list
        if row["id"] == "c2":
            return {"task": "docci"}
        if row["id"] == "c4":
            return {"images": row["images"] * 2}  # one image block (even rows have one image), two images
        if row["id"] == "c5":
            return {"meta": json.dumps({"task_version": 0})}
        if row["id"] == "c13":
            return {"id": "c12"}  # duplicate id in the test split
        return {}

    report = validate.main(config(tmp_path, corrupted(tmp_path, colour_data, fix), colour_tiny_model), [])
    assert statuses(report)["schema"] == "FAIL"
    msg = detail(report, "schema")
    for expected in ("train row 'c1': 2 segment_labels but 1 segment_references",
                     "train row 'c2': task 'docci', config says 'multichart'",
                     "train row 'c4': 1 image block(s) in the prompt but 2 image(s)",
                     "train row 'c5': built by multichart v0, the task is v1",
                     "test row 'c12': duplicate id"):
        assert expected in msg, msg


def test_missing_model_fails_the_model_check_only(tmp_path, colour_dataset):
    report = validate.main(config(tmp_path, colour_dataset, tmp_path / "no-model"), [])
    st = statuses(report)
    assert st["model"] == "FAIL" and "FileNotFoundError" in detail(report, "model")
    assert "no-model" in detail(report, "model")
    assert all(v == "ok" for k, v in st.items() if k != "model")


def test_a_reward_that_crashes_or_leaves_its_range_on_garbage_fails(tmp_path, colour_dataset, monkeypatch):
    from segrl.rewards import make_segment_reward

    accuracy = make_segment_reward("accuracy")

    def fragile(predictions, references):
        if any(len(p) > 10_000 for p in predictions):
            raise IndexError("too long")
        return accuracy(predictions, references)

    path = config(tmp_path, colour_dataset, tmp_path / "model-not-loaded")
    monkeypatch.setattr(validate, "reward_functions", lambda ds, task: {"accuracy": fragile})
    monkeypatch.setattr(validate, "check_model", lambda cfg, ds, metrics: "skipped in this test")
    report = validate.main(path, [])
    assert statuses(report)["rewards on garbage"] == "FAIL" and report["ok"] is False
    msg = detail(report, "rewards on garbage")
    assert "RewardError" in msg and "IndexError: too long" in msg

    def doubled(predictions, references):
        return [None if s is None else 2.0 * s for s in accuracy(predictions, references)]

    monkeypatch.setattr(validate, "reward_functions", lambda ds, task: {"accuracy": doubled})
    report = validate.main(path, [])
    assert statuses(report)["reward accuracy on references"] == "FAIL"
    assert "scores 2.0, outside [0, 1]" in detail(report, "reward accuracy on references")


def test_missing_dataset_is_built_from_source_into_a_temporary_directory(tmp_path, colour_tiny_model):
    require(MULTICHART.is_dir(), f"the real MultiChartQA sample at {MULTICHART}")
    path = config(tmp_path, tmp_path / "not-built", colour_tiny_model,
                  data_options={"source": str(MULTICHART), "max_image_side": 56})
    report = validate.main(path, [])
    assert report["ok"] is True, report
    assert "not found at" in detail(report, "dataset") and "built 4 examples" in detail(report, "dataset")
    assert not (tmp_path / "not-built").exists()  # nothing written where training will look
