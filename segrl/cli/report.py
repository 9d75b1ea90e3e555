"""``segrl report``: gather eval runs into a table printed with rich, written as md + csv.

``segrl report RUN_DIR ...`` tabulates individual runs; ``segrl report table1`` (a name from
:data:`TABLES`) aggregates a sweep into mean ± std over seeds with the paired-gain plot.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console

console = Console()

TABLES = {
    "table1": {
        "runs": ["runs/table1"],
        "metrics": ["cider_d", "bleu4", "meteor"],
        "out": "results/table1",
        "title": "Table 1: multi-panel captioning (synthetic DOCCI-style panels), tiny LLaVA, CPU preset",
    },
    "table3": {
        "runs": ["runs/table3"],
        "metrics": ["cider_d", "bleu4", "meteor"],
        "out": "results/table3",
        "title": "Table 3: blend sweep (alpha) on entangled synthetic panels, tiny LLaVA, CPU preset",
        "by": "alpha",
    },
}
"""Named sweep reports: where their runs live, which metrics, where the table goes, and the row
key (``by``: ``algo`` by default, ``alpha`` for the blend sweep)."""

TABLES.update({
    "table2": {  # kind "longform": one row per trained model, its two evals and its credit diagnostics
        "kind": "longform",
        "runs": ["runs/table2"],
        "evals": {"eval": {"accuracy": "accuracy"}, "eval-real": {"real_accuracy": "accuracy"}},
        "train_metrics": {"misattributed": "credit/misattributed_token_frac",
                          "corr_rollout_segment": "credit/corr_rollout_segment_adv"},
        "metrics": ["accuracy", "real_accuracy", "misattributed", "corr_rollout_segment"],
        "gain_metrics": ["accuracy", "real_accuracy"],
        "out": "results/table2",
        "title": "Table 2: multi-chart long-form QA (K questions per answer), tiny LLaVA, CPU preset",
        "notes": [
            "accuracy: per-question accuracy on the held-out chart groups of the controlled variant "
            "(task `charts`, same K); real_accuracy: on the test groups of the real MultiChartQA sample built "
            "with the same K (`eval-real`; empty at K=8: no group of the sample has 8 questions).",
            "misattributed: mean over training steps of `credit/misattributed_token_frac` (completion tokens "
            "whose advantage sign disagrees with their own segment's centred reward; 0 by construction under "
            "sd_grpo / sd_dr_grpo); corr_rollout_segment: mean of `credit/corr_rollout_segment_adv` "
            "(rollout-level vs the segment's own advantage; 1/sqrt(K) for K independent segments).",
        ],
    },
    "drseg": {  # kind "methods": rows = experiment arm (runs/drseg/<arm>/seedN)
        "kind": "methods",
        "runs": ["runs/drseg"],
        "metrics": ["giou", "count_accuracy", "iou"],
        "pairs": [("drseg", "vision_reasoner"), ("drseg", "sd_grpo")],
        "out": "results/drseg",
        "title": "Dr. Seg vs VisionReasoner reward vs SD-GRPO (per-object IoU), synthetic grounding, tiny LLaVA, CPU",
        "notes": ["giou: mean per-image IoU of the predicted and target box unions; count_accuracy: fraction of "
                  "images with as many predicted objects as targets; iou: mean per-object IoU (segment k vs "
                  "target k), all on the held-out split (segrl.tasks.grounding.add_grounding_metrics)."],
    },
    "sapo_docci": {
        "kind": "methods",
        "runs": ["runs/table1/k4/grpo", "runs/table1/k4/sd_grpo", "runs/sapo/docci-k4"],
        "metrics": ["cider_d", "bleu4", "meteor"],
        "pairs": [("sapo-entropy", "grpo"), ("sapo-entropy", "sd_grpo"), ("sapo-task", "sapo-entropy")],
        "out": "results/sapo/docci-k4",
        "title": "SAPO (entropy / newline / task segments) vs GRPO vs SD-GRPO, docci K=4, tiny LLaVA, CPU",
    },
    "sapo_multichart": {
        "kind": "methods",
        "runs": ["runs/baselines/multichart", "runs/sapo/multichart"],
        "metrics": ["accuracy", "format"],
        "pairs": [("sapo-entropy", "grpo"), ("sapo-entropy", "sd_grpo"), ("sapo-task", "sapo-entropy")],
        "out": "results/sapo/multichart",
        "title": "SAPO (entropy / newline / task segments) vs GRPO vs SD-GRPO, MultiChartQA sample, tiny LLaVA, CPU",
    },
    "srpo_docci": {
        "kind": "methods",
        "runs": ["runs/table1/k4/grpo", "runs/table1/k4/sd_grpo", "runs/srpo/docci-k4"],
        "metrics": ["cider_d", "bleu4", "meteor"],
        "pairs": [("srpo", "grpo"), ("sd_srpo", "sd_grpo")],
        "out": "results/srpo/docci-k4",
        "title": "SRPO / SD-SRPO vs GRPO / SD-GRPO, docci K=4, tiny LLaVA, CPU",
        "notes": ["srpo / sd_srpo start from a warm start on structured references (their own SFT); grpo / "
                  "sd_grpo from the plain one."],
    },
    "srpo_multichart": {
        "kind": "methods",
        "runs": ["runs/baselines/multichart", "runs/srpo/multichart"],
        "metrics": ["accuracy", "format"],
        "pairs": [("srpo", "grpo"), ("sd_srpo", "sd_grpo")],
        "out": "results/srpo/multichart",
        "title": "SRPO / SD-SRPO vs GRPO / SD-GRPO, MultiChartQA sample, tiny LLaVA, CPU",
        "notes": ["srpo / sd_srpo start from a warm start on structured references (their own SFT); grpo / "
                  "sd_grpo from the plain one."],
    },
    "table4": {  # kind "gather": Dr. GRPO vs SD-Dr. GRPO (and GRPO vs SD-GRPO) from the other tables' runs
        "kind": "gather",
        "sources": {"table1": ["cider_d"], "table2": ["accuracy", "real_accuracy"], "table3": ["cider_d"]},
        "pairs": [("sd_dr_grpo", "dr_grpo"), ("sd_grpo", "grpo")],
        "out": "results/table4",
        "title": "Table 4: SD-GRPO inside Dr. GRPO (sd_dr_grpo vs dr_grpo), beside GRPO, from tables 1-3 (CPU)",
    },
})


def command(
    runs: list[str] = typer.Argument(..., help="Eval run directories (or parents to search), or a table name "
                                     f"({', '.join(TABLES)}) optionally followed by run directories."),
    out: Path | None = typer.Option(None, help="Directory for table.md and table.csv (default: results/report, "
                                    "or the named table's)."),
    title: str | None = typer.Option(None, help="Table title."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed", help="Put runs of different task versions or "
                                     "datasets in one table (the task and data columns tell them apart)."),
) -> None:
    """Collect metrics.json files into one table (or a named sweep table)."""
    if runs[0] in TABLES:
        _sweep(runs[0], runs[1:], out, title)
        return
    from segrl.eval.report import collect, show, write

    out = out or Path("results/report")
    title = title or "segrl report"
    try:
        df = collect(runs, allow_mixed=allow_mixed)
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    parts = ["segrl", "report", *map(str, runs), "--out", str(out), "--title", title]
    if allow_mixed:
        parts.append("--allow-mixed")
    md, csv = write(df, out, title=title, command=" ".join(shlex.quote(a) for a in parts))
    show(df, title, console)
    console.print(f"wrote {md} and {csv}")


def _sweep(name: str, runs: list[str], out: Path | None, title: str | None) -> None:
    from segrl.eval.report import show
    from segrl.eval.sweep import collect_sweep, summarize, write_alpha_sweep, write_sweep

    spec = TABLES[name]
    if "kind" in spec:  # table2 (longform), table4 (gather)
        _special(name, spec, runs, out, title)
        return
    runs = runs or spec["runs"]
    out = out or Path(spec["out"])
    title = title or spec["title"]
    try:
        df = collect_sweep(runs, spec["metrics"])
    except (FileNotFoundError, KeyError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    command_line = " ".join(shlex.quote(a) for a in ["segrl", "report", name, *runs, "--out", str(out)])
    by = spec.get("by", "algo")
    writer = write_alpha_sweep if by == "alpha" else write_sweep
    try:
        files = writer(df, spec["metrics"], out, title=title, command=command_line)
    except ValueError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    show(summarize(df, spec["metrics"], by=by), title, console)
    console.print(f"wrote {files['md']}, {files['csv']} and {files['png']}")


def _collect(spec: dict, runs: list[str]):
    """A named table's sweep frame (its own collector for kind ``longform``)."""
    from segrl.eval.sweep import collect_longform, collect_sweep

    if spec.get("kind") == "longform":
        return collect_longform(runs, spec["evals"], spec["train_metrics"])
    return collect_sweep(runs, spec["metrics"])


