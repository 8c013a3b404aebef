"""Associative recall (MQAR-style): after num_pairs key-value pairs and '?', a key's value.

Full size: 128 pairs of 256 keys and 16 values (258 tokens). ``SIZES['cpu']``: 32 pairs of
64 keys (66 tokens). The label is known only once the query arrives, at the last step.
"""

from rnnbench.configs import default
from rnnbench.configs.tasks import generated, protocol

RNN_PARAM_BUDGET = 20_000

SIZES = {
    "cpu": ["data.recall.num_train=20000", "data.recall.num_test=2000",
            "data.recall.num_keys=64", "data.recall.num_pairs=32", "data.maxlen=66",
            "train.num_epochs=5", "train.warmup_steps=100"],
    "quick": ["data.recall.num_train=2000", "data.recall.num_test=300",
              "data.recall.num_keys=16", "data.recall.num_values=8", "data.recall.num_pairs=6",
              "data.maxlen=14", "train.num_epochs=3", "train.warmup_steps=5"],
}


def get_config():
  config = generated(default.get_config(), "recall", maxlen=258, num_words=512)
  config.data.recall.update(num_train=50000, num_test=2000, num_keys=256, num_values=16,
                            num_pairs=128)
  return protocol(config, num_epochs=10, warmup_steps=500)
