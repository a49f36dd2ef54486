"""wsgate's benchmark suite: `python -m bench.run --quick` (see BENCHMARKS.md)."""
