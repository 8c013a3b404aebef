"""Train and evaluate one config: ``python run.py --config=configs/gru.py [--workdir=DIR]``.

Any config field can be overridden, e.g. ``--config.train.num_epochs=1``.
"""

import pathlib
import time

from absl import app
from absl import flags
from ml_collections import config_flags

from rnnbench import cli
from rnnbench import train
from rnnbench.data import base as data_base

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Where config, metrics, tokenizer and params are written; "
                               "default runs/<config>-<time>.")
_CACHE = flags.DEFINE_string(
    "compilation_cache", "auto", "JAX's persistent compilation cache: a folder, 'auto' "
    "($RNNBENCH_CACHE/jax, else ~/.cache/rnnbench/jax) or '' (off). A second run of the same "
    "model loads its compiled steps instead of compiling them again.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  workdir = _WORKDIR.value
  if workdir is None:
    name = pathlib.Path(config_flags.get_config_filename(flags.FLAGS["config"])).stem
    workdir = f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}"
  print(f"workdir: {workdir}", flush=True)
  cache = cli.compilation_cache_dir(_CACHE.value, data_base.cache_home() / "jax")
  if cache:
    cli.use_compilation_cache(cache)
  created = cli.new_folders(workdir)
  try:
    train.train_and_evaluate(_CONFIG.value, workdir)
  except train.TrainingInterrupted as e:
    print(e, flush=True)
  except BaseException:
    cli.remove_if_empty(created)  # a failed run leaves no empty folder it made
    raise


if __name__ == "__main__":
  cli.run(main, required=["config"])
