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

from absl import app
from absl import flags

from rnnbench import cli
from rnnbench import data as data_lib
from rnnbench import input_pipeline
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
  else:
    texts, labels = input_pipeline.validation_texts(dataset, run.config.data.validation_split)
  arrays = input_pipeline.encode_split(run.tokenizer, texts, labels, run.config.data)
  return train.evaluate(run.model.apply, run.params, arrays, run.config.train.eval_batch_size,
                        optim.make_loss(run.config.train.loss))


def main(argv, locations=None):
  """Scores the run; ``locations``: the data locations (``runs.data_locations()`` shaped)."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  run = runs.load_run(_WORKDIR.value)
  runs.apply_locations(run.config, locations if locations is not None
                       else runs.data_locations())
  result = evaluate_run(run, _SPLIT.value)
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
  cli.run(lambda argv: main(argv, locations.value), required=["workdir"])


if __name__ == "__main__":
  _cli()
