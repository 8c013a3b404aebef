"""Score a trained run on its dataset's test subset (or its validation split).

    python -m rnnbench.evaluate --workdir=runs/gru-... [--split=test|val] \
        [--config.data.archive=PATH] [--config.data.files.train=... --config.data.files.test=...]

Uses the run's saved tokenizer and parameters (``params.msgpack``, else the newest checkpoint)
and its model and preprocessing fields. Where the data is (``data.archive``, ``data.data_home``,
``data.tfds.data_dir``, ``data.tfds.download``, ``data.files.*``) is never read from the
workdir: it comes from these ``--config.data.*`` flags (the same names as run.py's) or the
environment ($RNNBENCH_20NEWS_ARCHIVE, $TFDS_DATA_DIR, ...); see docs/trust.md.
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


def main(argv, locations=None):
  """Scores the run; ``locations``: the data locations (``runs.data_locations()`` shaped)."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)
  try:
    run = runs.load_run(_WORKDIR.value)
    runs.apply_locations(run.config, locations if locations is not None
                         else runs.data_locations())
    result = evaluate_run(run, _SPLIT.value)
  except (runs.RunError, checkpoint.CheckpointError, data_lib.DataError, ValueError) as e:
    sys.exit(f"error: {e}")
  print(json.dumps({"split": _SPLIT.value, **result}))


def _cli() -> None:
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  try:  # DEFINE_config_dict applies the --config.* overrides already
    locations = config_flags.DEFINE_config_dict(
        "config", runs.data_locations(), "Where the data is (never read from the workdir): "
        "--config.data.archive, data_home, tfds.data_dir, tfds.download, files.train/test/val.",
        lock_config=True)
  except cli.OVERRIDE_ERRORS as e:
    fields = ", ".join(f"--config.{f}" for f in runs.LOCATION_FIELDS)
    sys.exit(f"{sys.argv[0]}: bad --config override ({cli.override_error(e)}): evaluate's "
             f"--config.* flags set only where the data is ({fields}); the model and "
             "preprocessing come from the workdir")
  flags.mark_flags_as_required(["workdir"])
  app.run(lambda argv: main(argv, locations.value), flags_parser=cli.parse_flags)


if __name__ == "__main__":
  _cli()
