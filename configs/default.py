"""The reference notebook's settings: `python run.py --config=configs/default.py`.

Every field can be overridden on the command line, e.g. ``--config.train.num_epochs=1``; the
fields and their comments are in rnnbench/configs/default.py.
"""

from rnnbench.configs.default import get_config  # noqa: F401  (the code is in the package)
