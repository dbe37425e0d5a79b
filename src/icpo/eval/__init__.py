"""Evaluation: benchmark presets (``benchmarks``), batched generation with confidence (``generation``),
the resumable harness (``harness``), metrics (``metrics``) and the ``icpo eval`` command (``cli``)."""
