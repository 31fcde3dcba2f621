"""``python -m mmseg_davpt.benchmarks SUBCOMMAND ...``: the benchmark suite,
as ``tools/benchmark.py``."""
from .cli import main

main(prog='python -m mmseg_davpt.benchmarks')