def _special(name: str, spec: dict, runs: list[str], out: Path | None, title: str | None) -> None:
    """``table2`` (one row per model: both evals and the credit diagnostics) and ``table4`` (pairs
    gathered from the other tables' default run directories; missing tables are named, not fatal)."""
    from segrl.eval.report import show
    from segrl.eval.sweep import gather_pairs, summarize, write_gathered, write_longform_sweep

    out = out or Path(spec["out"])
    title = title or spec["title"]
    if spec["kind"] == "gather":
        if runs:
            console.print(f"[red]{name} reads the runs of {', '.join(spec['sources'])}; give no run directories[/]")
            raise typer.Exit(2)
        frames, notes = {}, []
        for src, metrics in spec["sources"].items():
            src_runs = TABLES[src]["runs"]
            missing = [r for r in src_runs if not Path(r).exists()]
            if missing:
                notes.append(f"{src}: not run ({', '.join(missing)} missing)")
                continue
            try:
                frames[src] = _collect(TABLES[src], src_runs)
            except (FileNotFoundError, KeyError, ValueError) as e:
                console.print(f"[red]{src}: {e}[/]")
                raise typer.Exit(1) from None
            algos = set(frames[src]["algo"]) if not frames[src].empty else set()
            have = sorted(algos & {a for p in spec["pairs"] for a in p})
            notes.append(f"{src} ({', '.join(metrics)}): runs of {', '.join(have) or 'none of the paired algorithms'}"
                         f" among {', '.join(sorted(algos)) or 'no runs'}")
        table = gather_pairs(frames, spec["sources"], spec["pairs"])
        command_line = " ".join(shlex.quote(a) for a in ["segrl", "report", name, "--out", str(out)])
        files = write_gathered(table, out, title=title, command=command_line, pairs=spec["pairs"], notes=notes)
        if not table.empty:
            show(table[[c for c in table.columns if not c.startswith("_")]], title, console)
        for n in notes:
            console.print(n)
        console.print(f"wrote {files['md']}, {files['csv']} and {files['png']}")
        return
    runs = runs or spec["runs"]
    if spec["kind"] == "methods":
        _methods(name, spec, runs, out, title)
        return
    try:
        df = _collect(spec, runs)
    except (FileNotFoundError, KeyError, ValueError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    if df.empty:
        console.print(f"[red]no eval runs named {list(spec['evals'])} under {runs}[/]")
        raise typer.Exit(1)
    command_line = " ".join(shlex.quote(a) for a in ["segrl", "report", name, *runs, "--out", str(out)])
    files = write_longform_sweep(df, spec["metrics"], out, title=title, command=command_line,
                                 gain_metrics=spec["gain_metrics"], notes=spec.get("notes", []))
    show(summarize(df, spec["metrics"]), title, console)
    console.print(f"wrote {files['md']}, {files['csv']}, {files['gain_png']} and {files['png']}")


def _methods(name: str, spec: dict, runs: list[str], out: Path, title: str) -> None:
    """A method comparison (kind ``methods``): rows = experiment arm, paired gains of ``spec["pairs"]``."""
    from segrl.eval.report import show
    from segrl.eval.sweep import collect_sweep, summarize, write_methods

    try:
        df = collect_sweep(runs, spec["metrics"])
    except (FileNotFoundError, KeyError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(1) from None
    df = df[df["arm"] != "(init)"]
    command_line = " ".join(shlex.quote(a) for a in ["segrl", "report", name, *runs, "--out", str(out)])
    files = write_methods(df, spec["metrics"], out, title=title, command=command_line, pairs=spec["pairs"],
                          notes=spec.get("notes", []))
    show(summarize(df, spec["metrics"], by="arm"), title, console)
    console.print(f"wrote {files['md']}, {files['csv']} and {files['png']}")
