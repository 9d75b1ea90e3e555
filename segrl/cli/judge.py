"""``segrl judge``: LLM-judge evaluation of ``segrl eval`` runs (absolute scores, or pairwise between two runs)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from segrl.cli.errors import fail

app = typer.Typer(help="LLM judge through an OpenAI-compatible chat-completions endpoint.", no_args_is_help=True)
console = Console()

URL = typer.Option(..., "--url", help="Endpoint: http://host:port/v1 (or the full .../chat/completions URL).")
MODEL = typer.Option(..., "--model", help="The judge model's name on that server.")
CACHE = typer.Option(None, "--cache", help="Reply cache directory (default: <out>/cache).")
RETRIES = typer.Option(2, "--retries", help="Retries of an invalid reply, timeout or HTTP 429/5xx.")
TIMEOUT = typer.Option(60.0, "--timeout", help="Seconds to wait for one reply.")
BACKOFF = typer.Option(1.0, "--backoff", help="Base wait (s) before a retry after a timeout or HTTP error.")
WORKERS = typer.Option(1, "--workers", help="Requests in flight at once.")


def make_judge(url: str, model: str, cache: Path | None, retries: int, timeout: float, backoff: float):
    """A :class:`segrl.eval.judge.ChatJudge` from CLI options (the API key comes from the environment)."""
    from segrl.eval.judge import ChatJudge

    return ChatJudge(url, model, timeout_s=timeout, max_retries=retries, backoff_s=backoff, cache_dir=cache)


def print_absolute(summary: dict) -> None:
    means = "  ".join(f"{a} {v:.3f}" if v is not None else f"{a} n/a" for a, v in summary["mean"].items())
    st = summary["stats"]
    console.print(f"judge {summary['judge']['model']}: {means}  (scored {summary['n_scored']}/{summary['n']}, "
                  f"missing {summary['n_missing']}; requests {st['requests']}, cache hits {st['cache_hits']}, "
                  f"retries {st['retries']})")


@app.command("absolute")
def absolute(
    run: Path = typer.Argument(..., help="A `segrl eval` output directory (holding predictions.jsonl)."),
    url: str = URL, model: str = MODEL, cache: Path | None = CACHE, retries: int = RETRIES,
    timeout: float = TIMEOUT, backoff: float = BACKOFF, workers: int = WORKERS,
    out: Path | None = typer.Option(None, help="Output directory (default: <run>/judge)."),
) -> None:
    """Accuracy, completeness, fluency (1-5, steps of 0.5) of every prediction against its reference."""
    from segrl.eval.judge import JudgeError, judge_run

    out = out or run / "judge"
    judge = make_judge(url, model, cache or out / "cache", retries, timeout, backoff)
    try:
        summary = judge_run(judge, run, out, workers=workers)
    except (JudgeError, FileNotFoundError, ValueError) as e:
        fail(f"judge failed: {e}")
    print_absolute(summary)
    console.print(f"wrote {out}/absolute.json and absolute.jsonl")


@app.command("pairwise")
def pairwise(
    run_a: Path = typer.Argument(..., help="`segrl eval` output directory of run A."),
    run_b: Path = typer.Argument(..., help="`segrl eval` output directory of run B (same data)."),
    out: Path = typer.Option(..., help="Output directory."),
    seed: int = typer.Option(0, help="Seed of the per-example A/B presentation order."),
    url: str = URL, model: str = MODEL, cache: Path | None = CACHE, retries: int = RETRIES,
    timeout: float = TIMEOUT, backoff: float = BACKOFF, workers: int = WORKERS,
) -> None:
    """Which run's prediction is better, per axis and overall (A / B / tie), order randomised and recorded."""
    from segrl.eval.judge import JudgeError, judge_runs_pairwise

    judge = make_judge(url, model, cache or out / "cache", retries, timeout, backoff)
    try:
        s = judge_runs_pairwise(judge, run_a, run_b, out, seed=seed, workers=workers)
    except (JudgeError, FileNotFoundError, ValueError) as e:
        fail(f"judge failed: {e}")
    for axis, c in s["axes"].items():
        rate = "n/a" if c["win_rate_a"] is None else f"{c['win_rate_a']:.3f}"
        console.print(f"{axis}: A {c['a']}  B {c['b']}  tie {c['tie']}  (win rate of A {rate})")
    console.print(f"judged {s['n_judged']}/{s['n']} (missing {s['n_missing']}); A = {run_a}, B = {run_b}; "
                  f"wrote {out}/pairwise.json and pairwise.jsonl")
