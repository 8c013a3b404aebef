"""The notebook's GRU model: `python run.py --config=configs/gru.py`."""

from rnnbench.configs import default


def get_config():
  config = default.get_config()
  config.model.cell = "gru"
  return config
