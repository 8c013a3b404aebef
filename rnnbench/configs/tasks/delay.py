"""Delay (memory length): the first token names the class; length - 1 distractors follow.

Full size: 1000 tokens; ``SIZES['cpu']``: 200. Read at the last step (``pooling='last'``;
max- or mean-pooling would see the class token directly), so the state must carry one token
across the whole text.
"""

from rnnbench.configs import default
from rnnbench.configs.tasks import generated, protocol

RNN_PARAM_BUDGET = 20_000
NOTE = ("TF-IDF sees the class token itself (a bag of tokens has no order), so its 100% says "
        "nothing about memory; the floor here is `none`, which reads only the last token.")

SIZES = {
    "cpu": ["data.delay.num_train=10000", "data.delay.num_test=1000", "data.delay.length=200",
            "data.maxlen=200", "train.num_epochs=3", "train.warmup_steps=50"],
    "quick": ["data.delay.num_train=1500", "data.delay.num_test=300", "data.delay.length=40",
              "data.maxlen=40", "train.num_epochs=2", "train.warmup_steps=5"],
}


def get_config():
  config = generated(default.get_config(), "delay", maxlen=1000, num_words=128)
  config.data.delay.update(num_train=20000, num_test=2000, num_classes=8, length=1000,
                           vocab_size=64)
  return protocol(config, num_epochs=5, warmup_steps=300)
