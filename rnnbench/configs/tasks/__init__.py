"""The comparison's tasks (``python -m rnnbench.compare``; docs/tasks.md).

Each task module has ``get_config()`` (the full size: LRA's for listops, every document for
20 Newsgroups; for accelerators), ``SIZES`` (override lists that shrink it: ``"cpu"``, the
full comparison sized for 2 CPU cores, and ``"quick"``, a first look in minutes), and
``RNN_PARAM_BUDGET``, the fair-protocol rule: every cell gets the largest ``hidden_size``
whose recurrent layers hold at most that many params (``rnnbench.compare.hidden_for_budget``).
"""

from __future__ import annotations

import ml_collections


def protocol(config: ml_collections.ConfigDict, *, num_epochs: int, warmup_steps: int,
             learning_rate: float = 2e-3, grad_clip: float = 1.0) -> ml_collections.ConfigDict:
  """The training protocol every cell of a task shares (docs/tasks.md).

  Adam (optax), a linear warm-up to ``learning_rate`` over ``warmup_steps`` then a cosine to
  0 at the run's last step, gradients clipped to global norm ``grad_clip``, the stable
  log-softmax cross-entropy, ``num_epochs`` epochs.
  """
  config.train.optimizer = "adam"
  config.train.loss = "log_softmax"
  config.train.learning_rate = learning_rate
  config.train.schedule = "warmup_cosine"
  config.train.warmup_steps = warmup_steps
  config.train.decay_steps = 0
  config.train.final_lr_fraction = 0.0
  config.train.grad_clip = grad_clip
  config.train.num_epochs = num_epochs
  config.train.test_every_epoch = False
  config.train.progress = False
  config.train.tensorboard = False
  return config


def generated(config: ml_collections.ConfigDict, name: str, maxlen: int,
              num_words: int) -> ml_collections.ConfigDict:
  """A generated task's data and model settings: no tokenizer filters, case kept, the answer
  read at the last (valid) step, a small embedding."""
  config.data.name = name
  config.data.filters = ""
  config.data.lower = False
  config.data.num_words = num_words
  config.data.maxlen = maxlen
  config.data.padding = "post"
  config.data.truncating = "post"
  config.model.mask_padding = True
  config.model.pooling = "last"
  config.model.embed_dim = 64
  config.model.dense_size = 64
  config.model.dropout = 0.1
  return config
