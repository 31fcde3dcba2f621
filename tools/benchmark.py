#!/usr/bin/env python
"""Benchmark suite: backbone forward, training step, k-means refresh and
slide inference, each measured side by side in one process.

Subcommands (code in ``mmseg_davpt/benchmarks/<name>.py``):

* ``forward``: our prompted ViT (0 prompts) vs MMSegmentation's ViT with
  the same weights, and the paper's prompt counts vs 0 prompts;
  forward-only and forward+backward.
* ``train``: training-step time and training memory of configs (default:
  VPT, DA-VPT, DA-VPT+, full fine-tuning on ADE20K), optionally with
  gradient checkpointing and mixed precision (``--modes base cp amp``).
* ``kmeans``: class -> prompt mapping refresh time and its share of the
  iterations between two refreshes.
* ``infer``: slide-mode inference throughput (images/s).
* ``onnx``: ONNX Runtime vs PyTorch eager latency of the exported graph
  (``onnx_latency.py``; needs the ``deploy`` extra).
* ``compile``: DA-VPT training step eager vs ``torch.compile``
  (``compiled.py``; mmengine's ``compile=True``).

Variants run round-robin (drift in machine load hits all alike) after
warm-up; medians and ratios to the first variant are printed and written
with ``--json`` / ``--markdown``. Random weights everywhere (no downloads).

Examples (CPU; see docs/performance.md for the recorded runs)::

    python tools/benchmark.py forward --threads 2 --json fwd.json
    python tools/benchmark.py train --modes base cp amp --img-size 128
    python tools/benchmark.py train \
        configs/demo/davpt_setr_vit-tiny_shapes-64x64.py \
        --guidance-off-twin --img-size 64 --batch 8 --repeats 50
    python tools/benchmark.py kmeans --markdown kmeans.md
    python tools/benchmark.py infer configs/vpt_setr_ade20k.py --img-size 128
    python tools/benchmark.py onnx --threads 2 --markdown onnx.md
    python tools/benchmark.py compile --img-size 64 --batch 8 --threads 2
"""
from mmseg_davpt.benchmarks.cli import main

if __name__ == '__main__':
    main()
