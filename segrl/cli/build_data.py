"""``segrl build-data TASK``: build a task's DatasetDict on disk (atomically)."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

from segrl.tasks import TASKS, DataError

app = typer.Typer(help="Build a task's dataset (train/test DatasetDict saved to disk).", no_args_is_help=True)
console = Console()


def _report(ds, out: Path, seconds: float) -> None:
    for split, d in ds.items():
        n_seg = sum(len(x) for x in d["segment_labels"])
        console.print(f"[green]{split}[/]: {len(d)} examples, {n_seg} segments")
    console.print(f"wrote {out} in {seconds:.1f}s")


@app.command("multichart")
def multichart(
    source: Path = typer.Option(Path("../shared/data/multichartqa"), help="MultiChartQA directory (data/<group>/...)."),
    out: Path = typer.Option(Path("data/multichart"), help="Output DatasetDict directory."),
    seed: int = typer.Option(0, help="Split seed."),
    test_fraction: float = typer.Option(0.2, help="Fraction of chart groups held out for test."),
    limit: int | None = typer.Option(None, help="Keep only the first N groups (sorted by name)."),
    keep_notes: bool = typer.Option(True, help="Keep MultiChartQA's 'Note that ...' instructions in prompts."),
    questions_per_answer: int | None = typer.Option(
        None, help="K: long-form examples of exactly K (sub-)questions of one chart group; groups with "
        "fewer are skipped and counted. Default: one example per group with all its questions."),
) -> None:
    """Multi-chart long-form QA: one example = one chart group, one segment per (sub-)question."""
    t0 = time.time()
    stats: dict = {}
    try:
        ds = TASKS.get("multichart").build(
            source, out, seed=seed, test_fraction=test_fraction, limit=limit, keep_notes=keep_notes,
            questions_per_answer=questions_per_answer, stats=stats,
        )
    except (DataError, ValueError) as e:
        console.print(f"[red]build-data multichart failed:[/] {e}")
        raise typer.Exit(1) from None
    _report(ds, out, time.time() - t0)
    if questions_per_answer is not None:
        console.print(f"K={questions_per_answer}: {stats['groups']} groups, {stats['groups_skipped']} skipped "
                      f"(fewer than K questions), {stats['segments_left_out']} questions left out (n mod K)")


@app.command("docci")
def docci(
    source: str | None = typer.Option(None, help="DOCCI directory (docci_descriptions.jsonlines + images/) "
                                      "or the hub id google/docci; unused for --source-kind synthetic."),
    out: Path = typer.Option(Path("data/docci"), help="Output DatasetDict directory."),
    source_kind: str = typer.Option("synthetic", help="synthetic (offline, rendered scenes) or docci."),
    panels: int = typer.Option(4, help="K: panels per grid image (one segment each)."),
    panel_side: int = typer.Option(112, help="Side of one panel in pixels."),
    count: int | None = typer.Option(None, help="Examples (synthetic: total; docci: per split)."),
    seed: int = typer.Option(0, help="Scene / grouping seed."),
    split_seed: int = typer.Option(0, help="Train/test split seed (synthetic)."),
    test_fraction: float = typer.Option(0.2, help="Held-out fraction (synthetic)."),
    entangled: bool = typer.Option(False, help="Synthetic panels share a scene; captions refer to earlier panels."),
) -> None:
    """Multi-panel dense captioning: K panels in one grid image, one segment per panel."""
    t0 = time.time()
    try:
        ds = TASKS.get("docci").build(
            source, out, panels=panels, panel_side=panel_side, split_seed=split_seed, seed=seed, count=count,
            test_fraction=test_fraction, source_kind=source_kind, entangled=entangled,
        )
    except (DataError, ValueError) as e:
        console.print(f"[red]build-data docci failed:[/] {e}")
        raise typer.Exit(1) from None
    _report(ds, out, time.time() - t0)


@app.command("mmsci")
def mmsci(
    source: Path = typer.Option(Path("data/raw/mmsci/benchmark"), help="MMSci's benchmark directory "
                                "(<split>/image_caption_generation_data.json + <split>/images/), or its parent."),
    out: Path = typer.Option(Path("data/mmsci"), help="Output DatasetDict directory."),
    setting: str = typer.Option("abstract", help="Prompt context: ungrounded, abstract or content."),
    eval_split: str = typer.Option("dev", help="MMSci split used as our test split: dev or test."),
    limit: int | None = typer.Option(None, help="Keep at most N usable figures per split."),
    max_context_chars: int = typer.Option(4000, help="Cut the abstract / article text to this many characters."),
    max_image_side: int | None = typer.Option(None, help="Shrink figures to this longer side (pixels)."),
    min_subfigures: int = typer.Option(2, help="Fewest sub-figure labels for a usable caption."),
) -> None:
    """MMSci sub-figure captioning: one figure per example, one segment per sub-figure label (a), (b), ..."""
    from segrl.tasks.mmsci import BUILD_LOG, read_build_log

    t0 = time.time()
    try:
        ds = TASKS.get("mmsci").build(
            source, out, setting=setting, eval_split=eval_split, limit=limit, max_context_chars=max_context_chars,
            max_image_side=max_image_side, min_subfigures=min_subfigures,
        )
    except (DataError, ValueError) as e:
        console.print(f"[red]build-data mmsci failed:[/] {e}")
        raise typer.Exit(1) from None
    _report(ds, out, time.time() - t0)
    summary, _ = read_build_log(out)
    for split, s in summary["splits"].items():
        reasons = ", ".join(f"{k}: {v}" for k, v in s["skipped_by_reason"].items()) or "none"
        console.print(f"{split} (MMSci {s['mmsci_split']}): {s['records']} records, {s['kept']} kept, "
                      f"{s['skipped']} skipped ({reasons})")
    console.print(f"skipped figures listed in {out / BUILD_LOG}")


@app.command("grounding")
def grounding(
    source: str | None = typer.Option(None, help="VisionReasoner/ReasonSeg data: a save_to_disk directory, a directory "
                                      "of <split>-*.parquet files or a hub id; unused for --source-kind synthetic."),
    out: Path = typer.Option(Path("data/grounding"), help="Output DatasetDict directory."),
    source_kind: str = typer.Option("synthetic", help="synthetic (offline, rendered scenes) or visionreasoner."),
    count: int | None = typer.Option(None, help="Examples (synthetic: total, default 200; loaded: per split)."),
    seed: int = typer.Option(0, help="Scene seed (synthetic)."),
    split_seed: int = typer.Option(0, help="Train/test split seed (synthetic, or loaded data without a test split)."),
    test_fraction: float = typer.Option(0.2, help="Held-out fraction (same cases)."),
    image_side: int = typer.Option(840, help="Synthetic canvas side in pixels."),
    max_targets: int = typer.Option(3, help="Most targets per synthetic query."),
    look_to_confirm: bool = typer.Option(True, "--look-to-confirm/--plain", help="Dr. Seg's Look-to-Confirm prompt "
                                         "(and <look> blocks in the references), or VisionReasoner's plain one."),
) -> None:
    """Reasoning grounding: boxes and points of the object(s) an indirect query describes, one segment per object."""
    t0 = time.time()
    try:
        ds = TASKS.get("grounding").build(
            source, out, source_kind=source_kind, count=count, seed=seed, split_seed=split_seed,
            test_fraction=test_fraction, image_side=image_side, max_targets=max_targets, look_to_confirm=look_to_confirm,
        )
    except (DataError, ValueError) as e:
        console.print(f"[red]build-data grounding failed:[/] {e}")
        raise typer.Exit(1) from None
    _report(ds, out, time.time() - t0)


@app.command("charts")
def charts(
    out: Path = typer.Option(Path("data/charts"), help="Output DatasetDict directory."),
    questions_per_answer: int = typer.Option(4, help="K: questions (segments) per example."),
    count: int = typer.Option(400, help="Chart groups to draw (groups with fewer than K questions are skipped)."),
    chart_side: int = typer.Option(112, help="Side of each rendered chart in pixels."),
    seed: int = typer.Option(0, help="Drawing and split seed."),
    test_fraction: float = typer.Option(0.2, help="Fraction of chart groups held out for test."),
    tables: list[str] | None = typer.Option(None, "--table", help="Use only this table (repeatable; default all): "
                                            "see segrl.tasks.chartgen.TABLES."),
) -> None:
    """Controlled multi-chart QA: 2-3 charts rendered from real packaged tables, K template questions each."""
    t0 = time.time()
    stats: dict = {}
    try:
        ds = TASKS.get("charts").build(
            None, out, questions_per_answer=questions_per_answer, count=count, chart_side=chart_side, seed=seed,
            test_fraction=test_fraction, tables=tables or None, stats=stats,
        )
    except (DataError, ValueError) as e:
        console.print(f"[red]build-data charts failed:[/] {e}")
        raise typer.Exit(1) from None
    _report(ds, out, time.time() - t0)
    console.print(f"K={questions_per_answer}: {stats['groups']} groups, {stats['groups_skipped']} skipped (fewer than "
                  f"K questions); segments per template: {dict(sorted(stats['templates'].items()))}")
