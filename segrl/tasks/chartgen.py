"""Controlled multi-chart long-form QA: charts drawn from real tables, answers computed from the tables.

The offline counterpart of :mod:`segrl.tasks.multichart` (task ``charts``, built by
``segrl build-data charts``): the same prompt and row schema, but every chart is rendered here
with matplotlib from a real table that ships inside a PyPI package, and every answer is
computed exactly from the numbers drawn, so a CPU experiment has a learning signal and
nothing is downloaded.

Tables (:data:`TABLES`; yearly/monthly means are computed here from the package's rows):

========================  ==================  ===========================================================
name                      package             series (x)
========================  ==================  ===========================================================
``stocks``                vega_datasets       AAPL, AMZN, IBM, MSFT: mean monthly price (2000-2009, the
                                              years with 12 months; GOOG has only 5 such years)
``iowa-electricity``      vega_datasets       fossil fuels, nuclear, renewables: net generation (2001-2017)
``us-employment``         vega_datasets       construction, manufacturing, finance, leisure, information:
                                              mean monthly jobs in thousands (2006-2015)
``seattle-weather``       vega_datasets       year 2012 ... year 2015: mean daily max temperature (Jan-Dec)
``barley``                vega_datasets       6 varieties: 1931 yield (x = 6 sites, categorical)
``grunfeld``              statsmodels         6 firms: gross investment (1935-1954)
``macro-rates``           statsmodels         unemployment, inflation, T-bill rate: yearly mean of
                                              quarters (1959-2008)
``co2``                   statsmodels         CO2: yearly mean of weekly Mauna Loa ppm (1959-2001)
``sunspots``              statsmodels         sunspots: yearly activity (1700-2008)
``nile``                  statsmodels         Nile: yearly flow (1871-1970)
``yahoo-stocks``          matplotlib          ADBE, AAPL, IBM, MSFT, XRX: mean price of the listed
                                              dates per year (1990-2019)
========================  ==================  ===========================================================

A missing package is a :class:`~segrl.tasks.base.DataError` naming it.

Bad items (the policy shared by every builder, :mod:`segrl.tasks.build_log`; one item = one
drawn chart group): a table whose data is malformed (:func:`check_table`: repeated x labels, a
series of the wrong length, a value that is not a finite number; or a loader that breaks on its
package's data) stays in the draw, so no other group changes, and every group that draws it is
skipped and listed in ``build_log.jsonl`` (file ``<package>:<table>``, the field, the reason),
as is a group whose windows leave no complete series. ``strict`` raises on a malformed table at
once. A group whose pool has fewer than K questions is *excluded* (step 4), not bad.

Example ``i`` (a chart group) uses only ``random.Random(f"chartgen:{seed}:{i}")``, so it does not
depend on ``count``, ``questions_per_answer`` or the other examples:

1. a table (uniform over the chosen ``tables``) and 2 or 3 charts; per chart a window of 6-10
   consecutive x values (categorical tables: every category), 1-3 series with no missing value
   in the window, a chart type (``line``, ``bar``, ``scatter``; categorical: ``bar``,
   ``scatter``) and one colour per series from :data:`COLOURS` (distinct within the chart);
2. one y range shared by the group's charts (the data's min..max padded by 8 %; bars rise from
   its bottom, so a bar's height is its value's position in the range, as a line's is), so
   heights compare across charts; "span" below is that range's length;
3. the question pool (:func:`question_pool`), every answer computed from the table:

   ================  =========================================================  ==================
   template          question                                                   answer
   ================  =========================================================  ==================
   ``type``          What type of chart is Chart c: line, bar or scatter?       ``line``
   ``count``         How many data series does Chart c show?                    ``2``
   ``colour``        What colour is the S series in Chart c?                    ``red``
   ``trend``         In Chart c, does S go up or down from x0 to x1?            ``up`` / ``down``
   ``highest``       Which chart reaches the highest value: Chart 1, ... ?      ``Chart 2``
   ``lowest``        Which chart reaches the lowest value: Chart 1, ... ?       ``Chart 1``
   ``larger``        In Chart c, which is larger at x: S1 or S2?                ``S1``
   ``peak``          In Chart c, at which year is S highest? A. .. D. (4 x's)   ``C``
   ================  =========================================================  ==================

   A comparison is asked only when its margin is visible: ``trend`` when ``|y(x1) - y(x0)|
   >= 10 %`` of the span (time tables only; x0, x1 = the window's ends), ``highest`` /
   ``lowest`` / ``larger`` / ``peak`` when the winner beats the runner-up by >= 5 % of the span.
   ``peak`` offers the argmax and 3 other x values of the window, in random order (in x order
   the answer would mostly be A or D: a series often peaks at a window end).
4. the pool's order (:func:`order_pool`): templates in a random order, then one question of
   each template in turn (each template's questions shuffled) until all are used. An example
   with ``questions_per_answer = K`` asks the first K, so the questions of K = 1 are among those
   of K = 2, 4, 8 for the same group. A pool of fewer than K questions is **skipped and
   counted** (never shortened: K must be exact in every row, as in ``multichart``).

**One chart per question** (``chart_per_question``, ``--chart-per-question``): step 1 draws K charts (not 2
or 3) and step 3-4 ask question k about Chart k, one of the templates a tiny policy can see
(:data:`VISUAL_TEMPLATES`: ``type``, ``count``, and on a one-series chart ``colour`` and ``trend``),
drawn uniformly among those chart k supports (:func:`visual_question`). So segment k reads image k,
as a docci panel does, and the pixels and image tokens per question stay the same at every K (the
K = 1 questions are then not those of K = 4: the groups differ). ``meta.layout`` is
``"chart-per-question"`` (absent in the default layout).

Which templates a tiny policy at 56-112 px can learn: ``type``, ``count``, ``highest`` /
``lowest`` and, on one-series charts, ``colour`` and ``trend`` need no text in the image;
``larger``, ``peak`` and multi-series ``colour`` / ``trend`` need the legend or axis labels.
Measured once (400 groups, seed 0, charts downscaled to 56 x 56): a ridge-regression probe on
raw pixels, trained on the train charts, gets on the held-out charts ``type`` 1.00 (majority
0.35), ``count`` 0.88 (0.47), one-series ``colour`` 0.87 (0.27), one-series ``trend`` 0.86
(0.68): the visual answers are in the pixels at the tiny model's resolution.

Row (schema in :mod:`segrl.tasks.base`; the prompt is :func:`segrl.tasks.multichart.chart_prompt`):

* ``id``: ``charts-<seed>-<i:05d>``; ``task``: ``"charts"``; ``images``: the 2-3 charts
  (RGB, ``chart_side`` x ``chart_side`` px); ``segment_labels``: ``Answer 1`` ... ``Answer K``;
  ``segment_references``: ``[[answer]]`` per segment; ``reference``: the canonical answer.
* ``meta`` (JSON): ``task_version``, ``source`` (``"<package>:<table>"``), ``table``,
  ``questions_per_answer``, ``seed``, ``index``, ``chart_side``, ``ylim``, ``charts`` (per
  chart: ``type``, ``series``, ``colours``, ``x`` labels, ``values`` {series: [y, ...]}),
  ``templates`` / ``answer_types`` / ``segment_charts`` (per segment; ``segment_charts`` is the
  chart index, None for ``highest`` / ``lowest``), ``pool_size``, ``n_images``, ``n_segments``,
  ``image_descriptions`` (per chart, :func:`describe_chart`: what the alignment stage trains on).

Split: ``count`` groups (ids) split by :func:`segrl.tasks.multichart.split_groups` with ``seed``
(before any group is skipped, so the held-out groups are the same for every K); the test split
is held-out chart groups of the same tables (same distribution, different windows, series,
types and colours).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from datasets import Dataset, DatasetDict
from PIL import Image

from segrl.segments import format_answer
from segrl.tasks.base import FEATURES, BuildOptions, DataError, TaskSpec, make_meta, png_value
from segrl.tasks.build_log import DEFAULT_MAX_SKIP_FRACTION, BadItem, BuildLog, save_with_log
from segrl.tasks.multichart import chart_prompt, split_groups

COLOURS = {"red": "#d62728", "blue": "#1f77b4", "green": "#2ca02c", "orange": "#ff7f0e", "purple": "#9467bd"}
"""Series colours by answer name (matplotlib's tab10 hues, far apart at 56 px)."""

CHART_TYPES = ("line", "bar", "scatter")
TEMPLATES = ("type", "count", "colour", "trend", "highest", "lowest", "larger", "peak")
VISUAL_TEMPLATES = ("type", "count", "colour", "trend")
"""The templates of the one-chart-per-question layout: answered from a chart's pixels alone (``colour`` and
``trend`` asked only of one-series charts, where no legend is needed)."""
TREND_MARGIN = 0.10  # fraction of the shared y span
COMPARE_MARGIN = 0.05


@dataclass(frozen=True)
class Table:
    """A real table as charts see it: ``values[s][j]`` is series ``s`` at ``x[j]`` (None = missing).

    Attributes:
        name: :data:`TABLES` key. package: the PyPI package it comes from.
        x_name: what x is (``year``, ``month``, ``site``); categorical: x has no order (no trend).
        x: x labels as shown and asked (``"2003"``, ``"Jun"``). unit: the y axis label.
    """

    name: str
    package: str
    x_name: str
    x: tuple[str, ...]
    values: dict[str, tuple[float | None, ...]]
    unit: str
    categorical: bool = False


def _table(name, package, x_name, frame, unit, categorical=False) -> Table:
    """``frame``: a pandas DataFrame indexed by x (labels via ``str``), one column per series."""
    x = tuple(str(v) for v in frame.index)
    values = {
        str(c): tuple(None if v != v else round(float(v), 4) for v in frame[c].tolist()) for c in frame.columns
    }
    return Table(name, package, x_name, x, values, unit, categorical)


def _vega(name: str):
    try:
        from vega_datasets import local_data
    except ImportError as e:
        raise DataError(f"table {name!r} needs the PyPI package vega_datasets (pip install vega_datasets)") from e
    return local_data


def _statsmodels(name: str):
    try:
        import statsmodels.api as sm
    except ImportError as e:
        raise DataError(f"table {name!r} needs the PyPI package statsmodels (pip install statsmodels)") from e
    return sm.datasets


def _stocks() -> Table:
    df = _vega("stocks").stocks()
    df["year"] = df["date"].dt.year
    g = df.groupby(["year", "symbol"])["price"]
    mean = g.mean().where(g.count() == 12).unstack()  # complete years only (2010 has 3 months)
    mean = mean.loc[2000:2009, ["AAPL", "AMZN", "IBM", "MSFT"]]
    return _table("stocks", "vega_datasets", "year", mean, "price ($)")


def _iowa() -> Table:
    df = _vega("iowa-electricity").iowa_electricity()
    wide = df.pivot(index="year", columns="source", values="net_generation")
    wide.index = wide.index.year
    wide = wide.rename(columns={"Fossil Fuels": "fossil fuels", "Nuclear Energy": "nuclear",
                                "Renewables": "renewables"})
    return _table("iowa-electricity", "vega_datasets", "year", wide, "net generation (GWh)")


def _employment() -> Table:
    import pandas as pd

    df = _vega("us-employment").us_employment()
    df["year"] = pd.to_datetime(df["month"]).dt.year
    cols = {"construction": "construction", "manufacturing": "manufacturing",
            "financial_activities": "finance", "leisure_and_hospitality": "leisure", "information": "information"}
    wide = df.groupby("year")[list(cols)].mean().rename(columns=cols)
    return _table("us-employment", "vega_datasets", "year", wide, "jobs (thousands)")


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _seattle() -> Table:
    df = _vega("seattle-weather").seattle_weather()
    df["year"], df["month"] = df["date"].dt.year, df["date"].dt.month
    wide = df.groupby(["month", "year"])["temp_max"].mean().unstack()
    wide.index = [_MONTHS[m - 1] for m in wide.index]
    wide.columns = [f"year {y}" for y in wide.columns]  # a bare "2012" answer would be scored as a number
    return _table("seattle-weather", "vega_datasets", "month", wide, "max temperature (C)")


def _barley() -> Table:
    df = _vega("barley").barley()
    varieties = ["Glabron", "Manchuria", "Peatland", "Svansota", "Trebi", "Velvet"]
    wide = df[(df["year"] == 1931) & df["variety"].isin(varieties)].pivot(
        index="site", columns="variety", values="yield")
    wide.index = [{"University Farm": "Univ Farm"}.get(s, s) for s in wide.index]
    return _table("barley", "vega_datasets", "site", wide, "yield (bushels/acre)", categorical=True)


def _grunfeld() -> Table:
    df = _statsmodels("grunfeld").grunfeld.load_pandas().data
    firms = ["General Electric", "Chrysler", "Westinghouse", "IBM", "Atlantic Refining", "Union Oil"]
    wide = df[df["firm"].isin(firms)].pivot(index="year", columns="firm", values="invest")
    wide.index = wide.index.astype(int)
    return _table("grunfeld", "statsmodels", "year", wide, "investment ($M)")


def _macro() -> Table:
    df = _statsmodels("macro-rates").macrodata.load_pandas().data
    g = df.groupby(df["year"].astype(int))
    wide = g[["unemp", "infl", "tbilrate"]].mean().where(g.size() == 4, axis=0).dropna()  # complete years
    wide = wide.rename(columns={"unemp": "unemployment", "infl": "inflation", "tbilrate": "T-bill rate"})
    return _table("macro-rates", "statsmodels", "year", wide, "percent")


def _co2() -> Table:
    df = _statsmodels("co2").co2.load_pandas().data
    yearly = df.groupby(df.index.year)["co2"].mean().loc[1959:2001].to_frame("CO2")
    return _table("co2", "statsmodels", "year", yearly, "CO2 (ppm)")


def _sunspots() -> Table:
    df = _statsmodels("sunspots").sunspots.load_pandas().data
    wide = df.set_index(df["YEAR"].astype(int))[["SUNACTIVITY"]].rename(columns={"SUNACTIVITY": "sunspots"})
    return _table("sunspots", "statsmodels", "year", wide, "sunspot number")


def _nile() -> Table:
    df = _statsmodels("nile").nile.load_pandas().data
    wide = df.set_index(df["year"].astype(int))[["volume"]].rename(columns={"volume": "Nile"})
    return _table("nile", "statsmodels", "year", wide, "flow (1e8 m3)")


def _yahoo() -> Table:
    import pandas as pd
    from matplotlib import cbook

    with cbook.get_sample_data("Stocks.csv") as f:
        df = pd.read_csv(f, comment="#", parse_dates=["Date"])
    wide = df.groupby(df["Date"].dt.year)[["ADBE", "AAPL", "IBM", "MSFT", "XRX"]].mean().loc[1990:2019]
    return _table("yahoo-stocks", "matplotlib", "year", wide, "price ($)")


TABLES: dict[str, Callable[[], Table]] = {
    "stocks": _stocks,
    "iowa-electricity": _iowa,
    "us-employment": _employment,
    "seattle-weather": _seattle,
    "barley": _barley,
    "grunfeld": _grunfeld,
    "macro-rates": _macro,
    "co2": _co2,
    "sunspots": _sunspots,
    "nile": _nile,
    "yahoo-stocks": _yahoo,
}
"""Table loaders by name (module docstring)."""


def load_table(name: str) -> Table:
    """Load one of :data:`TABLES`.

    Raises:
        DataError: unknown name (listing the known ones) or its package is not installed.
    """
    if name not in TABLES:
        raise DataError(f"unknown chart table {name!r}; known: {sorted(TABLES)}")
    return TABLES[name]()


def check_table(table: Table) -> Table:
    """``table`` if charts can be drawn from it: at least one series, unique x labels, and
    every series one value per x, each a finite number or None (missing).

    Raises:
        BadItem: the first violation, with file ``<package>:<name>`` and field ``x`` or ``values``.
    """
    src = f"{table.package}:{table.name}"

    def bad(fld: str, reason: str) -> BadItem:
        return BadItem(src, fld, reason, message=f"chart table {table.name!r} ({src}): field {fld!r}: {reason}")

    if len(set(table.x)) != len(table.x):
        raise bad("x", f"repeated x labels {sorted({v for v in table.x if table.x.count(v) > 1})}")
    if not table.values:
        raise bad("values", "no series")
    for series, vals in table.values.items():
        if len(vals) != len(table.x):
            raise bad("values", f"series {series!r} has {len(vals)} values for {len(table.x)} x labels")
        for x, v in zip(table.x, vals):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
                raise bad("values", f"series {series!r} at x={x}: {v!r} is not a finite number")
    return table


def _checked_table(name: str) -> Table:
    """:func:`load_table` then :func:`check_table`; a loader that breaks on its package's data
    (a renamed column, a non-numeric cell) is a bad table too.

    Raises:
        DataError: unknown name or a missing package (not a bad item: nothing was read).
        BadItem: the table's data is malformed (file ``table <name>`` when the loader itself failed).
    """
    try:
        table = load_table(name)
    except (KeyError, ValueError, TypeError, IndexError) as e:  # the package's data, not our options
        raise BadItem(f"table {name}", None, f"the loader failed on its package's data ({type(e).__name__}: {e})",
                      message=f"chart table {name!r}: the loader failed on its package's data "
                      f"({type(e).__name__}: {e})") from e
    return check_table(table)


# --- one chart group ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ChartSpec:
    """One chart: x window ``[start, stop)`` of the table, its series, chart type and colour names."""

    type: str
    start: int
    stop: int
    series: tuple[str, ...]
    colours: tuple[str, ...]

    def ys(self, table: Table, s: str) -> list[float]:
        return [float(v) for v in table.values[s][self.start : self.stop]]

    def xs(self, table: Table) -> list[str]:
        return list(table.x[self.start : self.stop])


@dataclass(frozen=True)
class Question:
    """One segment's question: ``template`` name, prompt text, exact answer, answer type, chart index."""

    template: str
    text: str
    answer: str
    type: str = "open-ended"
    chart: int | None = None


def sample_group(table: Table, rng: random.Random, n_charts: int) -> list[ChartSpec]:
    """Draw ``n_charts`` charts of ``table`` (module docstring, step 1).

    Raises:
        BadItem: the table has fewer than 6 x values, or no complete series in a window.
    """
    n = len(table.x)
    src = f"{table.package}:{table.name}"
    if n < 6:
        raise BadItem(src, "x", f"{n} x values, need at least 6",
                      message=f"chart table {table.name!r} ({src}): field 'x': {n} x values, need at least 6")
    charts = []
    for _ in range(n_charts):
        if table.categorical:
            start, stop = 0, n
        else:
            length = rng.randint(6, min(10, n))
            start = rng.randint(0, n - length)
            stop = start + length
        complete = [s for s in sorted(table.values) if all(v is not None for v in table.values[s][start:stop])]
        if not complete:
            reason = f"no series without missing values in {table.x[start]}..{table.x[stop - 1]}"
            raise BadItem(src, "values", reason, message=f"chart table {table.name!r} ({src}): field 'values': {reason}")
        series = tuple(rng.sample(complete, rng.randint(1, min(3, len(complete)))))
        kind = rng.choice(CHART_TYPES[1:] if table.categorical else CHART_TYPES)
        colours = tuple(rng.sample(sorted(COLOURS), len(series)))
        charts.append(ChartSpec(kind, start, stop, series, colours))
    return charts


def y_limits(table: Table, charts: list[ChartSpec]) -> tuple[float, float]:
    """The group's shared y range: data min..max padded by 8 % of their spread each side (by 10 % of
    the value, at least 1, when every value is equal), rounded to 4 decimals (module docstring, step 2)."""
    ys = [y for c in charts for s in c.series for y in c.ys(table, s)]
    lo, hi = min(ys), max(ys)
    pad = 0.08 * (hi - lo) if hi > lo else max(1.0, abs(hi) * 0.1)
    return round(lo - pad, 4), round(hi + pad, 4)


def _or_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def question_pool(table: Table, charts: list[ChartSpec], ylim: tuple[float, float],
                  rng: random.Random) -> list[Question]:
    """Every question the group supports, answers computed from ``table`` (module docstring, step 3).

    Args:
        table: the group's table. charts: its charts (Chart 1 = ``charts[0]``).
        ylim: the shared y range; comparisons need a margin of a fraction of its span.
        rng: draws the x of ``larger`` and the distractors of ``peak``.

    Returns:
        Questions in a fixed order (template, then chart, then series); :func:`order_pool` mixes them.
    """
    span = ylim[1] - ylim[0]
    pool: list[Question] = []
    for ci, c in enumerate(charts, 1):
        pool.append(Question("type", f"What type of chart is Chart {ci}: line, bar or scatter?", c.type, chart=ci))
        pool.append(Question("count", f"How many data series does Chart {ci} show?", str(len(c.series)), chart=ci))
        for s, colour in zip(c.series, c.colours):
            pool.append(Question("colour", f"What colour is the {s} series in Chart {ci}?", colour, chart=ci))
    if not table.categorical:
        for ci, c in enumerate(charts, 1):
            x = c.xs(table)
            for s in c.series:
                y = c.ys(table, s)
                if abs(y[-1] - y[0]) >= TREND_MARGIN * span:
                    pool.append(Question("trend", f"In Chart {ci}, does {s} go up or down from {x[0]} to {x[-1]}?",
                                         "up" if y[-1] > y[0] else "down", chart=ci))
    names = [f"Chart {ci}" for ci in range(1, len(charts) + 1)]
    for template, sign in (("highest", 1.0), ("lowest", -1.0)) if len(charts) > 1 else ():
        best = [sign * max(sign * y for s in c.series for y in c.ys(table, s)) for c in charts]
        order = sorted(range(len(charts)), key=lambda j: -sign * best[j])
        if abs(best[order[0]] - best[order[1]]) >= COMPARE_MARGIN * span:
            pool.append(Question(template, f"Which chart reaches the {template} value: {_or_list(names)}?",
                                 names[order[0]]))
    for ci, c in enumerate(charts, 1):
        x = c.xs(table)
        for a_i in range(len(c.series)):
            for b_i in range(a_i + 1, len(c.series)):
                a, b = c.series[a_i], c.series[b_i]
                ya, yb = c.ys(table, a), c.ys(table, b)
                ok = [j for j in range(len(x)) if abs(ya[j] - yb[j]) >= COMPARE_MARGIN * span]
                if ok:
                    j = rng.choice(ok)
                    pool.append(Question("larger", f"In Chart {ci}, which is larger at {x[j]}: {a} or {b}?",
                                         a if ya[j] > yb[j] else b, chart=ci))
    for ci, c in enumerate(charts, 1):
        x = c.xs(table)
        for s in c.series:
            y = c.ys(table, s)
            top = max(range(len(y)), key=lambda j: y[j])
            runner_up = max(v for j, v in enumerate(y) if j != top)
            if y[top] - runner_up >= COMPARE_MARGIN * span:
                options = [top, *rng.sample([j for j in range(len(y)) if j != top], 3)]
                rng.shuffle(options)  # in x order the argmax (often a window end) would mostly be A or D
                letters = "ABCD"
                lines = "\n".join(f"{letters[k]}. {x[j]}" for k, j in enumerate(options))
                pool.append(Question("peak", f"In Chart {ci}, at which {table.x_name} is {s} highest?\n{lines}",
                                     letters[options.index(top)], "multiple-choice", ci))
    return pool


def order_pool(pool: list[Question], rng: random.Random) -> list[Question]:
    """Interleave templates: a random template order, each template's questions shuffled, then one
    question per template in turn until all are used (module docstring, step 4)."""
    by_template = {t: [q for q in pool if q.template == t] for t in TEMPLATES}
    for qs in by_template.values():
        rng.shuffle(qs)
    order = [t for t in TEMPLATES if by_template[t]]
    rng.shuffle(order)
    out: list[Question] = []
    while any(by_template[t] for t in order):
        for t in order:
            if by_template[t]:
                out.append(by_template[t].pop(0))
    return out


def visual_question(table: Table, chart: ChartSpec, ci: int, ylim: tuple[float, float],
                    rng: random.Random) -> Question:
    """One question about Chart ``ci`` that its pixels answer (the one-chart-per-question layout, module
    docstring): a template drawn uniformly from those the chart supports among :data:`VISUAL_TEMPLATES`
    (``type`` and ``count`` always; ``colour``, and ``trend`` when its margin is visible (time tables),
    only on a one-series chart), with :func:`question_pool`'s wording and answer.

    Args:
        table: the group's table. chart: the chart asked about; ci: its number (Chart 1 is the first).
        ylim: the group's shared y range (``trend`` needs a margin of its span). rng: draws the template.
    """
    pool = [q for q in question_pool(table, [chart], ylim, random.Random(0))
            if q.template in VISUAL_TEMPLATES and (q.template in ("type", "count") or len(chart.series) == 1)]
    by_template = {q.template: q for q in pool}
    q = by_template[rng.choice([t for t in VISUAL_TEMPLATES if t in by_template])]
    return Question(q.template, q.text.replace("Chart 1", f"Chart {ci}"), q.answer, q.type, ci)


# --- rendering ---------------------------------------------------------------------------------
def render_chart(table: Table, chart: ChartSpec, ylim: tuple[float, float], side: int) -> Image.Image:
    """Draw one chart as a ``side`` x ``side`` RGB image (matplotlib Agg, no pyplot state).

    Lines and markers are thick and the text small, so shapes and colours survive a 56 px
    downscale; the legend (series names) sits above the axes, the y range is ``ylim``.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    dpi = 100
    fig = Figure(figsize=(side / dpi, side / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.2, 0.16, 0.76, 0.66))
    fs = max(3.0, side / 24)
    x = chart.xs(table)
    pos = np.arange(len(x))
    width = 0.8 / len(chart.series)
    for j, (s, colour) in enumerate(zip(chart.series, chart.colours)):
        y, col = chart.ys(table, s), COLOURS[colour]
        if chart.type == "line":
            ax.plot(pos, y, color=col, lw=max(1.5, side / 45), label=s)
        elif chart.type == "bar":
            ax.bar(pos - 0.4 + width * (j + 0.5), [v - ylim[0] for v in y], width, bottom=ylim[0], color=col,
                   label=s)
        else:
            ax.scatter(pos, y, color=col, s=(side / 22) ** 2, label=s, edgecolors="none")
    ax.set_ylim(*ylim)
    ax.set_xlim(-0.6, len(x) - 0.4)
    ticks = list(range(len(x))) if table.categorical else sorted({0, len(x) // 2, len(x) - 1})
    ax.set_xticks(ticks, [x[t] for t in ticks], rotation=45 if table.categorical else 0)
    ax.yaxis.set_major_locator(MaxNLocator(3))
    ax.tick_params(labelsize=fs, length=2, pad=1)
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=len(chart.series), fontsize=fs, frameon=False,
              handlelength=0.8, handletextpad=0.3, columnspacing=0.6, borderaxespad=0.0, borderpad=0.0)
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    return Image.fromarray(rgb, "RGB")


# --- dataset ----------------------------------------------------------------------------------
def make_group(tables: dict[str, Table | BadItem], seed: int, index: int,
               chart_per_question: int | None = None) -> tuple[Table, list[ChartSpec], tuple, list]:
    """Example ``index``'s table, charts, shared y range and ordered question pool (steps 1-4).

    Args:
        tables: the chosen tables by name; a malformed one is given as its :class:`BadItem`
            (so it is still drawn, and the other groups stay what they are without the fault).
        chart_per_question: K for the one-chart-per-question layout (K charts, question k about Chart k,
            :func:`visual_question`); None: the default layout (2-3 charts, the whole pool).

    Raises:
        BadItem: the group drew a malformed table, or its windows leave no complete series.
    """
    rng = random.Random(f"chartgen:{seed}:{index}")
    table = tables[rng.choice(sorted(tables))]
    if isinstance(table, BadItem):
        raise table
    if chart_per_question:
        charts = sample_group(table, rng, chart_per_question)
        ylim = y_limits(table, charts)
        return table, charts, ylim, [visual_question(table, c, ci, ylim, rng) for ci, c in enumerate(charts, 1)]
    charts = sample_group(table, rng, rng.choice((2, 3)))
    ylim = y_limits(table, charts)
    return table, charts, ylim, order_pool(question_pool(table, charts, ylim, rng), rng)


def describe_chart(chart: ChartSpec) -> str:
    """The words that describe one chart's pixels, for the vision-alignment stage
    (:func:`segrl.trainers.sft.align_vision`, ``meta.image_descriptions``): its type, its number of
    series and their colours, in the answers' own words, e.g. ``"bar 2 red blue"``. Only what a
    56-px rendering shows without reading text (module docstring: the templates a tiny policy can
    learn); the answers alone (``Chart 2``, ``up``, ``C``) say too little about each image to align on."""
    return " ".join([chart.type, str(len(chart.series)), *chart.colours])


def _row(seed: int, index: int, table: Table, charts: list[ChartSpec], ylim, pool: list[Question], K: int,
         side: int, chart_per_question: bool = False) -> dict:
    chosen = pool[:K]
    labels = [f"Answer {k}" for k in range(1, K + 1)]
    answers = [q.answer for q in chosen]
    charts_meta = [
        {"type": c.type, "series": list(c.series), "colours": list(c.colours), "x": c.xs(table),
         "values": {s: c.ys(table, s) for s in c.series}}
        for c in charts
    ]
    return {
        "id": f"charts-{seed}-{index:05d}",
        "task": TASK.name,
        "images": [png_value(render_chart(table, c, ylim, side)) for c in charts],
        "prompt": chart_prompt(len(charts), labels, [q.text for q in chosen]),
        "segment_labels": labels,
        "segment_references": [[a] for a in answers],
        "reference": format_answer(labels, answers),
        "meta": make_meta(
            task_version=TASK.version, source=f"{table.package}:{table.name}", table=table.name,
            questions_per_answer=K, seed=seed, index=index, chart_side=side, ylim=list(ylim), charts=charts_meta,
            templates=[q.template for q in chosen], answer_types=[q.type for q in chosen],
            segment_charts=[q.chart for q in chosen], pool_size=len(pool), n_images=len(charts), n_segments=K,
            image_descriptions=[describe_chart(c) for c in charts],
            **({"layout": "chart-per-question"} if chart_per_question else {}),
        ),
    }


def build(
    source: str | Path | None,
    out_dir: str | Path,
    *,
    questions_per_answer: int = 4,
    count: int = 400,
    chart_side: int = 112,
    seed: int = 0,
    test_fraction: float = 0.2,
    tables: list[str] | tuple[str, ...] | None = None,
    chart_per_question: bool = False,
    stats: dict | None = None,
    strict: bool = False,
    max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION,
) -> DatasetDict:
    """Render ``count`` chart groups and save the DatasetDict (``train``/``test``) atomically to ``out_dir``.

    Args:
        source: unused (the tables ship with PyPI packages); None or ``"synthetic"``.
        out_dir: where the DatasetDict is written (replaced only once complete).
        questions_per_answer: K, questions (segments) per example (>= 1).
        count: chart groups to draw (>= 2); groups whose pool has fewer than K questions are skipped.
        chart_side: side of each chart in pixels (>= 32).
        seed: drawing and split seed.
        test_fraction: fraction of groups held out for ``test``.
        tables: names from :data:`TABLES` (default: all).
        chart_per_question: K charts per example, question k about Chart k (module docstring).
        stats: if given, filled with ``groups``, ``groups_skipped``, ``examples``, ``segments``,
            ``train_examples``, ``test_examples`` and ``templates`` (segments per template).
        strict: a malformed table raises its :class:`~segrl.tasks.build_log.BadItem` at once.
        max_skip_fraction: fail when more than this fraction of the drawn groups is bad (0..1).

    Returns:
        The DatasetDict that was written (module docstring; features ``FEATURES``).

    Raises:
        BadItem: under ``strict``, a malformed table (or a group whose windows it leaves without
            a complete series), naming ``<package>:<table>`` and the field.
        TooManySkipped: more than ``max_skip_fraction`` of the groups drew a malformed table.
        DataError: an unknown table or a missing package (naming it), or a split left without
            examples. Nothing is written then.
        ValueError: a bad option (``source`` not None/"synthetic", K < 1, ``count`` < 2,
            ``chart_side`` < 32, ``test_fraction`` outside [0, 1]).
    """
    if source not in (None, "", "synthetic"):
        raise ValueError(f"charts renders its own charts from packaged tables; source must be None or "
                         f"'synthetic', got {source!r}")
    K, count, side = int(questions_per_answer), int(count), int(chart_side)
    if K < 1:
        raise ValueError(f"questions_per_answer must be >= 1, got {K}")
    if count < 2:
        raise ValueError(f"count must be >= 2 (one train and one test group), got {count}")
    if side < 32:
        raise ValueError(f"chart_side must be >= 32 pixels, got {side}")
    if not 0.0 <= float(test_fraction) <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    log = BuildLog(TASK.name, strict=strict, max_skip_fraction=max_skip_fraction, unit="group")
    names = sorted(set(tables or TABLES))
    loaded: dict[str, Table | BadItem] = {}
    for name in names:
        try:
            loaded[name] = _checked_table(name)
        except BadItem as e:
            if strict:
                raise
            loaded[name] = e

    ids = {f"charts-{seed}-{i:05d}": i for i in range(count)}
    train, test = split_groups(list(ids), seed, test_fraction)
    counts: dict = {"groups": count, "groups_skipped": 0, "templates": {}}
    splits: dict[str, list[dict]] = {}
    for split, members in (("train", train), ("test", test)):
        rows = []
        for rid in members:
            log.count()
            try:
                table, charts, ylim, pool = make_group(loaded, seed, ids[rid], K if chart_per_question else None)
            except BadItem as e:
                log.skip(e, group=rid)
                continue
            if len(pool) < K:
                log.exclude(f"{table.package}:{table.name}", None, f"{len(pool)} questions, fewer than K={K}",
                            item=f"group {rid}")
                counts["groups_skipped"] += 1
                continue
            rows.append(_row(seed, ids[rid], table, charts, ylim, pool, K, side, chart_per_question))
            for q in pool[:K]:
                counts["templates"][q.template] = counts["templates"].get(q.template, 0) + 1
        splits[split] = rows
        counts[f"{split}_examples"] = len(rows)
    log.check()
    for split, members in (("train", train), ("test", test)):
        if not splits[split]:
            bad = f" ({log.skipped} drew a malformed table: {log.first_errors()})" if log.skipped else ""
            raise DataError(f"charts: no {split} example with {K} questions among its {len(members)} groups{bad}")
    counts["examples"] = counts["train_examples"] + counts["test_examples"]
    counts["segments"] = counts["examples"] * K
    counts["groups_bad"] = log.skipped
    ds = DatasetDict({s: Dataset.from_list(rows, features=FEATURES) for s, rows in splits.items()})
    splits.clear()
    save_with_log(ds, out_dir, log, counts=counts, tables=names)
    if stats is not None:
        stats.update(counts)
    return ds


@dataclass(frozen=True)
class ChartsOptions(BuildOptions):
    """``segrl build-data charts`` options (:func:`build`); ``size`` is the number of chart groups drawn."""

    builder_names: ClassVar[dict[str, str]] = {"size": "count"}

    seed: int = field(default=0, metadata={"help": "Drawing and split seed."})
    size: int | None = field(default=400, metadata={
        "help": "Chart groups to draw (groups with fewer than K questions are skipped).", "aliases": ("--count",)})
    test_fraction: float = field(default=0.2, metadata={"help": "Fraction of chart groups held out for test."})
    questions_per_answer: int = field(default=4, metadata={"help": "K: questions (segments) per example."})
    chart_side: int = field(default=112, metadata={"help": "Side of each rendered chart in pixels."})
    tables: tuple[str, ...] | None = field(default=None, metadata={
        "help": "Use only this table (repeatable; default all): see segrl.tasks.chartgen.TABLES.", "flag": "--table"})
    chart_per_question: bool = field(default=False, metadata={
        "help": "K charts per example, question k about Chart k, a template its pixels answer (type, count, "
                "one-series colour / trend).", "flag": "--chart-per-question"})


def report(ds, out, options: ChartsOptions, stats: dict) -> list[str]:
    """Groups drawn and skipped, and segments per question template."""
    return [f"K={options.questions_per_answer}: {stats['groups']} groups, {stats['groups_skipped']} skipped (fewer than "
            f"K questions); segments per template: {dict(sorted(stats['templates'].items()))}"]


TASK = TaskSpec(
    name="charts",
    version=1,
    build=build,
    segment_reward="accuracy",
    eval_metrics=("accuracy",),
    description="Controlled multi-chart QA: 2-3 charts rendered from real packaged tables, K template "
    "questions with exact answers, one segment each.",
    options=ChartsOptions,
    source_help="Unused: the tables ship with PyPI packages.",
    report=report,
    fills_stats=True,
)
