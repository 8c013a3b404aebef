"""A trained run as ``run.py`` saved it: config, tokenizer, class names and parameters.

Everything is read from the workdir (``config.json``, ``tokenizer.json``, ``labels.json``,
``params.msgpack`` or else the newest checkpoint) as JSON, msgpack or orbax; nothing is unpickled
or executed, and the config's data locations are replaced (docs/trust.md).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import serialization

from rnnbench import checkpoint
from rnnbench import input_pipeline
from rnnbench import models
from rnnbench import tokenizer as tokenizer_lib
from rnnbench import validation
from rnnbench import workdir as layout


class RunError(ValueError):
  """A workdir that does not hold a usable rnnbench run."""


@dataclasses.dataclass
class TrainedRun:
  """A trained model as saved in a workdir."""
  config: ml_collections.ConfigDict
  tokenizer: tokenizer_lib.Tokenizer
  label_names: list[str]
  params: dict
  model: models.Classifier

  def encode(self, texts: Sequence[str]) -> np.ndarray:
    """Token ids (len(texts), data.maxlen) int32, as training encoded its splits."""
    return input_pipeline.encode(self.tokenizer, texts, self.config.data)

  def probabilities(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Class probabilities, (len(texts), num_classes)."""
    apply = jax.jit(lambda p, x: self.model.apply({"params": p}, x, train=False))
    x = self.encode(texts)
    out = [np.asarray(apply(self.params, x[i:i + batch_size]))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, len(self.label_names)), np.float32)


# Fields of a workdir's config.json that name a place to read, write or download data (or a
# host to join): never taken from the workdir (docs/trust.md). evaluate takes them from its
# command line (``--config.data.archive=...``) or the environment; these are the defaults.
LOCATION_FIELDS = {
    "data.archive": "", "data.data_home": "", "data.tfds.data_dir": "",
    "data.tfds.download": False, "data.files.train": "", "data.files.test": "",
    "data.files.val": "",
}
_RETRAIN = "it is damaged, or not written by run.py; train the run again"
_HOW_TO_TRAIN = "Train one with: python run.py --config=configs/gru.py --workdir=DIR"


def data_locations() -> ml_collections.ConfigDict:
  """The ``LOCATION_FIELDS`` as a nested ConfigDict (evaluate's ``--config.data.*`` flags)."""
  out = ml_collections.ConfigDict()
  for field, value in LOCATION_FIELDS.items():
    *parents, leaf = field.split(".")
    node = out
    for part in parents:
      if part not in node:
        node[part] = ml_collections.ConfigDict()
      node = node[part]
    node[leaf] = value
  return out


def apply_locations(config: ml_collections.ConfigDict, locations: Any) -> None:
  """Sets the ``LOCATION_FIELDS`` of ``config`` to those of ``locations`` (a data_locations())."""
  for field in LOCATION_FIELDS:
    *parents, leaf = field.split(".")
    src, dst = locations, config
    for part in parents:
      src, dst = src[part], dst[part]
    dst[leaf] = src[leaf]


def _read(path: pathlib.Path, what: str) -> str:
  """The text of a workdir file, as UTF-8; a RunError naming the file otherwise."""
  if not path.is_file():
    kind = "a folder, not a file" if path.is_dir() else "missing"
    raise RunError(f"{path.parent} has no {path.name} ({what}; {kind}); is it a workdir written "
                   f"by run.py? {_HOW_TO_TRAIN}")
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise RunError(f"cannot read {path}: {e.strerror or e}") from None
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise RunError(f"{path} is not UTF-8 text (byte {e.start}); {_RETRAIN}") from None


def _read_json(path: pathlib.Path, what: str) -> Any:
  try:
    return json.loads(_read(path, what))
  except json.JSONDecodeError as e:
    raise RunError(f"{path} is not JSON ({e.msg}, line {e.lineno} column {e.colno}); "
                   f"{_RETRAIN}") from None


def trusted_config(raw: Any, path: pathlib.Path) -> ml_collections.ConfigDict:
  """A workdir's config with its ``LOCATION_FIELDS`` reset, checked by ``validation``."""
  if not isinstance(raw, dict) or not all(isinstance(raw.get(s), dict)
                                          for s in ("data", "model", "train")):
    raise RunError(f"{path} is not a run config (a JSON object with data, model and train "
                   f"sections); {_RETRAIN}")
  raw.pop("dist", None)  # never joins a multi-host run
  for field, value in LOCATION_FIELDS.items():
    *parents, leaf = field.split(".")
    node = raw
    for part in parents:
      node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else None
      if node is None:
        raise RunError(f"{path}: data.{part} is not an object; {_RETRAIN}")
    node[leaf] = value
  try:
    validation.validate(raw, where=f"{path}: ", fix=_RETRAIN)
    return ml_collections.ConfigDict(raw)
  except (validation.ConfigError, TypeError, ValueError) as e:
    raise RunError(str(e) if isinstance(e, validation.ConfigError)
                   else f"{path}: {e}; {_RETRAIN}") from None


def _label_names(path: pathlib.Path) -> list[str]:
  names = _read_json(path, "the class names")
  if (not isinstance(names, list) or len(names) < 2 or
      not all(isinstance(n, str) for n in names)):
    raise RunError(f"{path} is not a list of at least two class names (strings); {_RETRAIN}")
  return names


