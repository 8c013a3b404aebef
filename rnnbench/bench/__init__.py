"""Step-time benchmark of the classifier: compile time, step times, throughput, FLOPs, memory.

One config's model, or a grid of cells x batch sizes x sequence lengths x hidden sizes, on a
synthetic batch::

    python -m rnnbench.bench --config=configs/gru.py
    python -m rnnbench.bench --config=configs/default.py --bench.cells=lstm,gru \\
        --bench.seq_lens=25,100,400 --bench.modes=train --bench.json=/tmp/bench.json \\
        --bench.compare=/tmp/old.json --bench.plot=/tmp/bench.png
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m rnnbench.bench \\
        --config=configs/default.py --bench.devices=1,2,4,8

The modules, in the order a run goes through them:

* ``runner``: the ``--bench.*`` settings, the grid, one jitted step per mode (``train``,
  ``forward``, ``forward_backward``, ``optimizer``) timed on the synthetic batch, the report;
* ``scaling``: with ``--bench.devices``, the data-parallel training step on 1, 2, ... devices;
* ``report``: the report read back: fits of step time against sequence length, the text
  tables, the comparison with a saved report (``--bench.compare``);
* ``plots``: the report as a PNG (``--bench.plot``);
* ``__main__``: the command line.

The environment, step-time statistics, the synthetic batch and the atomic JSON write are
``rnnbench.runinfo``'s, shared with training and ``benchmarks/references/``.
docs/benchmark.md describes the output and its JSON schema.
"""
