"""docci's ``layout="images"``: K separate panel images whose pixels do not change with K (the Tables' testbed)."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from segrl.tasks.docci import build, synthetic_row
from segrl.tasks.panels import SceneSpec, render_panel


def test_each_panel_is_its_own_image_at_every_k():
    one = synthetic_row(3, panels=1, panel_side=56, seed=0, layout="images", max_objects=1)
    four = synthetic_row(3, panels=4, panel_side=56, seed=0, layout="images", max_objects=1)
    for row, k in ((one, 1), (four, 4)):
        assert len(row["images"]) == k and [c["type"] for c in row["prompt"][0]["content"]] == ["image"] * k + ["text"]
        meta = json.loads(row["meta"])
        assert meta["layout"] == "images" and meta["max_objects"] == 1 and "panel_boxes" not in meta
        assert all(len(s["objects"]) == 1 for s in meta["scene_specs"])
        for im, spec in zip(row["images"], meta["scene_specs"]):
            pixels = np.asarray(Image.open(io.BytesIO(im["bytes"])).convert("RGB"))
            assert pixels.shape == (56, 56, 3)  # the panel's pixels, not a share of a grid
            assert np.array_equal(pixels, np.asarray(render_panel(SceneSpec.from_dict(spec), 56)))
    assert "The images are panels 1 to 4, in order." in four["prompt"][0]["content"][-1]["text"]
    assert one["prompt"][0]["content"][-1]["text"].startswith("The image is panel 1.")


def test_grid_layout_is_unchanged_by_default():
    row = synthetic_row(0, panels=4, panel_side=56, seed=0)
    meta = json.loads(row["meta"])
    assert len(row["images"]) == 1 and meta["layout"] == [2, 2] and len(meta["panel_boxes"]) == 4
    assert "max_objects" not in meta


def test_bad_layout_and_docci_only_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="option 'layout'"):
        synthetic_row(0, panels=2, panel_side=56, seed=0, layout="mosaic")
    with pytest.raises(ValueError, match="source_kind='synthetic'"):
        build(tmp_path, tmp_path / "out", source_kind="docci", layout="images")
    assert not (tmp_path / "out").exists()
