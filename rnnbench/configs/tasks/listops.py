"""ListOps (Long Range Arena): the value of a nested MAX/MIN/MED/SM expression, 10 classes.

``get_config()`` is LRA's size (96,000 train, 2,000 test, 500-2000 tokens, depth 10, up to
10 arguments) for accelerators; ``SIZES['cpu']`` shortens the texts to 50-300 tokens.
The answer is complete only at the closing bracket: the classifier reads the last valid step.
"""

from rnnbench.configs import default
from rnnbench.configs.tasks import generated, protocol

RNN_PARAM_BUDGET = 20_000

SIZES = {
    "cpu": ["data.listops.num_train=10000", "data.listops.num_test=2000",
            "data.listops.min_length=50", "data.listops.max_length=300", "data.maxlen=300",
            "train.num_epochs=3", "train.warmup_steps=100"],
    "quick": ["data.listops.num_train=1500", "data.listops.num_test=300",
              "data.listops.min_length=10", "data.listops.max_length=60", "data.maxlen=60",
              "train.num_epochs=2", "train.warmup_steps=5"],
}


def get_config():
  config = generated(default.get_config(), "listops", maxlen=2000, num_words=32)
  config.data.listops.update(num_train=96000, num_test=2000, min_length=500, max_length=2000,
                             max_depth=10, max_args=10)
  return protocol(config, num_epochs=5, warmup_steps=1000)
