"""``segrl eval``: generate on a split, score every segment, write predictions and metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from datasets import load_from_disk
from rich.progress import Progress

from segrl.eval.generate import Sampling, batched, generate
from segrl.provenance import code_state, dataset_fingerprint, now, write_run_json
from segrl.rewards import format_reward, make_segment_reward
from segrl.rewards.scorer import score_segments
from segrl.tasks import TASKS
from segrl.tasks.base import downscale_images


def aggregate(per_metric: dict[str, list[list[float | None]]], formats: list[float]) -> dict:
    """Summarise per-segment scores.

    Args:
        per_metric: metric name -> per example, the list of its K_i segment scores
            (None = reference not scorable, left out).
        formats: per example, its format reward.

    Returns:
        ``{metric: mean over all scored segments, metric + "_by_position": [mean at segment k],
        metric + "_example_mean": mean over examples of the per-example mean, "format": ...}``;
        for ``accuracy`` also ``all_correct`` (fraction of examples with every segment right).
    """
    out: dict = {"format": sum(formats) / len(formats) if formats else None}
    for name, rows in per_metric.items():
        flat = [s for r in rows for s in r if s is not None]
        out[name] = sum(flat) / len(flat) if flat else None
        K = max((len(r) for r in rows), default=0)
        by_pos = []
        for k in range(K):
            vals = [r[k] for r in rows if k < len(r) and r[k] is not None]
            by_pos.append(sum(vals) / len(vals) if vals else None)
        out[f"{name}_by_position"] = by_pos
        ex = [sum(v for v in r if v is not None) / max(1, sum(v is not None for v in r)) for r in rows if r]
        out[f"{name}_example_mean"] = sum(ex) / len(ex) if ex else None
        if name == "accuracy":
            out["all_correct"] = sum(all(v == 1.0 for v in r if v is not None) for r in rows) / max(1, len(rows))
    return out


def mean_over_samples(summaries: list[dict]) -> dict:
    """Mean (and, with several, the sample std) over per-sample summaries of every scalar metric.

    Args:
        summaries: one :func:`aggregate`-style summary per sample index j (completion j of every prompt).

    Returns:
        ``{metric: mean_j, metric + "_sample_std": std_j (n - 1 denominator; with >= 2 samples)}``.
    """
    out: dict = {}
    keys = [k for k, v in summaries[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    for k in keys:
        vals = [s[k] for s in summaries if isinstance(s.get(k), (int, float))]
        if not vals:
            continue
        mean = sum(vals) / len(vals)
        out[k] = mean
        if len(vals) > 1:
            out[f"{k}_sample_std"] = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5
    return out


def main(task_name: str, model: str, data: str, out_dir: str, *, split: str = "test",
         max_new_tokens: int = 96, batch_size: int = 8, limit: int | None = None, dtype: str | None = None,
         max_image_side: int | None = None, metric_options: dict[str, dict] | None = None,
         sampling: Sampling | None = None, extra_metrics: tuple[str, ...] = ()) -> dict:
    """Evaluate ``model`` on ``data``'s ``split``; write ``predictions.jsonl``, ``metrics.json``, ``run.json``.

    Greedy decoding always gives the top-level metrics. With ``sampling`` (e.g. SAPO's Table 7:
    temperature 0.6, top-p 0.95) the split is also decoded ``sampling.num_samples`` times per prompt;
    ``metrics.json`` then holds ``sampled``: the settings and each metric's mean over the samples (and its
    std across them), beside the greedy metrics; the samples go to ``predictions_sampled.jsonl``.

    ``metric_options`` maps a metric name to its factory options (e.g. ``{"bertscore":
    {"model_type": "allenai/scibert_scivocab_uncased"}}``). The task's ``holistic_metrics`` are
    also scored on the whole completion against the whole reference (``<name>_holistic``);
    ``metrics.json`` names the model behind every model-based metric (``metric_models``).
    ``extra_metrics`` adds segment metrics beyond the task's ``eval_metrics`` (e.g. ``("bertscore",)`` on
    docci, Table 3), each also scored holistically.

    Raises:
        FileNotFoundError: the dataset directory does not exist.
        KeyError: unknown task or split (listing the known ones).
    """
    from segrl.models.loading import load_policy

    code_state()  # the code this evaluation runs: what run.json records, whatever the checkout does meanwhile
    task = TASKS.get(task_name)
    if not Path(data).exists():
        raise FileNotFoundError(f"dataset not found at {data}: run `segrl build-data {task_name}` first")
    ds = load_from_disk(data)
    if split not in ds:
        raise KeyError(f"split {split!r} not in {data}; available: {list(ds)}")
    rows = ds[split]
    if limit is not None:
        rows = rows.select(range(min(limit, len(rows))))
    rows = downscale_images(rows, max_image_side)
    corpus = [refs for r in ds["train"]["segment_references"] for refs in r] if "train" in ds else None
    options = metric_options or {}
    metrics = {name: make_segment_reward(name, reference_corpus=corpus, **options.get(name, {}))
               for name in dict.fromkeys((*task.eval_metrics, *extra_metrics))}
    holistic_names = tuple(dict.fromkeys((*task.holistic_metrics, *extra_metrics)))

    torch.manual_seed(0)
    policy, processor = load_policy(model, dtype=dtype)
    policy.eval()
    started, t0 = now(), time.time()
    completions: list[str] = []
    with Progress(transient=True) as progress:
        bar = progress.add_task(f"eval {task_name}/{split}", total=len(rows))
        for batch in batched(rows, batch_size):
            completions.extend(generate(policy, processor, batch, max_new_tokens=max_new_tokens))
            progress.advance(bar, len(batch))

    labels = rows["segment_labels"]
    refs = rows["segment_references"]
    whole = [[r] for r in rows["reference"]]

    def score(completions):
        per_metric: dict[str, list[list[float | None]]] = {}
        for name, fn in metrics.items():
            sc = score_segments(completions, labels, refs, fn)
            per_metric[name] = [
                [float(sc.rewards[i, k]) if sc.mask[i, k] else None for k in range(len(labels[i]))]
                for i in range(len(completions))
            ]
        formats = format_reward(completions, labels)
        summary = aggregate(per_metric, formats)
        holistic = {f"{name}_holistic": metrics[name](completions, whole) for name in holistic_names}
        for key, vals in holistic.items():
            kept = [v for v in vals if v is not None]
            summary[key] = sum(kept) / len(kept) if kept else None
        return summary, per_metric, formats, holistic

    summary, per_metric, formats, holistic = score(completions)
    sampled_rows: list[dict] = []
    if sampling is not None:
        torch.manual_seed(sampling.seed)
        samples: list[list[str]] = [[] for _ in range(sampling.num_samples)]  # samples[j][i]: prompt i's j-th
        for batch in batched(rows, batch_size):
            flat = generate(policy, processor, batch, max_new_tokens=max_new_tokens, sampling=sampling)
            for j in range(sampling.num_samples):
                samples[j].extend(flat[j::sampling.num_samples])
        per_sample = []
        for j, sample in enumerate(samples):
            s_summary, s_metric, s_formats, _ = score(sample)
            per_sample.append(s_summary)
            sampled_rows.extend({"id": rows["id"][i], "sample": j, "completion": c, "format": s_formats[i],
                                 **{name: s_metric[name][i] for name in s_metric}} for i, c in enumerate(sample))
        summary["sampled"] = {"temperature": sampling.temperature, "top_p": sampling.top_p,
                              "num_samples": sampling.num_samples, "seed": sampling.seed,
                              **mean_over_samples(per_sample)}

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "predictions.jsonl").open("w") as f:
        for i, row_id in enumerate(rows["id"]):
            rec = {"id": row_id, "completion": completions[i], "reference": rows[i]["reference"],
                   "format": formats[i], **{name: per_metric[name][i] for name in per_metric},
                   **{key: vals[i] for key, vals in holistic.items()}}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    if sampled_rows:
        with (out / "predictions_sampled.jsonl").open("w") as f:
            for rec in sampled_rows:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    result = {
        "task": task.name, "task_version": task.version, "model": model, "split": split,
        "n_examples": len(completions), "n_segments": sum(len(x) for x in labels),
        "metrics": summary, "wall_time_s": round(time.time() - t0, 1), "max_image_side": max_image_side,
        "metric_models": {name: fn.model_name for name, fn in metrics.items() if hasattr(fn, "model_name")},
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    write_run_json(out, kind="eval", task={"name": task.name, "version": task.version}, model=model,
                   data={"path": data, "split": split, "fingerprint": dataset_fingerprint(data)},
                   started=started, finished=now(), summary=result)
    return result
