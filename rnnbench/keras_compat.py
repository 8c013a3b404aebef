"""Converting the notebook's model between Keras (3.x) and rnnbench (config, params).

The architecture: Embedding -> LSTM|GRU(return_sequences=True) -> GlobalMaxPooling1D ->
Dropout -> Dense(relu) -> Dropout -> Dense(softmax). Keras weights map one to one::

    embedding/embeddings; rnn/{kernel, recurrent_kernel, bias};
    dense_1/{kernel, bias}; dense_2/{kernel, bias}

Keras 3 has no Keras-2 hard sigmoid (its ``hard_sigmoid`` is relu6(x + 3) / 6), so a Keras
model with the notebook's gates uses ``recurrent_activation=keras2_hard_sigmoid`` from here.
Keras is imported lazily: rnnbench runs without it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, NoReturn

import ml_collections
import numpy as np

Params = dict[str, dict[str, np.ndarray]]
_ARCHITECTURE = ("Embedding -> LSTM|GRU(return_sequences=True) -> GlobalMaxPooling1D -> "
                 "Dropout -> Dense(relu) -> Dropout -> Dense(softmax)")


def keras2_hard_sigmoid(x):
  """Keras 2's hard sigmoid, clip(0.2 x + 0.5, 0, 1), as a Keras 3 activation."""
  from keras import ops  # pylint: disable=g-import-not-at-top
  return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


class UnsupportedKerasModel(ValueError):
  """The Keras model is not the notebook's architecture (or uses an unsupported option)."""


def _fail(message: str) -> NoReturn:
  raise UnsupportedKerasModel(f"{message}. Supported architecture: {_ARCHITECTURE}")


def _activation_name(fn: Any) -> str:
  """The Keras activation's function name, e.g. 'tanh', 'keras2_hard_sigmoid'."""
  return getattr(fn, "__name__", repr(fn))


_GATES = {"sigmoid": "sigmoid", "keras2_hard_sigmoid": "hard_sigmoid"}  # Keras -> rnnbench


def _numpy(variable: Any) -> np.ndarray:
  return np.array(getattr(variable, "value", variable), np.float32)


def _default_config() -> ml_collections.ConfigDict:
  try:
    from configs import default  # pylint: disable=g-import-not-at-top
    return default.get_config()
  except ImportError:
    config = ml_collections.ConfigDict()
    config.data = ml_collections.ConfigDict({"num_words": 20000, "maxlen": 100})
    config.model = ml_collections.ConfigDict({
        "cell": "lstm", "embed_dim": 128, "hidden_size": 50, "dense_size": 50,
        "dropout": 0.5, "recurrent_activation": "hard_sigmoid", "reset_after": False,
        "scan": "sequential", "unroll": 1})
    return config


def _layers(keras_model: Any) -> list[Any]:
  import keras  # pylint: disable=g-import-not-at-top
  layers = [l for l in keras_model.layers if not isinstance(l, keras.layers.InputLayer)]
  kinds = (keras.layers.Embedding, (keras.layers.LSTM, keras.layers.GRU),
           keras.layers.GlobalMaxPooling1D, keras.layers.Dropout, keras.layers.Dense,
           keras.layers.Dropout, keras.layers.Dense)
  names = [type(l).__name__ for l in layers]
  if len(layers) != len(kinds) or not all(isinstance(l, k) for l, k in zip(layers, kinds)):
    _fail(f"got layers {names}")
  if not keras_model.built:
    _fail("the Keras model is not built (call it once, or give it an Input)")
  return layers


def _check(layers: list[Any]) -> None:
  """Raises UnsupportedKerasModel for options rnnbench does not reproduce."""
  embedding, rnn, pool, drop_1, dense_1, drop_2, dense_2 = layers
  cell = rnn.cell
  if embedding.mask_zero:
    _fail("Embedding(mask_zero=True) is not supported (the notebook pools over padding)")
  if not rnn.return_sequences or rnn.return_state or rnn.go_backwards or rnn.stateful:
    _fail(f"{rnn.name}: need return_sequences=True, return_state=False, "
          "go_backwards=False, stateful=False")
  if _activation_name(cell.activation) != "tanh" or not cell.use_bias:
    _fail(f"{rnn.name}: need activation='tanh' and use_bias=True")
  if _activation_name(cell.recurrent_activation) not in _GATES:
    _fail(f"{rnn.name}: recurrent_activation {_activation_name(cell.recurrent_activation)!r} "
          "is not supported; use 'sigmoid' or keras_compat.keras2_hard_sigmoid (Keras 3's "
          "'hard_sigmoid' is relu6(x + 3) / 6, not Keras 2's clip(0.2 x + 0.5, 0, 1))")
  if cell.dropout or cell.recurrent_dropout:
    _fail(f"{rnn.name}: dropout / recurrent_dropout inside the RNN are not supported")
  if pool.data_format != "channels_last" or getattr(pool, "keepdims", False):
    _fail("GlobalMaxPooling1D: need data_format='channels_last', keepdims=False")
  if drop_1.rate != drop_2.rate:
    _fail(f"both Dropout layers must share one rate, got {drop_1.rate} and {drop_2.rate}")
  if _activation_name(dense_1.activation) != "relu" or not dense_1.use_bias:
    _fail(f"{dense_1.name}: need activation='relu' with a bias")
  if _activation_name(dense_2.activation) != "softmax" or not dense_2.use_bias:
    _fail(f"{dense_2.name}: need activation='softmax' with a bias")


