"""The notebook's LSTM model: `python run.py --config=configs/lstm.py`."""

from rnnbench.configs import default


def get_config():
  config = default.get_config()
  config.model.cell = "lstm"
  return config
