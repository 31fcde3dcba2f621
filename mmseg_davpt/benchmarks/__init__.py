"""Benchmark suite behind ``tools/benchmark.py`` (``cli``).

One module per subcommand (``forward``, ``train``, ``kmeans``, ``infer``,
``onnx`` in ``onnx_latency``, ``compile`` in ``compiled``),
shared timing / memory / report helpers in ``common``. Every benchmark runs
its variants round-robin in one process (machine-load drift hits all alike),
after warm-up, and reports medians and ratios to the first variant.
"""
