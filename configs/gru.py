"""The notebook's GRU model: `python run.py --config=configs/gru.py`."""

from rnnbench.configs.gru import get_config  # noqa: F401  (the code is in the package)
