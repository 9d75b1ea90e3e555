"""Controlled chart QA (task ``charts``): tables, question answers by hand, rendering, determinism, schema."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest
import statsmodels  # noqa: E402,F401  (pinned dependencies: a missing one is an error, not a skip)
import vega_datasets  # noqa: E402,F401
from datasets import load_from_disk

from segrl.rewards.accuracy import parse_number
from segrl.segments import parse_segments
from segrl.tasks import TASKS
from segrl.tasks.base import FEATURES, DataError, format_instruction
from segrl.tasks.chartgen import (
    COLOURS,
    TABLES,
    TEMPLATES,
    VISUAL_TEMPLATES,
    ChartSpec,
    Table,
    build,
    load_table,
    order_pool,
    question_pool,
    render_chart,
    visual_question,
    y_limits,
)

PACKAGES = {
    **dict.fromkeys(["stocks", "iowa-electricity", "us-employment", "seattle-weather", "barley"], "vega_datasets"),
    **dict.fromkeys(["grunfeld", "macro-rates", "co2", "sunspots", "nile"], "statsmodels"),
    "yahoo-stocks": "matplotlib",
}

# --- the tables, checked against the packages' rows by hand ---------------------------------------


def test_table_values_by_hand():
    iowa = load_table("iowa-electricity")
    i = iowa.x.index("2001")
    assert (iowa.values["fossil fuels"][i], iowa.values["nuclear"][i], iowa.values["renewables"][i]) == (
        35361.0, 3853.0, 1437.0)
    stocks = load_table("stocks")
    # AAPL's 12 monthly prices in 2000: 25.94 28.66 33.95 31.01 21.00 26.19 25.41 30.47 12.88 9.78 8.25 7.44
    assert stocks.values["AAPL"][stocks.x.index("2000")] == pytest.approx(260.98 / 12, abs=1e-4)
    assert stocks.x == tuple(str(y) for y in range(2000, 2010))  # 2010 has 3 months: left out
    barley = load_table("barley")
    assert barley.categorical and barley.x[-1] == "Waseca" and barley.values["Trebi"][-1] == 63.8333
    seattle = load_table("seattle-weather")
    assert seattle.x[0] == "Jan" and seattle.values["year 2012"][0] == pytest.approx(7.0548, abs=1e-4)
    nile = load_table("nile")
    assert nile.x[:2] == ("1871", "1872") and nile.values["Nile"][:2] == (1120.0, 1160.0)


def test_every_table_loads_with_six_or_more_points():
    assert sorted(TABLES) == sorted(PACKAGES)
    for name in TABLES:
        t = load_table(name)
        assert len(t.x) >= 6 and t.values, name
        assert all(len(v) == len(t.x) for v in t.values.values()), name
        # A series name is an answer (``larger``): one that reads as a number would be scored with the
        # 5 % numeric tolerance ("2014" would pass for "2012").
        assert not any(parse_number(s) is not None for s in t.values), (name, list(t.values))


def test_missing_package_and_unknown_table(monkeypatch):
    monkeypatch.setitem(sys.modules, "vega_datasets", None)  # import now raises ImportError
    with pytest.raises(DataError, match="needs the PyPI package vega_datasets"):
        load_table("stocks")
    with pytest.raises(DataError, match="unknown chart table 'nope'"):
        load_table("nope")


# --- questions on a hand-made table ---------------------------------------------------------------

HAND = Table("hand", "test", "year", tuple(str(y) for y in range(2000, 2006)),
             {"a": (1.0, 2.0, 3.0, 4.0, 5.0, 10.0), "b": (6.0, 5.0, 4.0, 3.0, 2.0, 1.0)}, "units")
CHARTS = [ChartSpec("line", 0, 6, ("a", "b"), ("red", "blue")), ChartSpec("bar", 0, 6, ("b",), ("green",))]


def test_y_limits_by_hand():
    # values 1..10, padded by 8 % of 9 = 0.72 on each side
    assert y_limits(HAND, CHARTS) == (0.28, 10.72)
    flat = Table("f", "test", "year", HAND.x, {"c": (5.0,) * 6}, "u")
    assert y_limits(flat, [ChartSpec("line", 0, 6, ("c",), ("red",))]) == (4.0, 6.0)  # pad max(1, 0.5)


def test_question_pool_answers_by_hand():
    pool = question_pool(HAND, CHARTS, (0.28, 10.72), random.Random(0))
    plain = {q.text: q.answer for q in pool if q.template not in ("larger", "peak")}
    assert plain == {
        "What type of chart is Chart 1: line, bar or scatter?": "line",
        "What type of chart is Chart 2: line, bar or scatter?": "bar",
        "How many data series does Chart 1 show?": "2",
        "How many data series does Chart 2 show?": "1",
        "What colour is the a series in Chart 1?": "red",
        "What colour is the b series in Chart 1?": "blue",
        "What colour is the b series in Chart 2?": "green",
        "In Chart 1, does a go up or down from 2000 to 2005?": "up",  # 1 -> 10
        "In Chart 1, does b go up or down from 2000 to 2005?": "down",  # 6 -> 1
        "In Chart 2, does b go up or down from 2000 to 2005?": "down",
        "Which chart reaches the highest value: Chart 1 or Chart 2?": "Chart 1",  # 10 vs 6
        # lowest: both charts reach 1, a tie: not asked
    }
    (larger,) = [q for q in pool if q.template == "larger"]
    year = larger.text.split(" at ")[1].split(":")[0]
    j = HAND.x.index(year)
    assert larger.answer == ("a" if HAND.values["a"][j] > HAND.values["b"][j] else "b")
    peaks = [q for q in pool if q.template == "peak"]
    assert len(peaks) == 3 and all(q.type == "multiple-choice" for q in peaks)
    for q, year in zip(peaks, ["2005", "2000", "2000"]):  # a peaks at 10 (2005); b at 6 (2000)
        options = dict(line.split(". ", 1) for line in q.text.split("\n")[1:])
        assert sorted(options) == ["A", "B", "C", "D"] and options[q.answer] == year
        assert len(set(options.values())) == 4
    assert len(pool) == 15


def test_margins_keep_invisible_comparisons_out():
    # Iowa fossil fuels peak in 2010 (42750) only 16 GWh above 2008 (42734): no peak question.
    iowa = load_table("iowa-electricity")
    start = iowa.x.index("2005")
    chart = ChartSpec("line", start, start + 8, ("fossil fuels",), ("red",))
    ylim = y_limits(iowa, [chart])
    assert not [q for q in question_pool(iowa, [chart], ylim, random.Random(0)) if q.template == "peak"]
    ys = chart.ys(iowa, "fossil fuels")
    assert max(ys) == 42750.0 and sorted(ys)[-2] == 42734.0


def test_order_pool_interleaves_templates():
    pool = question_pool(HAND, CHARTS, (0.28, 10.72), random.Random(0))
    ordered = order_pool(list(pool), random.Random(1))
    assert sorted(map(id, ordered)) == sorted(map(id, pool))  # a permutation
    present = {q.template for q in pool}
    assert len({q.template for q in ordered[: len(present)]}) == len(present)  # one of each first
    again = order_pool(question_pool(HAND, CHARTS, (0.28, 10.72), random.Random(0)), random.Random(1))
    assert [q.text for q in again] == [q.text for q in ordered]


# --- rendering --------------------------------------------------------------------------------------


def _near(rgb: np.ndarray, hex_colour: str, tol: int = 40) -> int:
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb.astype(int) - target).max(axis=-1) < tol).sum())


@pytest.mark.parametrize("kind", ["line", "bar", "scatter"])
def test_render_shows_the_series_colour_only(kind):
    chart = ChartSpec(kind, 0, 6, ("a",), ("red",))
    img = render_chart(HAND, chart, (0.28, 10.72), 112)
    assert img.mode == "RGB" and img.size == (112, 112)
    rgb = np.asarray(img)
    assert _near(rgb, COLOURS["red"]) > 30
    assert _near(rgb, COLOURS["blue"]) == 0 and _near(rgb, COLOURS["green"]) == 0
    assert (rgb > 240).all(axis=-1).mean() > 0.5  # mostly white background


def test_bars_rise_with_their_values():
    # Single bar chart of a = 1..5, 10: the last bar's coloured column is the tallest.
    rgb = np.asarray(render_chart(HAND, ChartSpec("bar", 0, 6, ("a",), ("blue",)), (0.0, 11.0), 112))
    blue = np.abs(rgb.astype(int) - [0x1F, 0x77, 0xB4]).max(axis=-1) < 40
    heights = blue.sum(axis=0)
    cols = np.flatnonzero(heights)
    assert heights[cols[-1]] > 2 * heights[cols[0]]


# --- the dataset -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("charts")
    out = {}
    for K in (1, 4):
        stats: dict = {}
        ds = build(None, root / f"k{K}", questions_per_answer=K, count=8, chart_side=64, seed=3, stats=stats)
        out[K] = (ds, stats, root / f"k{K}")
    return out


def test_rows_follow_the_schema(built):
    ds, stats, path = built[4]
    assert TASKS.get("charts").build is build
    assert stats["examples"] == 8 and stats["groups_skipped"] == 0 and stats["segments"] == 32
    assert (len(ds["train"]), len(ds["test"])) == (6, 2)
    back = load_from_disk(str(path))
    checked = 0
    for split in back.values():
        assert split.features == FEATURES
        for row in split:
            labels = row["segment_labels"]
            assert labels == ["Answer 1", "Answer 2", "Answer 3", "Answer 4"] and row["task"] == "charts"
            assert parse_segments(row["reference"], labels).texts == [r[0] for r in row["segment_references"]]
            meta = json.loads(row["meta"])
            n = meta["n_images"]
            assert 2 <= n <= 3 and len(row["images"]) == n
            assert all(im.size == (64, 64) and im.mode == "RGB" for im in row["images"])
            blocks = row["prompt"][0]["content"]
            assert [b["type"] for b in blocks] == ["text", "image"] * n + ["text"]
            assert blocks[-1]["text"].endswith(format_instruction(labels))
            assert set(meta["templates"]) <= set(TEMPLATES) and meta["n_segments"] == 4
            assert meta["source"] == f"{PACKAGES[meta['table']]}:{meta['table']}"
            # one alignment description per chart: its type, series count and colours, as drawn
            assert meta["image_descriptions"] == [" ".join([c["type"], str(len(c["series"])), *c["colours"]])
                                                  for c in meta["charts"]]
            checked += _check_answers_against_meta(row, meta)
    assert checked >= 16  # of the 32 segments, those whose answer meta pins down were recomputed




def _check_answers_against_meta(row, meta):
    """Recompute the answers that meta pins down exactly (type, count, colour, highest/lowest, trend);
    returns how many were checked."""
    text = row["prompt"][0]["content"][-1]["text"]
    checked = 0
    for k, (template, ref) in enumerate(zip(meta["templates"], row["segment_references"]), 1):
        question = text.split(f"Answer {k} question: ")[1].split("\n\n")[0]
        c = meta["segment_charts"][k - 1]
        chart = meta["charts"][c - 1] if c else None
        if template == "type":
            assert ref == [chart["type"]]
        elif template == "count":
            assert ref == [str(len(chart["series"]))]
        elif template == "colour":
            name = question.split("What colour is the ")[1].split(" series in")[0]
            assert ref == [chart["colours"][chart["series"].index(name)]]
        elif template in ("highest", "lowest"):
            pick = max if template == "highest" else min
            vals = [pick(v for ys in ch["values"].values() for v in ys) for ch in meta["charts"]]
            assert ref == [f"Chart {vals.index(pick(vals)) + 1}"]
        elif template == "trend":
            series = question.split(", does ")[1].split(" go up")[0]
            ys = chart["values"][series]
            assert ref == ["up" if ys[-1] > ys[0] else "down"]
        else:
            continue
        checked += 1
    return checked


def test_k_questions_are_nested_and_split_is_the_same(built):
    (ds1, _, _), (ds4, _, _) = built[1], built[4]
    for split in ("train", "test"):
        assert ds1[split]["id"] == ds4[split]["id"]  # same groups, same held-out ones, for every K
        for r1, r4 in zip(ds1[split].select_columns(["segment_references", "meta"]),
                          ds4[split].select_columns(["segment_references", "meta"])):
            assert r4["segment_references"][:1] == r1["segment_references"]
            assert json.loads(r4["meta"])["charts"] == json.loads(r1["meta"])["charts"]


def test_build_is_deterministic(built, tmp_path):
    ds, _, _ = built[4]
    again = build("synthetic", tmp_path / "again", questions_per_answer=4, count=8, chart_side=64, seed=3)
    cols = ["id", "prompt", "segment_references", "reference", "meta"]
    assert again["test"].select_columns(cols).to_list() == ds["test"].select_columns(cols).to_list()
    a = [np.asarray(im) for im in again["test"][0]["images"]]
    b = [np.asarray(im) for im in ds["test"][0]["images"]]
    assert all((x == y).all() for x, y in zip(a, b))
    other = build(None, tmp_path / "other", questions_per_answer=4, count=8, chart_side=64, seed=4)
    assert other["test"]["meta"] != ds["test"]["meta"]


def test_visual_question_by_hand():
    ylim = (0.28, 10.72)
    # Chart 1 has two series: only type (line) and count (2) need no legend
    seen = {visual_question(HAND, CHARTS[0], 3, ylim, random.Random(r)) for r in range(40)}
    assert {(q.template, q.text, q.answer, q.chart) for q in seen} == {
        ("type", "What type of chart is Chart 3: line, bar or scatter?", "line", 3),
        ("count", "How many data series does Chart 3 show?", "2", 3)}
    # Chart 2, one series b (6 -> 1, a fall of 5 >= 10 % of the 10.44 span): all four templates
    seen = {visual_question(HAND, CHARTS[1], 1, ylim, random.Random(r)) for r in range(40)}
    assert {(q.template, q.answer) for q in seen} == {("type", "bar"), ("count", "1"), ("colour", "green"),
                                                      ("trend", "down")}
    assert all("Chart 1" in q.text for q in seen)


def test_chart_per_question_layout(tmp_path):
    ds = build(None, tmp_path / "cpq", questions_per_answer=3, count=12, chart_side=48, seed=1,
               chart_per_question=True)
    checked = 0
    for split in ds.values():
        for row in split:
            meta = json.loads(row["meta"])
            assert meta["layout"] == "chart-per-question" and meta["n_images"] == 3 == len(row["images"])
            assert meta["segment_charts"] == [1, 2, 3] and set(meta["templates"]) <= set(VISUAL_TEMPLATES)
            text = row["prompt"][0]["content"][-1]["text"]
            for k, template in enumerate(meta["templates"], 1):
                assert f"Chart {k}" in text.split(f"Answer {k} question: ")[1].split("\n\n")[0]
                if template in ("colour", "trend"):  # only asked where no legend is needed
                    assert len(meta["charts"][k - 1]["series"]) == 1
            checked += _check_answers_against_meta(row, meta)
    assert checked == 3 * 12  # every answer recomputed from meta
    default = build(None, tmp_path / "default", questions_per_answer=3, count=4, chart_side=48, seed=1)
    assert "layout" not in json.loads(default["train"][0]["meta"])


def test_skip_when_the_pool_is_too_small_and_bad_options(tmp_path):
    # co2 alone, K = 40: no pool is that large, so every group is skipped; nothing is written.
    with pytest.raises(DataError, match="no train example with 40 questions"):
        build(None, tmp_path / "big", questions_per_answer=40, count=4, chart_side=48, tables=["co2"])
    assert not (tmp_path / "big").exists()
    with pytest.raises(DataError, match="unknown chart table"):
        build(None, tmp_path / "t", count=4, tables=["nope"])
    for kwargs, match in [({"questions_per_answer": 0}, "questions_per_answer"), ({"count": 1}, "count"),
                          ({"chart_side": 8}, "chart_side"), ({"test_fraction": 2.0}, "test_fraction")]:
        with pytest.raises(ValueError, match=match):
            build(None, tmp_path / "x", **kwargs)
    with pytest.raises(ValueError, match="source must be None or 'synthetic'"):
        build("../shared/data/multichartqa", tmp_path / "x")
    assert not (tmp_path / "t").exists() and not (tmp_path / "x").exists()
