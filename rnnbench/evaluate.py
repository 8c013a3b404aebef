"""Score a trained run on its dataset's test subset (or its validation split).

    python -m rnnbench.evaluate --workdir=runs/gru-... [--split=test|val] [--archive=PATH]

Uses the run's saved tokenizer and parameters (``params.msgpack``, else the newest checkpoint).
"""

import json
import sys

import numpy as np
from absl import app
from absl import flags
from absl import logging

from rnnbench import checkpoint
from rnnbench import cli
from rnnbench import data as data_lib
from rnnbench import optim
from rnnbench import runs
from rnnbench import train

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by run.py.")
_SPLIT = flags.DEFINE_enum("split", "test", ["test", "val"], "Which split to score.")
_ARCHIVE = flags.DEFINE_string("archive", None, "Override the run's data.archive.")


def evaluate_run(run: runs.TrainedRun, split: str = "test") -> dict:
  """Loss and accuracy of ``run`` on every example of ``split``, counted once."""
  dataset = data_lib.load(run.config.data, seed=run.config.seed)
  if split == "test":
    texts, labels = dataset.test_texts, dataset.test_labels
  elif dataset.val_texts is not None:
    texts, labels = dataset.val_texts, dataset.val_labels
  else:
    cut = train.split_at(len(dataset.train_texts), run.config.data.validation_split)
    texts, labels = dataset.train_texts[cut:], dataset.train_labels[cut:]
  arrays = train.Arrays(run.encode(texts).astype(np.int32), np.asarray(labels, np.int32))
  state = train.TrainState.create(apply_fn=run.model.apply, params=run.params,
                                  tx=optim.make_optimizer(run.config.train),
                                  dropout_key=np.zeros(2, np.uint32))
  return train.evaluate(state, arrays, run.config.train.eval_batch_size,
                        optim.make_loss(run.config.train.loss))


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  try:
    run = runs.load_run(_WORKDIR.value)
    if _ARCHIVE.value:
      run.config.data.archive = _ARCHIVE.value
    result = evaluate_run(run, _SPLIT.value)
  except (runs.RunError, checkpoint.CheckpointError, data_lib.DataError) as e:
    sys.exit(f"error: {e}")
  print(json.dumps({"split": _SPLIT.value, **result}))


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  app.run(main, flags_parser=cli.parse_flags)