def _check_shapes(params: Any, template: Any, path: pathlib.Path) -> None:
  """A RunError naming the first parameter whose shape is not the config's model's."""
  got = dict(jax.tree_util.tree_flatten_with_path(params)[0])
  want = dict(jax.tree_util.tree_flatten_with_path(template)[0])
  for key, spec in want.items():
    name = jax.tree_util.keystr(key)
    shape = np.shape(got[key]) if key in got else None
    if shape != tuple(spec.shape):
      raise RunError(f"{path} does not match config.json/labels.json: parameter {name} has "
                     f"shape {shape}, their model needs {tuple(spec.shape)}; {_RETRAIN}")


def load_run(workdir: str | pathlib.Path) -> TrainedRun:
  """Reads a workdir written by ``run.py``; a clear RunError if it is not one.

  Nothing in the workdir is executed or unpickled, and its config's data locations are not
  used (``LOCATION_FIELDS``; docs/trust.md).
  """
  workdir = pathlib.Path(workdir)
  if not workdir.exists():
    raise RunError(f"{workdir} does not exist; give --workdir=DIR of a run. {_HOW_TO_TRAIN}")
  if not workdir.is_dir():
    raise RunError(f"{workdir} is not a folder; give --workdir=DIR of a run. {_HOW_TO_TRAIN}")
  config_file = workdir / layout.CONFIG
  config = trusted_config(_read_json(config_file, "the config"), config_file)
  label_names = _label_names(workdir / layout.LABELS)
  tok_file = workdir / layout.TOKENIZER
  try:
    tok = tokenizer_lib.Tokenizer.from_json(_read(tok_file, "the tokenizer"))
  except RunError:
    raise
  except ValueError as e:
    raise RunError(f"{tok_file}: {e}") from None
  if tok.num_words != config.data.num_words:
    raise RunError(f"{tok_file} keeps num_words={tok.num_words!r} words but config.json has "
                   f"data.num_words={config.data.num_words}; {_RETRAIN}")
  try:
    model = models.create_model(config, num_classes=len(label_names))
    template = models.param_shapes(config, len(label_names))
  except (KeyError, AttributeError, TypeError, ValueError) as e:
    raise RunError(f"{config_file}: cannot build its model ({type(e).__name__}: "
                   f"{e}); {_RETRAIN}") from None
  params_file = workdir / layout.PARAMS
  if params_file.is_file():
    try:
      params = serialization.from_bytes(template, params_file.read_bytes())
    except Exception as e:  # msgpack and flax raise many types for a foreign file
      raise RunError(f"{params_file} is not the parameters of this run's model "
                     f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    _check_shapes(params, template, params_file)
  else:
    params = _params_from_checkpoint(workdir, config, len(label_names))
  return TrainedRun(config, tok, label_names, params, model)


def _params_from_checkpoint(workdir: pathlib.Path, config, num_classes: int) -> dict:
  from rnnbench import train  # pylint: disable=g-import-not-at-top
  missing = RunError(f"{workdir} has neither params.msgpack nor a checkpoint to read; "
                     f"{_HOW_TO_TRAIN}")
  if not (workdir / layout.CHECKPOINTS).is_dir():  # (the Checkpointer would create the folder)
    raise missing
  ckpt = checkpoint.Checkpointer(workdir / layout.CHECKPOINTS)
  try:
    if ckpt.latest_step() is None:
      raise missing
    state = train.create_train_state(config, num_classes, jax.random.PRNGKey(0))
    # Checked against the workdir's config (no data digest here); a reader never moves files.
    state, _ = ckpt.restore(state, checkpoint.fingerprint(config), set_aside=False)
  except checkpoint.CheckpointError as e:
    # Its fix names run.py's flags; here the one line says what is wrong with the workdir.
    reason = re.split(r"; (?:pass|rerun|delete) ", str(e).splitlines()[0])[0].rstrip(":")
    raise RunError(f"{workdir} has no params.msgpack and its checkpoint cannot be used "
                   f"({reason}); {_RETRAIN}") from None
  finally:
    ckpt.close()
  return jax.device_get(state.params)


def read_texts(path: str | pathlib.Path, flag: str = "--input") -> list[str]:
  """The lines of a UTF-8 text file; a one-line RunError if it is missing, a folder or not UTF-8."""
  file = pathlib.Path(path)
  what = "give a UTF-8 text file with one text per line"
  if not file.exists():
    raise RunError(f"{flag}={path}: no such file; {what}")
  if not file.is_file():
    raise RunError(f"{flag}={path}: not a file; {what}")
  try:
    return file.read_bytes().decode("utf-8").splitlines()
  except UnicodeDecodeError as e:
    raise RunError(f"{flag}={path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
  except OSError as e:
    raise RunError(f"{flag}={path}: cannot read it: {e.strerror or e}") from None


def top_k(probabilities: np.ndarray, label_names: Sequence[str], k: int) -> list[list[tuple]]:
  order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
  return [[(label_names[j], float(p[j])) for j in row] for p, row in zip(probabilities, order)]
