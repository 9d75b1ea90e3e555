"""Tasks: one TaskSpec each; `segrl build-data TASK` and `validate` are generated from its typed options."""

import dataclasses

import pytest
from typer.testing import CliRunner

from segrl.cli import app
from segrl.tasks import TASKS
from segrl.tasks.base import BuildOptions
from segrl.tasks.mmsci import MMSciOptions

BUILT_IN = ("charts", "docci", "grounding", "mmsci", "multichart")


def test_every_task_has_typed_options_with_the_shared_fields():
    assert set(BUILT_IN) <= set(TASKS.names())  # more may join, each from its own module
    for name in TASKS:
        spec = TASKS.get(name)
        assert issubclass(spec.options, BuildOptions) and dataclasses.is_dataclass(spec.options)
        names = {f.name for f in dataclasses.fields(spec.options)}
        assert {"seed", "size", "test_fraction"} <= names
    for name in BUILT_IN:  # their builders name the size limit or count: builder_names maps it
        kwargs = TASKS.get(name).options().builder_kwargs()
        assert "size" not in kwargs and ("limit" in kwargs or "count" in kwargs)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_build_data_offers_every_option_of_the_task(name):
    result = CliRunner().invoke(app, ["build-data", name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = result.output
    for f in TASKS.get(name).options.option_fields():
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-")).split("/")[0]
        assert flag in text, (name, flag)
    assert ("--seed" in text) == ("seed" not in TASKS.get(name).options.unused)  # MMSci keeps its own splits


def test_mmsci_refuses_the_shared_options_it_does_not_use():
    with pytest.raises(ValueError, match="does not use test_fraction=0.5"):
        MMSciOptions(test_fraction=0.5)
    assert "seed" not in MMSciOptions(size=3).builder_kwargs()


def test_the_older_size_spellings_still_work(tmp_path):
    out = tmp_path / "g"
    result = CliRunner().invoke(app, ["build-data", "grounding", "--out", str(out), "--count", "3",
                                      "--image-side", "112", "--plain"])
    assert result.exit_code == 0, result.output
    assert "train: 2 examples" in result.output and "test: 1 examples" in result.output
    bad = CliRunner().invoke(app, ["build-data", "grounding", "--out", str(out), "--size", "1"])
    assert bad.exit_code == 2 and "build-data grounding failed" in bad.output
