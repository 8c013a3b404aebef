"""The notebook's LSTM model: `python run.py --config=configs/lstm.py`."""

from rnnbench.configs.lstm import get_config  # noqa: F401  (the code is in the package)