def variable_paths(keras_model: Any) -> list[tuple[tuple[str, str], Any]]:
  """The ``((module, param), keras.Variable)`` pairs of a supported Keras model."""
  embedding, rnn, _, _, dense_1, _, dense_2 = _layers(keras_model)
  cell = rnn.cell
  return [(("embedding", "embeddings"), embedding.embeddings),
          (("rnn", "kernel"), cell.kernel), (("rnn", "recurrent_kernel"), cell.recurrent_kernel),
          (("rnn", "bias"), cell.bias),
          (("dense_1", "kernel"), dense_1.kernel), (("dense_1", "bias"), dense_1.bias),
          (("dense_2", "kernel"), dense_2.kernel), (("dense_2", "bias"), dense_2.bias)]


def from_keras(keras_model: Any, config: ml_collections.ConfigDict | None = None
               ) -> tuple[ml_collections.ConfigDict, Params]:
  """A Keras model of the notebook's architecture -> (rnnbench config, params).

  The model fields (and data.num_words, data.maxlen when the input length is fixed) are
  written onto a copy of ``config`` (default: ``configs/default.py``'s). The number of
  classes is ``params['dense_2']['kernel'].shape[1]``.
  """
  import keras  # pylint: disable=g-import-not-at-top
  layers = _layers(keras_model)
  _check(layers)
  embedding, rnn, _, drop_1, dense_1, _, _ = layers
  config = copy.deepcopy(config) if config is not None else _default_config()
  config.data.num_words = int(embedding.input_dim)
  shape = getattr(keras_model, "input_shape", None)
  if isinstance(shape, tuple) and len(shape) == 2 and shape[1] is not None:
    config.data.maxlen = int(shape[1])
  m = config.model
  m.cell = "gru" if isinstance(rnn, keras.layers.GRU) else "lstm"
  m.embed_dim = int(embedding.output_dim)
  m.hidden_size = int(rnn.cell.units)
  m.dense_size = int(dense_1.units)
  m.dropout = float(drop_1.rate)
  m.recurrent_activation = _GATES[_activation_name(rnn.cell.recurrent_activation)]
  if m.cell == "gru":
    m.reset_after = bool(rnn.cell.reset_after)
  params: Params = {}
  for (module, name), variable in variable_paths(keras_model):
    params.setdefault(module, {})[name] = _numpy(variable)
  return config, params


def to_keras(config: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
  """rnnbench (config, params) -> a built ``keras.Sequential`` with the same weights."""
  import keras  # pylint: disable=g-import-not-at-top
  m, data = config["model"], config["data"]
  if m["cell"] not in ("lstm", "gru"):
    raise ValueError(f"to_keras supports the 'lstm' and 'gru' cells, not {m['cell']!r}")
  gates = {"sigmoid": "sigmoid", "hard_sigmoid": keras2_hard_sigmoid}
  if m["recurrent_activation"] not in gates:
    raise ValueError(f"recurrent_activation {m['recurrent_activation']!r} has no Keras "
                     f"equivalent here; use one of {sorted(gates)}")
  rnn_kwargs = dict(return_sequences=True, recurrent_activation=gates[m["recurrent_activation"]],
                    name=m["cell"])
  if m["cell"] == "gru":
    rnn = keras.layers.GRU(m["hidden_size"], reset_after=bool(m["reset_after"]), **rnn_kwargs)
  else:
    rnn = keras.layers.LSTM(m["hidden_size"], **rnn_kwargs)
  num_classes = int(np.shape(params["dense_2"]["kernel"])[1])
  model = keras.Sequential([
      keras.Input(shape=(data.get("maxlen") or None,), dtype="int32"),
      keras.layers.Embedding(data["num_words"], m["embed_dim"], name="embedding"),
      rnn,
      keras.layers.GlobalMaxPooling1D(name="global_max_pooling1d"),
      keras.layers.Dropout(m["dropout"], name="dropout_1"),
      keras.layers.Dense(m["dense_size"], activation="relu", name="dense_1"),
      keras.layers.Dropout(m["dropout"], name="dropout_2"),
      keras.layers.Dense(num_classes, activation="softmax", name="dense_2"),
  ])
  for (module, name), variable in variable_paths(model):
    value = np.asarray(params[module][name], np.float32)
    if tuple(variable.shape) != value.shape:
      raise ValueError(f"{module}/{name}: Keras expects shape {tuple(variable.shape)}, "
                       f"params have {value.shape}")
    variable.assign(value)
  return model
