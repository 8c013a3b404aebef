"""A trained run as ``run.py`` saved it: config, tokenizer, class names and parameters.

Everything is read from the workdir (``config.json``, ``tokenizer.json``, ``labels.json``,
``params.msgpack`` or else the newest checkpoint) as JSON, msgpack or orbax; nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from flax import serialization

from rnnbench import checkpoint
from rnnbench import models
from rnnbench import tokenizer as tokenizer_lib


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
    return tokenizer_lib.pad_sequences(
        self.tokenizer.texts_to_sequences(list(texts)), maxlen=self.config.data.maxlen,
        padding=self.config.data.padding, truncating=self.config.data.truncating)

  def probabilities(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Class probabilities, (len(texts), num_classes)."""
    apply = jax.jit(lambda p, x: self.model.apply({"params": p}, x, train=False))
    x = self.encode(texts)
    out = [np.asarray(apply(self.params, x[i:i + batch_size]))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, len(self.label_names)), np.float32)


def _read(path: pathlib.Path, what: str) -> str:
  if not path.is_file():
    raise RunError(f"{path.parent} has no {path.name} ({what}); is it a workdir written by "
                   "run.py? Train one with: python run.py --config=configs/gru.py --workdir=DIR")
  return path.read_text()


def load_run(workdir: str | pathlib.Path) -> TrainedRun:
  """Reads a workdir written by ``run.py``; a clear RunError if it is not one."""
  workdir = pathlib.Path(workdir)
  try:
    config = ml_collections.ConfigDict(json.loads(_read(workdir / "config.json", "the config")))
    label_names = json.loads(_read(workdir / "labels.json", "the class names"))
  except json.JSONDecodeError as e:
    raise RunError(f"{workdir} holds a config.json or labels.json that is not JSON: {e}") from e
  try:
    tok = tokenizer_lib.Tokenizer.from_json(_read(workdir / "tokenizer.json", "the tokenizer"))
  except RunError:
    raise
  except ValueError as e:
    raise RunError(f"{workdir / 'tokenizer.json'}: {e}") from e
  model = models.create_model(config, num_classes=len(label_names))
  template = models.param_shapes(config, len(label_names))
  params_file = workdir / "params.msgpack"
  if params_file.is_file():
    try:
      params = serialization.from_bytes(template, params_file.read_bytes())
    except Exception as e:  # msgpack and flax raise many types for a foreign file
      raise RunError(f"{params_file} is not the parameters of this run's model "
                     f"({type(e).__name__}: {e})") from e
  else:
    params = _params_from_checkpoint(workdir, config, len(label_names))
  return TrainedRun(config, tok, label_names, params, model)


def _params_from_checkpoint(workdir: pathlib.Path, config, num_classes: int) -> dict:
  from rnnbench import train  # pylint: disable=g-import-not-at-top
  ckpt = checkpoint.Checkpointer(workdir / "checkpoints")
  if ckpt.latest_step() is None:
    raise RunError(f"{workdir} has neither params.msgpack nor a checkpoint to read")
  state = train.create_train_state(config, num_classes, jax.random.PRNGKey(0))
  state, _ = ckpt.restore(state, checkpoint.fingerprint(config))
  return jax.device_get(state.params)


def top_k(probabilities: np.ndarray, label_names: Sequence[str], k: int) -> list[list[tuple]]:
  order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
  return [[(label_names[j], float(p[j])) for j in row] for p, row in zip(probabilities, order)]
