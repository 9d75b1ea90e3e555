"""``segrl eval TASK``: greedy generation on a split + per-segment and overall metrics."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from segrl.cli.errors import fail

console = Console()


def command(
    task: str = typer.Argument(..., help="Task name (e.g. multichart)."),
    model: str = typer.Option(..., help="Model to evaluate: local path or hub id."),
    data: Path = typer.Option(None, help="Built dataset (default: data/<task>)."),
    out: Path = typer.Option(None, help="Output directory (default: <model>/eval)."),
    split: str = typer.Option("test", help="Split to evaluate."),
    max_new_tokens: int = typer.Option(96, help="Generation budget per example (tokens)."),
    batch_size: int = typer.Option(8, help="Examples per generate() call."),
    limit: int | None = typer.Option(None, help="Evaluate only the first N examples."),
    max_image_side: int | None = typer.Option(None, help="Downscale images (longer side, px) as in training."),
    bertscore_model: str | None = typer.Option(None, help="BERTScore model: hub id or path (default: the packaged "
                                               "MiniLM, offline; science: allenai/scibert_scivocab_uncased)."),
    bertscore_layers: int | None = typer.Option(None, help="BERTScore layer (default: the model's usual one)."),
    judge_url: str | None = typer.Option(None, help="Also score with an LLM judge at this OpenAI-compatible "
                                         "endpoint (http://host:port/v1); see `segrl judge --help`."),
    judge_model: str | None = typer.Option(None, help="The judge's model name (with --judge-url)."),
    judge_cache: Path | None = typer.Option(None, help="Judge reply cache (default: <out>/judge/cache)."),
    judge_retries: int = typer.Option(2, help="Judge retries per example (invalid reply, timeout, HTTP 429/5xx)."),
    judge_timeout: float = typer.Option(60.0, help="Seconds to wait for one judge reply."),
    config: Path | None = typer.Option(None, help="Experiment preset whose eval section sets the sampled evaluation "
                                       "(eval.temperature, eval.top_p, eval.num_samples), e.g. configs/sapo_cpu.yaml."),
    temperature: float | None = typer.Option(None, help="Also evaluate sampled at this temperature (beside greedy)."),
    top_p: float | None = typer.Option(None, help="Nucleus top-p of the sampled evaluation."),
    num_samples: int | None = typer.Option(None, help="Samples per prompt of the sampled evaluation (metrics averaged)."),
    metric: list[str] = typer.Option([], "--metric", help="Also score this segment metric (repeatable; e.g. bertscore "
                                     "on docci), per segment and on the whole answer."),
) -> None:
    """Evaluate a model; writes predictions.jsonl, metrics.json and run.json (and judge/ with --judge-url)."""
    from segrl.eval.evaluate import main
    from segrl.models.loading import resolve_local
    from segrl.runlock import run_lock

    if (judge_url is None) != (judge_model is None):
        fail("--judge-url and --judge-model go together")
    resolve_local(model)  # a missing model path fails before any data work
    data = data or Path("data") / task
    out = out or Path(model) / "eval"
    options = {}
    if bertscore_model or bertscore_layers:
        options["bertscore"] = {"model_type": bertscore_model, "num_layers": bertscore_layers}
    from segrl.eval.generate import Sampling

    section = None
    if config is not None:
        from segrl.config import load_config

        section = load_config(str(config)).eval
    temperature = temperature if temperature is not None else (section.temperature if section else None)
    sampling = None
    if temperature is not None:
        sampling = Sampling(temperature=temperature,
                            top_p=top_p if top_p is not None else (section.top_p if section else 1.0),
                            num_samples=num_samples if num_samples is not None else (section.num_samples if section else 1))
    with run_lock(out):  # one writer per output directory (segrl.runlock)
        result = main(task, model, str(data), str(out), split=split, max_new_tokens=max_new_tokens,
                      batch_size=batch_size, limit=limit, max_image_side=max_image_side, metric_options=options,
                      sampling=sampling, extra_metrics=tuple(metric))
        m = result["metrics"]
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if not isinstance(v, list)}
        console.print(f"[bold]{task}[/] {split} n={result['n_examples']}: {shown}")
        console.print(f"wrote {out}/metrics.json")
        if judge_url:
            from segrl.cli.judge import make_judge, print_absolute
            from segrl.eval.judge import JudgeError, judge_run

            judge = make_judge(judge_url, judge_model, judge_cache or out / "judge" / "cache", judge_retries,
                               judge_timeout, 1.0)
            try:
                print_absolute(judge_run(judge, out))
            except JudgeError as e:
                fail(f"judge failed: {e}")
            console.print(f"wrote {out}/judge/absolute.json")
