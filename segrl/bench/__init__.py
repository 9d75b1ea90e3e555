"""Benchmarks whose results are committed under ``results/bench/``, one module each.

* :mod:`segrl.bench.rewards` (``segrl bench rewards``): per-segment caption rewards, batched
  through segrl's long-lived scorers versus pycocoevalcap called once per segment.
"""
