"""Report tables as data: a :class:`TableSpec` per YAML file under ``configs/reports/``, one pipeline.

``segrl report table1`` loads ``configs/reports/table1.yaml`` (:func:`load_spec`) and
:func:`make_table` turns the runs it names into ``table.md`` / ``table.csv`` / ``runs.csv`` (one
writer, :func:`segrl.eval.report.write_report`) and plots. Every table's text has, in order: the
command and runs, the table of means with 95 % CIs and n, the paired gains with CIs (and the
slope of the gain against log2 K where the table spans several K), the baseline-learns gate,
the learning curves and sample efficiency, the sight gate of each SFT start where ``segrl check-sight`` wrote
one beside its eval (a K whose start fails it is left out of the verdict), and one verdict line for the
table's claim.

Kinds (``kind:`` in the YAML):

- ``sweep``: rows = algorithm, columns = K × metric (table 1);
- ``alpha``: rows = alpha of ``blend`` (table 3); the baseline is alpha = 1 (GRPO);
- ``longform``: one row per trained model from several evals plus training-log diagnostics (table 2);
- ``methods``: rows = experiment arm (the run's parent directory; SAPO, SRPO, Dr. Seg);
- ``gather``: pairs gathered from other tables' runs (table 4).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from segrl.eval import sweep as sw
from segrl.eval.curves import band, efficiency, final_value, plot_curves, read_curve, seed_steps, start_value
from segrl.eval.stats import CONFIDENCE, MIN_SEEDS, Interval, mean_ci, verdict

SPECS_DIR = Path(__file__).resolve().parents[2] / "configs" / "reports"
"""Where the named table specs live (the repository's ``configs/reports/``)."""

KINDS = ("sweep", "alpha", "longform", "methods", "gather")
_BY = {"sweep": "algo", "alpha": "alpha", "longform": "algo", "methods": "arm", "gather": "algo"}


class SpecError(ValueError):
    """A report spec that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Claim:
    """The paper's claim a table tests, and how its verdict is read.

    Args:
        text (`str`): the claim in one line, quoted in the table.
        effect (`str`, defaults to `"gain"`): ``gain`` (the paired gain ``pair[0] - pair[1]`` is
            positive) or ``slope`` (the paired gain grows with K: slope against log2 K > 0).
        pair (`list[str]`, defaults to `["sd_grpo", "grpo"]`): treatment and control (values of the
            table's row key: algorithm, arm, or alpha).
        metric (`str` or `None`, defaults to `None`): the metric; None: the table's first metric.
        K (`int` or `None`, defaults to `None`): for ``gain``, the K whose cell is judged; None: every
            cell with K > 1 pooled (each (K, seed) gain one value; K = 1 is the identity check).
        source (`str` or `None`, defaults to `None`): for a ``gather`` table, the source table judged.
        min_effect (`float`, defaults to `0.0`): the smallest effect the claim means, in metric units
            (or per doubling of K); a CI entirely below it reads "not reproduced".
    """

    text: str
    effect: str = "gain"
    pair: tuple = ("sd_grpo", "grpo")
    metric: str | None = None
    K: int | None = None
    source: str | None = None
    min_effect: float = 0.0


@dataclass(frozen=True)
class TableSpec:
    """One report table, as written in ``configs/reports/<name>.yaml``.

    Args:
        name (`str`): the table's name (the file's stem), used as ``segrl report NAME``.
        title (`str`): the table's title.
        out (`str`): its output directory (``results/...``).
        kind (`str`, defaults to `"sweep"`): one of :data:`KINDS`.
        runs (`list[str]`, defaults to `[]`): directories searched for eval runs (an SFT-start eval,
            i.e. an evaluated model without an ``algo``, found there is the gate's reference).
        start_runs (`list[str]`, defaults to `[]`): more directories searched for SFT-start evals only
            (e.g. the shared warm start's eval of another table); one that does not exist yet is skipped.
        metrics (`list[str]`, defaults to `[]`): metric columns (for ``longform``: the columns shown).
        pairs (`list[[str, str]]`, defaults to `[["sd_grpo", "grpo"]]`): (treatment, control) paired gains.
        gain_metrics (`list[str]` or `None`, defaults to `None`): metrics of the paired gains; None: ``metrics``.
        baseline (`str` or `float`, defaults to `"grpo"`; `1.0` for ``alpha``): the arm the gate judges.
        gate_metric (`str` or `None`, defaults to `None`): the gate's metric; None: the first gain metric.
        claim (`Claim` or `None`, defaults to `None`): the claim the verdict line reads.
        curves (`list[str]`, defaults to `["reward", "eval_reward"]`): ``train_log.jsonl`` keys drawn as
            learning curves where logged (``reward`` → ``curves.png``, another key ``k`` →
            ``curves_k.png``).
        fraction (`float`, defaults to `0.5`): sample efficiency's fraction of the way from the SFT
            start to the best final score.
        smooth (`int`, defaults to `5`): the trailing window (logged steps) smoothing each curve.
        min_seeds (`int`, defaults to `5`): cells with fewer seeds are flagged ``†``.
        confidence (`float`, defaults to `0.95`): the level of every interval.
        ci (`str`, defaults to `"t"`): ``t`` or ``bootstrap`` intervals on means and gains.
        notes (`list[str]`, defaults to `[]`): lines added to the table's text.
        evals (`dict`, defaults to `{}`): ``longform`` only: eval directory → ``{column: metric}``.
        train_metrics (`dict`, defaults to `{}`): ``longform`` only: ``{column: train_log key}`` means.
        sources (`dict`, defaults to `{}`): ``gather`` only: source table name → its metrics.
        identity (`list[dict]`, defaults to `[]`): arms not run at a K where they equal another arm by
            construction, each ``{K: int, arm: str, same_as: str, test: str}`` (``test``: the test that shows
            the two arms' runs are bit-equal there); :func:`add_identity_rows` gives ``arm`` the runs of
            ``same_as`` at that K, marked in ``runs.csv`` and said in the table's text.
    """

    name: str
    title: str
    out: str
    kind: str = "sweep"
    runs: list = field(default_factory=list)
    start_runs: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    pairs: list = field(default_factory=lambda: [("sd_grpo", "grpo")])
    gain_metrics: list | None = None
    baseline: Any = None
    gate_metric: str | None = None
    claim: Claim | None = None
    curves: list = field(default_factory=lambda: ["reward", "eval_reward"])
    fraction: float = 0.5
    smooth: int = 5
    min_seeds: int = MIN_SEEDS
    confidence: float = CONFIDENCE
    ci: str = "t"
    notes: list = field(default_factory=list)
    evals: dict = field(default_factory=dict)
    train_metrics: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)
    identity: list = field(default_factory=list)

    @property
    def by(self) -> str:
        """The row key: ``algo``, ``alpha`` or ``arm``."""
        return _BY[self.kind]

    @property
    def base(self):
        """The gate's baseline arm (``baseline``, or ``grpo`` / alpha ``1.0``)."""
        if self.baseline is not None:
            return float(self.baseline) if self.kind == "alpha" else self.baseline
        return 1.0 if self.kind == "alpha" else "grpo"


def spec_from_dict(raw: Any, name: str, where: str) -> TableSpec:
    """A :class:`TableSpec` from a parsed YAML mapping.

    Raises:
        SpecError: not a mapping, an unknown or missing field, a wrong type, an unknown ``kind`` /
            ``ci`` / claim effect, or a kind's required field missing; naming ``where`` and the field.
    """
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping of table fields, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(TableSpec)} - {"name"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {unknown} (known: {sorted(known)})")
    for key in ("title", "out"):
        if not isinstance(raw.get(key), str):
            raise SpecError(f"{where}: field {key!r} must be a string (got {raw.get(key)!r})")
    kind = raw.get("kind", "sweep")
    if kind not in KINDS:
        raise SpecError(f"{where}: kind {kind!r} is not one of {list(KINDS)}")
    lists = ("runs", "start_runs", "metrics", "pairs", "gain_metrics", "curves", "notes", "identity")
    for key in lists:
        if key in raw and raw[key] is not None and not isinstance(raw[key], list):
            raise SpecError(f"{where}: field {key!r} must be a list (got {raw[key]!r})")
    for key in ("evals", "train_metrics", "sources"):
        if key in raw and not isinstance(raw[key], dict):
            raise SpecError(f"{where}: field {key!r} must be a mapping (got {raw[key]!r})")
    values = dict(raw)
    if "pairs" in values:
        bad = [p for p in values["pairs"] if not (isinstance(p, list) and len(p) == 2)]
        if bad:
            raise SpecError(f"{where}: pairs must be [treatment, control] lists, got {bad}")
        values["pairs"] = [tuple(p) for p in values["pairs"]]
    for entry in values.get("identity") or []:
        if not (isinstance(entry, dict) and set(entry) == {"K", "arm", "same_as", "test"}
                and isinstance(entry["K"], int) and all(isinstance(entry[k], str) for k in ("arm", "same_as", "test"))):
            raise SpecError(f"{where}: each identity entry must be {{K: int, arm: str, same_as: str, test: str}} "
                            f"(got {entry!r})")
    if values.get("ci", "t") not in ("t", "bootstrap"):
        raise SpecError(f"{where}: ci {values['ci']!r} is not 't' or 'bootstrap'")
    if "claim" in values and values["claim"] is not None:
        c = values["claim"]
        cknown = {f.name for f in dataclasses.fields(Claim)}
        if not isinstance(c, dict) or "text" not in c or set(c) - cknown:
            raise SpecError(f"{where}: claim must be a mapping with 'text' and only {sorted(cknown)} (got {c!r})")
        if c.get("effect", "gain") not in ("gain", "slope"):
            raise SpecError(f"{where}: claim.effect {c['effect']!r} is not 'gain' or 'slope'")
        values["claim"] = Claim(**{**c, "pair": tuple(c.get("pair", ("sd_grpo", "grpo")))})
    required = {"longform": ("evals",), "gather": ("sources", "pairs")}.get(kind, ("runs", "metrics"))
    for key in required:
        if not values.get(key):
            raise SpecError(f"{where}: kind {kind!r} needs field {key!r}")
    if kind == "longform" and not values.get("runs"):
        raise SpecError(f"{where}: kind 'longform' needs field 'runs'")
    for key in ("fraction", "confidence"):
        if key in values and not (isinstance(values[key], (int, float)) and 0 < values[key] < 1):
            raise SpecError(f"{where}: field {key!r} must be a number in (0, 1) (got {values[key]!r})")
    for key in ("smooth", "min_seeds"):
        if key in values and not (isinstance(values[key], int) and values[key] >= 1):
            raise SpecError(f"{where}: field {key!r} must be an integer >= 1 (got {values[key]!r})")
    return TableSpec(name=name, **values)


def load_spec(name_or_path: str | Path, specs_dir: str | Path | None = None) -> TableSpec:
    """The spec named ``name_or_path`` (``specs_dir/<name>.yaml``) or in the YAML file it points to.

    Raises:
        FileNotFoundError: no such spec (the message lists the known names).
        SpecError: the file is not valid YAML or not a valid spec (naming the file and field).
    """
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = Path(specs_dir or SPECS_DIR) / f"{name_or_path}.yaml"
    if not p.exists():
        raise FileNotFoundError(f"no report spec {p} (known tables: {', '.join(spec_names(specs_dir))})")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML: {e}") from e
    return spec_from_dict(raw, p.stem, str(p))


def spec_names(specs_dir: str | Path | None = None) -> list[str]:
    """The names of the table specs in ``specs_dir`` (default :data:`SPECS_DIR`), sorted."""
    d = Path(specs_dir or SPECS_DIR)
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


# --- the pipeline ---------------------------------------------------------------------------------
def collect(spec: TableSpec, runs: list[str] | None = None) -> pd.DataFrame:
    """The spec's run frame (:func:`segrl.eval.sweep.collect_sweep`, or ``collect_longform``),
    SFT-start evals included (``algo == "(init)"``: those under ``runs`` and under the existing
    ``start_runs``)."""
    def one(paths):
        if spec.kind == "longform":
            return sw.collect_longform(paths, spec.evals, spec.train_metrics)
        return sw.collect_sweep(paths, spec.metrics)

    df = one(list(runs or spec.runs))
    extra = [p for p in spec.start_runs if Path(p).exists()]
    if extra:
        starts = one(extra)
        starts = starts[starts["algo"] == "(init)"] if not starts.empty else starts
        df = pd.concat([df, starts], ignore_index=True) if not starts.empty else df
    return df


def add_identity_rows(df: pd.DataFrame, spec: TableSpec) -> tuple[pd.DataFrame, list[str]]:
    """The run frame with the rows of the arms ``spec.identity`` says were not run, and the text that says so.

    For each entry ``{K, arm, same_as, test}``: each trained run of ``same_as`` at K whose seed has no trained run
    of ``arm`` at K is copied with the row key (``spec.by``) set to ``arm`` and column ``identity_of`` set to
    ``same_as``, so every mean, paired gain (0 for each such seed) and slope reads them as ``arm``'s runs. Our
    choice, for the time budget: at K = 1 SD-GRPO and GRPO give the same token advantages, so their runs are
    bit-equal (``test``); running both doubles the cost of K = 1 and adds no information. Seeds of ``arm`` that
    were run are kept as they are (Table 1 runs one, so that its reproduce target checks the identity on real
    runs: ``scripts/identity_check.py``). A K with no runs at all is left alone.

    Args:
        df (`pandas.DataFrame`): :func:`collect`'s frame, one row per eval run (columns ``K``, ``seed``,
            ``spec.by``, ...).
        spec (`TableSpec`): the table; only ``identity`` and ``by`` are read.

    Returns:
        `(pandas.DataFrame, list[str])`: the frame (``identity_of`` is empty for real runs) and markdown lines.
    """
    if not spec.identity or df.empty:
        return df, []
    by, lines, added = spec.by, ["## Arms not run (equal to another arm by construction)", ""], []
    for e in spec.identity:
        at_k = df[df["K"] == e["K"]]
        if at_k.empty:
            continue
        ran = set(at_k.loc[at_k[by] == e["arm"], "seed"])
        copies = at_k[(at_k[by] == e["same_as"]) & ~at_k["seed"].isin(ran)].copy()
        if copies.empty:
            lines.append(f"- K = {e['K']}: {e['arm']} was run (its own runs are used).")
            continue
        copies[by] = e["arm"]
        copies["identity_of"] = e["same_as"]
        added.append(copies)
        seeds = ", ".join(str(int(s)) for s in sorted(ran))
        also = (f"; seed{'s' if len(ran) > 1 else ''} {seeds} {'were' if len(ran) > 1 else 'was'} run, "
                f"to check the identity on real runs") if ran else ""
        lines.append(f"- K = {e['K']}: {e['arm']} is not run; its rows are {e['same_as']}'s {len(copies)} runs "
                     f"(bit-equal there by construction: `{e['test']}`), so its paired gain is 0 for each seed"
                     f"{also}; `runs.csv` marks them (`identity_of`).")
    if len(lines) == 2:
        return df, []
    out = pd.concat([df, *added], ignore_index=True) if added else df
    return out, [*lines, ""]


def curve_sections(df: pd.DataFrame, spec: TableSpec, out: Path, title: str) -> tuple[list[str], dict[str, Path]]:
    """Learning curves (one panel per K, one line per row key) for each logged ``spec.curves`` key,
    with a sample-efficiency table for the first. Returns (markdown lines, {file name: path})."""
    lines, files = [], {}
    by = spec.by
    for key in spec.curves:
        panels: dict[str, dict[str, pd.DataFrame]] = {}
        raw: dict[str, dict[str, list]] = {}  # the seeds' own curves, for per-seed sample efficiency
        for k, gk in df.groupby("K"):
            for arm, g in gk.groupby(by):
                curves = []
                for model in sorted(set(g["model"])):
                    if (Path(model) / "train_log.jsonl").exists():
                        c = read_curve(model, key)
                        if not c.empty:
                            curves.append(c)
                if curves:
                    label = f"alpha={arm:g}" if by == "alpha" else str(arm)
                    panels.setdefault(f"K={int(k)}", {})[label] = band(curves, spec.confidence, spec.smooth)
                    raw.setdefault(f"K={int(k)}", {})[label] = curves
        if not panels:
            if key == spec.curves[0]:
                lines += [f"## Learning curves: {key}", "", f"(none: no trained run logged `{key}` in a "
                          "train_log.jsonl)", ""]
            continue
        starts = {p: start_value(b) for p, b in panels.items()}
        name = "curves.png" if key == "reward" else f"curves_{key.replace('/', '_')}.png"
        files[name] = plot_curves(panels, out / name, title=title, ylabel=key, starts=starts)
        lines += [f"## Learning curves: {key}", "",
                  f"![{key} against training step, mean and {int(spec.confidence * 100)} % CI over seeds]({name})",
                  "", f"Each seed's curve smoothed over {spec.smooth} logged steps; SFT start = the first logged "
                  f"step's value (its rollouts come from the SFT policy).", ""]
        if key == spec.curves[0]:
            lines += [f"Sample efficiency: training steps to reach {spec.fraction:g} of the way from the SFT start "
                      "to the best final score (an arm's final score: its smoothed seed-mean curve at its last "
                      "step); on the seed-mean curve, and per seed (mean and CI over the seeds that reached it).",
                      "", "| K | arm | SFT start | best final | steps (mean curve) | steps per seed |",
                      "|---|---|---|---|---|---|"]
            for p, bands in panels.items():
                eff = efficiency(bands, starts[p], spec.fraction)
                finals = [final_value(b) for b in bands.values() if not b.empty]
                best = max(finals) if finals else float("nan")
                for arm, steps in eff.items():
                    per_seed = seed_steps(raw[p][arm], starts[p], best, spec.fraction, spec.smooth)
                    hit = [x for x in per_seed if x is not None]
                    seeds = (mean_ci(hit, spec.confidence, spec.ci).text(digits=1) if hit else "—") + \
                        f", {len(hit)} of {len(per_seed)} seeds reached it"
                    lines.append(f"| {p[2:]} | {arm} | {starts[p]:.4f} | {best:.4f} | "
                                 f"{'not reached' if steps is None else int(steps)} | {seeds} |")
            lines.append("")
    return lines, files


def claim_effect(spec: TableSpec, df: pd.DataFrame) -> Interval | None:
    """The CI of the claimed effect on ``df`` (trained runs): the paired gain at ``claim.K`` (or
    pooled over K > 1), or the slope of the paired gain against log2 K."""
    c = spec.claim
    metric = c.metric or (spec.gain_metrics or spec.metrics)[0]
    treat, ctrl = (float(a) for a in c.pair) if spec.kind == "alpha" else c.pair
    if c.effect == "slope":
        return sw.gain_slope(df, metric, treat, ctrl, spec.by, confidence=spec.confidence)
    pts = sw.gain_points(df, metric, treat, ctrl, spec.by)
    pts = pts[pts["K"] == c.K] if c.K is not None else pts[pts["K"] > 1]
    if pts.empty:
        return None
    return mean_ci(pts["gain"], spec.confidence, spec.ci)


def start_sight(start: pd.DataFrame) -> dict[int, dict]:
    """The sight gate of each K's SFT start: ``{K: check-sight.json}`` read beside the start's eval
    (``runs/<table>/k<K>/sft/check-sight.json`` next to ``.../sft/eval``, as the Makefile writes it);
    a K whose start has no such file is absent.

    Raises:
        ValueError: a ``check-sight.json`` that cannot be read or has no ``passed`` field (naming the file).
    """
    found: dict[int, dict] = {}
    for _, row in start.iterrows():
        path = Path(row["run"]).parent / "check-sight.json"
        if not path.exists():
            continue
        try:
            sight = json.loads(path.read_text())
            sight["passed"] = bool(sight["passed"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"cannot read the sight gate in {path}: {e!r}") from e
        found[int(row["K"])] = sight
    return found


def sight_lines(sight: dict[int, dict]) -> list[str]:
    """The "Sight of the SFT start" section: each K's ``segrl check-sight`` result, and which K the
    verdict leaves out (a start that fails the sight gate cannot carry a claim about using the image)."""
    if not sight:
        return []
    lines = ["## Sight of the SFT start", "", "| K | true image | blank image | chance | McNemar p | gate |",
             "|---|---|---|---|---|---|"]
    for K in sorted(sight):
        g = sight[K]
        lines.append(f"| {K} | {g.get('acc_true', float('nan')):.3f} | {g.get('acc_blank', float('nan')):.3f} | "
                     f"{g.get('chance', float('nan')):.3f} | {g.get('mcnemar_p', float('nan')):.2g} | "
                     f"{'PASS' if g['passed'] else '**FAIL**'} |")
    failed = [K for K in sorted(sight) if not sight[K]["passed"]]
    lines += ["", f"The verdict leaves out K = {', '.join(map(str, failed))}: its start fails the sight gate."
              if failed else "Every start passes the sight gate.", ""]
    return lines


def verdict_lines(spec: TableSpec, gate_passed: bool | None, effect: Interval | None,
                  blind: list[int] | None = None) -> list[str]:
    """The claim and the verdict line (``**Verdict: reproduced**`` ...), always present; ``blind``: the K
    left out of the effect because their SFT start fails the sight gate (said in the line)."""
    if spec.claim is None:
        return ["**Verdict: uninformative** (this table states no claim to test).", ""]
    c = spec.claim
    v, why = verdict(gate_passed, effect, c.min_effect)
    what = {"gain": f"paired gain {c.pair[0]} − {c.pair[1]}" + (f" at K={c.K}" if c.K else " over K > 1"),
            "slope": f"slope of the paired gain {c.pair[0]} − {c.pair[1]} against log2 K"}[c.effect]
    est = effect.text(signed=True) if effect is not None else "no paired runs"
    if blind:
        what += f", without K = {', '.join(map(str, blind))} (start fails the sight gate)"
    return [f"**Claim**: {c.text}", "", f"Measured: {what} ({c.metric or (spec.gain_metrics or spec.metrics)[0]}): "
            f"{est}.", "", f"**Verdict: {v}** ({why}).", ""]


def make_table(spec: TableSpec, runs: list[str] | None = None, out: str | Path | None = None,
               title: str | None = None, command: str = "") -> dict[str, Path]:
    """Build and write one table from its spec; returns the written files by name.

    Raises:
        FileNotFoundError: a run directory holds no eval run.
        KeyError: a run lacks a metric the spec names.
        ValueError: runs that cannot be tabulated (e.g. a non-blend run in an ``alpha`` table, two
            runs of one arm with the same seed in one cell); the message names them.
    """
    out = Path(out or spec.out)
    title = title or spec.title
    if spec.kind == "gather":
        return _make_gathered(spec, out, title, command)
    everything = collect(spec, runs)
    if everything.empty:
        raise ValueError(f"no eval runs found under {list(runs or spec.runs)}")
    everything, identity_lines = add_identity_rows(everything, spec)
    df, start = sw.split_start(everything)
    if df.empty:
        raise ValueError(f"only SFT-start evals (no trained runs) under {list(runs or spec.runs)}")
    by, conf, method, min_n = spec.by, spec.confidence, spec.ci, spec.min_seeds
    gain_metrics = spec.gain_metrics or spec.metrics
    if spec.kind == "alpha":
        sw.alpha_gain_lines(df, [])  # refuse non-blend runs before anything is written
    table = sw.summarize(everything if spec.kind != "alpha" else df, spec.metrics, by=by, confidence=conf,
                         method=method, min_seeds=min_n)
    gate = sw.baseline_gate(df, start, spec.gate_metric or gain_metrics[0], spec.base, by, confidence=conf,
                            method=method)
    real = everything[everything["identity_of"].isna()] if "identity_of" in everything else everything
    body = sw.header_lines(real, command, conf, method, min_n)  # counts the runs made, not their identity copies
    body += [table.to_markdown(index=False), "", *identity_lines]
    files: dict[str, Path] = {}
    if spec.kind == "alpha":
        body += ["## Paired gain over the two ends (same seed)", "", "Rows: alpha of `blend` "
                 "(r' = alpha R + (1 - alpha) r_k; 0 = SD-GRPO, 1 = GRPO).", "",
                 *sw.alpha_gain_lines(df, spec.metrics, confidence=conf, method=method, min_seeds=min_n)]
        files["alpha.png"] = sw.plot_alpha(df, spec.metrics, out / "alpha.png", title=title, start=start)
        body += ["![mean and CI against alpha](alpha.png)", ""]
    else:
        pairs = [p for p in spec.pairs if set(p) <= set(df[by])]
        body += [f"## Paired gains (same seed; {int(conf * 100)} % CI over the paired seeds)", ""]
        absent = [f"{t} − {c}" for t, c in spec.pairs if (t, c) not in pairs]
        if absent:
            body += [f"Pairs without runs of both arms (not shown): {', '.join(absent)}.", ""]
        body += sw.gain_lines(df, gain_metrics, pairs, by, confidence=conf, method=method, min_seeds=min_n,
                              slope=spec.kind != "methods") if pairs else ["(no pair of arms with runs)", ""]
        if spec.kind == "methods":
            files["methods.png"] = sw.plot_methods(df, spec.metrics, out / "methods.png", title=title, start=start)
            body += ["![mean and CI per arm](methods.png)", ""]
        else:
            treat, ctrl = pairs[0] if pairs else ("sd_grpo", "grpo")
            gains = {m: sw.paired_gain(df, m, treat, ctrl, by, confidence=conf, method=method) for m in gain_metrics}
            files["gain.png"] = sw.plot_gain(gains, out / "gain.png", title=title, treatment=treat, control=ctrl)
            body += ["![paired gain against K](gain.png)", ""]
        if spec.kind == "longform":
            files["vs_k.png"] = sw.plot_vs_k(df, spec.metrics, out / "vs_k.png", title=title, start=start)
            body += ["## Against K", "", "![metrics and credit diagnostics against K](vs_k.png)", ""]
    body += ["## Baseline-learns gate", "", *gate.lines(min_n), ""]
    curve_lines, curve_files = curve_sections(df, spec, out, title)
    body += curve_lines
    files.update(curve_files)
    sight = start_sight(start)
    body += sight_lines(sight)
    blind = [K for K in sorted(sight) if not sight[K]["passed"]]
    effect = claim_effect(spec, df[~df["K"].isin(blind)]) if spec.claim else None
    body += ["## Verdict", "", *verdict_lines(spec, gate.passed, effect, blind)]
    body += [f"- {n}" for n in spec.notes] + ([""] if spec.notes else [])
    written = sw.write_report(out, title=title, body=body, table=table, runs=everything)
    return {**written, **files, "_table": table, "_gate": gate}


def _make_gathered(spec: TableSpec, out: Path, title: str, command: str) -> dict[str, Path]:
    """A ``gather`` table: the pairs of ``spec.pairs`` from the source tables' runs (a source whose
    run directories are missing is named in the text, not fatal); one gate per source. Each source's
    ``identity`` arms get their twins' runs (:func:`add_identity_rows`), as the source table shows them."""
    frames, notes, gates = {}, [], {}
    for src, metrics in spec.sources.items():
        src_spec = load_spec(src)
        missing = [r for r in src_spec.runs if not Path(r).exists()]
        if missing:
            notes.append(f"{src}: not run ({', '.join(missing)} missing)")
            continue
        everything, identity_lines = add_identity_rows(collect(src_spec), src_spec)  # as the source table shows it
        df, start = sw.split_start(everything) if not everything.empty else (everything, everything)
        frames[src] = df
        notes += [f"{src}: {line.removeprefix('- ')}" for line in identity_lines if line.startswith("- K = ")]
        algos = set(df["algo"]) if not df.empty else set()
        have = sorted(algos & {a for p in spec.pairs for a in p})
        notes.append(f"{src} ({', '.join(metrics)}): runs of {', '.join(have) or 'none of the paired algorithms'}"
                     f" among {', '.join(sorted(algos)) or 'no runs'}")
        if not df.empty:
            gates[src] = sw.baseline_gate(df, start, metrics[0], "grpo", confidence=spec.confidence, method=spec.ci)
    table = sw.gather_pairs(frames, spec.sources, spec.pairs, confidence=spec.confidence, method=spec.ci,
                            min_seeds=spec.min_seeds)
    shown = table[[c for c in table.columns if not c.startswith("_")]] if not table.empty else table
    body = [f"Made by: `{command}`", "", *[f"- {n}" for n in notes], "",
            f"Cells: mean [{int(spec.confidence * 100)} % CI] (n = seeds); † marks fewer than {spec.min_seeds} seeds.",
            "", shown.to_markdown(index=False) if not shown.empty else "(no Dr. GRPO / SD-Dr. GRPO runs found)", "",
            "![paired gain against K](gain.png)", "", "## Baseline-learns gate (per source table)", ""]
    for src, g in gates.items():
        body += [f"- {src}: " + g.lines(spec.min_seeds)[0]]
    if not gates:
        body += ["- no source table has runs: the gate is not computable and this table is **uninformative**."]
    body += [""]
    png = sw.plot_gathered(table, out / "gain.png", title=title, pairs=spec.pairs)
    effect, passed = None, None
    if spec.claim is not None:
        src = spec.claim.source or next(iter(spec.sources))
        if src in frames and not frames[src].empty:
            sub = dataclasses.replace(spec, kind="sweep", metrics=spec.sources[src], gain_metrics=None)
            effect = claim_effect(sub, frames[src])
            passed = gates[src].passed if src in gates else None
    body += ["## Verdict", "", *verdict_lines(spec, passed, effect)]
    body += [f"- {n}" for n in spec.notes] + ([""] if spec.notes else [])
    written = sw.write_report(out, title=title, body=body, table=table)
    return {**written, "gain.png": png, "_table": shown}

