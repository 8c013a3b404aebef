"""The notebook's task: the last 100 tokens of a 20 Newsgroups post, max-pooled.

The notebook's data and model (num_words 20000, maxlen 100, 'pre' padding and truncation,
Embedding(128) -> cell -> GlobalMaxPooling1D -> Dense(50) -> Dense(20), dropout 0.5), trained
with the comparison's shared protocol (configs/tasks/__init__.py) for 10 epochs (2 at the cpu size,
the notebook's own). The budget
is the notebook's LSTM(50) on 128 inputs (35,800 params): LSTM gets exactly that layer.
"""

from rnnbench.configs import default
from rnnbench.configs.tasks import protocol

RNN_PARAM_BUDGET = 35_800

SIZES = {
    "cpu": ["train.num_epochs=2", "train.warmup_steps=100"],  # the notebook's 2 epochs
    "quick": ["data.max_train_docs=1500", "data.max_test_docs=500", "train.num_epochs=2",
              "train.warmup_steps=5"],
}


def get_config():
  return protocol(default.get_config(), num_epochs=10, warmup_steps=300)
