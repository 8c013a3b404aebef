"""The configs, importable: ``from rnnbench.configs import default``.

``default`` is the reference notebook's setup; ``lstm`` and ``gru`` its two models. The files
users pass to ``--config`` are the repository's ``configs/*.py``, each one line that hands on
a ``get_config`` from here; a config of your own can start from ``default.get_config()``.
"""
