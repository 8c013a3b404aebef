"""Converting the notebook's model (and its options) between Keras (3.x) and rnnbench.

The architecture: Embedding -> LSTM|GRU(return_sequences=True) -> GlobalMaxPooling1D ->
Dropout -> Dense(relu) -> Dropout -> Dense(softmax), with rnnbench's model options
(docs/model_options.md)::

    model.num_layers     N stacked LSTM|GRU layers       params rnn, rnn_1, ..., rnn_{N-1}
    model.bidirectional  Bidirectional(layer, merge_mode='concat') around each of them;
                         its forward_layer / backward_layer -> rnn*/forward, rnn*/backward
    model.mask_padding   Embedding(mask_zero=True)
    model.pooling        'max': GlobalMaxPooling1D (with mask_zero: MaskedGlobalMaxPooling1D
                         from here), 'mean': GlobalAveragePooling1D, 'last': no pooling layer,
                         the last RNN with return_sequences=False

Keras weights map one to one::

    embedding/embeddings; rnn/{kernel, recurrent_kernel, bias} (or rnn/forward/...,
    rnn/backward/...); rnn_1/...; dense_1/{kernel, bias}; dense_2/{kernel, bias}

Keras 3 has no Keras-2 hard sigmoid (its ``hard_sigmoid`` is relu6(x + 3) / 6), so a Keras
model with the notebook's gates uses ``recurrent_activation=keras2_hard_sigmoid`` from here.
Keras 3's GlobalMaxPooling1D ignores masks (it pools the RNN's outputs at the padding too:
zeros, or the last valid output), so a masked max is ``MaskedGlobalMaxPooling1D`` from here.
Keras is imported lazily: rnnbench runs without it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

import ml_collections
import numpy as np

from rnnbench.configs import default

Params = dict[str, Any]  # module -> {param: array}, or module -> direction -> {param: array}
_ARCHITECTURE = (
    "Embedding (mask_zero optional) -> one or more LSTM|GRU layers of one kind and size, "
    "each optionally wrapped in Bidirectional(merge_mode='concat'), return_sequences=True "
    "-> GlobalMaxPooling1D | GlobalAveragePooling1D | keras_compat.MaskedGlobalMaxPooling1D "
    "| none (the last RNN with return_sequences=False) -> Dropout -> Dense(relu) -> Dropout "
    "-> Dense(softmax)")


def keras2_hard_sigmoid(x):
  """Keras 2's hard sigmoid, clip(0.2 x + 0.5, 0, 1), as a Keras 3 activation."""
  from keras import ops  # pylint: disable=g-import-not-at-top
  return ops.clip(0.2 * x + 0.5, 0.0, 1.0)


@functools.cache
def register_keras_objects() -> None:
  """Registers keras2_hard_sigmoid with Keras' serialization (done on first use here, and
  at import when Keras is already imported). Keras needs it to rebuild a layer from its
  config, e.g. ``Bidirectional(LSTM(..., recurrent_activation=keras2_hard_sigmoid))``."""
  import keras  # pylint: disable=g-import-not-at-top
  keras.saving.register_keras_serializable(package="rnnbench")(keras2_hard_sigmoid)


if "keras" in sys.modules:
  register_keras_objects()


@functools.cache
def _masked_max_pooling_class() -> type:
  """Defines the Keras layer on first use (Keras is imported lazily)."""
  import keras  # pylint: disable=g-import-not-at-top
  register_keras_objects()
  from keras import ops  # pylint: disable=g-import-not-at-top

  @keras.saving.register_keras_serializable(package="rnnbench")
  class MaskedGlobalMaxPooling1D(keras.layers.Layer):
    """Max over the unmasked steps of (batch, steps, features); zeros for a fully masked
    row. rnnbench's pooling='max' with mask_padding (Keras 3's GlobalMaxPooling1D
    ignores the mask)."""

    def __init__(self, **kwargs):
      super().__init__(**kwargs)
      self.supports_masking = True

    def call(self, inputs, mask=None):
      if mask is None:
        return ops.max(inputs, axis=1)
      valid = ops.expand_dims(ops.cast(mask, "bool"), -1)
      pooled = ops.max(ops.where(valid, inputs, float("-inf")), axis=1)
      return ops.where(ops.any(valid, axis=1), pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs, mask=None):
      return None

    def compute_output_shape(self, input_shape):
      return (input_shape[0], input_shape[2])

  return MaskedGlobalMaxPooling1D


def __getattr__(name: str) -> Any:  # keras_compat.MaskedGlobalMaxPooling1D, built lazily
  if name == "MaskedGlobalMaxPooling1D":
    return _masked_max_pooling_class()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class UnsupportedKerasModel(ValueError):
  """The Keras model is not the notebook's architecture (or uses an unsupported option)."""


def _fail(message: str) -> NoReturn:
  raise UnsupportedKerasModel(f"{message}. Supported architecture: {_ARCHITECTURE}")


def _activation_name(fn: Any) -> str:
  """The Keras activation's function name, e.g. 'tanh', 'keras2_hard_sigmoid'."""
  return getattr(fn, "__name__", repr(fn))


_GATES = {"sigmoid": "sigmoid", "keras2_hard_sigmoid": "hard_sigmoid"}  # Keras -> rnnbench
_POOLING = {"GlobalMaxPooling1D": "max", "MaskedGlobalMaxPooling1D": "max",
            "GlobalAveragePooling1D": "mean"}  # Keras layer -> model.pooling


def _numpy(variable: Any) -> np.ndarray:
  return np.array(getattr(variable, "value", variable), np.float32)


@dataclasses.dataclass
class _Parts:
  """A supported Keras model's layers, by role."""
  embedding: Any
  rnns: list[Any]        # LSTM|GRU, or Bidirectional around one
  pool: Any | None       # None: pooling='last'
  dropout_1: Any
  dense_1: Any
  dropout_2: Any
  dense_2: Any

  def directions(self, rnn: Any) -> list[tuple[str | None, Any]]:
    """[(None, layer)], or [('forward', layer), ('backward', layer)] for a Bidirectional."""
    if hasattr(rnn, "forward_layer"):
      return [("forward", rnn.forward_layer), ("backward", rnn.backward_layer)]
    return [(None, rnn)]


def _parts(keras_model: Any) -> _Parts:
  import keras  # pylint: disable=g-import-not-at-top
  layers = [l for l in keras_model.layers if not isinstance(l, keras.layers.InputLayer)]
  names = [type(l).__name__ for l in layers]
  rnn_types = (keras.layers.LSTM, keras.layers.GRU, keras.layers.Bidirectional)
  num_rnns = 0
  while 1 + num_rnns < len(layers) and isinstance(layers[1 + num_rnns], rnn_types):
    num_rnns += 1
  rest = layers[1 + num_rnns:]
  pool = rest.pop(0) if rest and type(rest[0]).__name__ in _POOLING else None
  kinds = (keras.layers.Dropout, keras.layers.Dense, keras.layers.Dropout, keras.layers.Dense)
  if (not layers or not isinstance(layers[0], keras.layers.Embedding) or not num_rnns
      or len(rest) != len(kinds) or not all(isinstance(l, k) for l, k in zip(rest, kinds))):
    _fail(f"got layers {names}")
  if not keras_model.built:
    _fail("the Keras model is not built (call it once, or give it an Input)")
  return _Parts(layers[0], layers[1:1 + num_rnns], pool, *rest)


def _check_rnn(rnn: Any, go_backwards: bool, return_sequences: bool) -> None:
  import keras  # pylint: disable=g-import-not-at-top
  if not isinstance(rnn, (keras.layers.LSTM, keras.layers.GRU)):
    _fail(f"{rnn.name}: {type(rnn).__name__} is not supported, only LSTM and GRU")
  cell = rnn.cell
  if rnn.return_state or rnn.go_backwards != go_backwards or rnn.stateful:
    _fail(f"{rnn.name}: need return_state=False, stateful=False, go_backwards="
          f"{go_backwards} (go_backwards=True only as a Bidirectional's backward_layer)")
  if rnn.return_sequences != return_sequences:
    _fail(f"{rnn.name}: need return_sequences={return_sequences} (False only on the last "
          "recurrent layer, with no pooling layer after it: model.pooling='last')")
  if _activation_name(cell.activation) != "tanh" or not cell.use_bias:
    _fail(f"{rnn.name}: need activation='tanh' and use_bias=True")
  if _activation_name(cell.recurrent_activation) not in _GATES:
    _fail(f"{rnn.name}: recurrent_activation {_activation_name(cell.recurrent_activation)!r} "
          "is not supported; use 'sigmoid' or keras_compat.keras2_hard_sigmoid (Keras 3's "
          "'hard_sigmoid' is relu6(x + 3) / 6, not Keras 2's clip(0.2 x + 0.5, 0, 1))")
  if cell.dropout or cell.recurrent_dropout:
    _fail(f"{rnn.name}: dropout / recurrent_dropout inside the RNN are not supported")


def _signature(rnn: Any) -> tuple[Any, ...]:
  return (type(rnn).__name__, rnn.cell.units, _activation_name(rnn.cell.recurrent_activation),
          getattr(rnn.cell, "reset_after", None))


def _check(parts: _Parts) -> None:
  """Raises UnsupportedKerasModel for options rnnbench does not reproduce."""
  import keras  # pylint: disable=g-import-not-at-top
  bidirectional = [isinstance(r, keras.layers.Bidirectional) for r in parts.rnns]
  if any(bidirectional) and not all(bidirectional):
    _fail("either every recurrent layer is Bidirectional or none is")
  signatures = set()
  for i, rnn in enumerate(parts.rnns):
    return_sequences = i < len(parts.rnns) - 1 or parts.pool is not None
    if bidirectional[i] and rnn.merge_mode != "concat":
      _fail(f"{rnn.name}: Bidirectional merge_mode {rnn.merge_mode!r} is not supported, "
            "only 'concat'")
    for direction, layer in parts.directions(rnn):
      _check_rnn(layer, direction == "backward", return_sequences)
      signatures.add(_signature(layer))
  if len(signatures) > 1:
    _fail(f"every recurrent layer must share one cell type, units, recurrent_activation and "
          f"reset_after, got {sorted(map(str, signatures))}")
  pool = parts.pool
  if pool is not None:
    if getattr(pool, "data_format", "channels_last") != "channels_last" or getattr(
        pool, "keepdims", False):
      _fail(f"{type(pool).__name__}: need data_format='channels_last', keepdims=False")
    if parts.embedding.mask_zero and type(pool).__name__ == "GlobalMaxPooling1D":
      _fail("Embedding(mask_zero=True) with GlobalMaxPooling1D: Keras 3's max pooling "
            "ignores the mask (it pools the RNN's outputs at the padding too), which "
            "rnnbench does not reproduce; use keras_compat.MaskedGlobalMaxPooling1D "
            "(model.mask_padding=True, pooling='max'), GlobalAveragePooling1D, or "
            "mask_zero=False")
  if parts.dropout_1.rate != parts.dropout_2.rate:
    _fail(f"both Dropout layers must share one rate, got {parts.dropout_1.rate} and "
          f"{parts.dropout_2.rate}")
  for dense, activation in ((parts.dense_1, "relu"), (parts.dense_2, "softmax")):
    if _activation_name(dense.activation) != activation or not dense.use_bias:
      _fail(f"{dense.name}: need activation={activation!r} with a bias")


def variable_paths(keras_model: Any) -> list[tuple[tuple[str, ...], Any]]:
  """The ``(path, keras.Variable)`` pairs of a supported Keras model.

  A path is the param's place in rnnbench's tree, e.g. ``('rnn', 'kernel')``, or
  ``('rnn_1', 'backward', 'kernel')`` for a stacked bidirectional model.
  """
  parts = _parts(keras_model)
  paths = [(("embedding", "embeddings"), parts.embedding.embeddings)]
  for i, rnn in enumerate(parts.rnns):
    module = ("rnn",) if i == 0 else (f"rnn_{i}",)
    for direction, layer in parts.directions(rnn):
      prefix = module + ((direction,) if direction else ())
      paths += [(prefix + (name,), getattr(layer.cell, name))
                for name in ("kernel", "recurrent_kernel", "bias")]
  for module, dense in (("dense_1", parts.dense_1), ("dense_2", parts.dense_2)):
    paths += [((module, "kernel"), dense.kernel), ((module, "bias"), dense.bias)]
  return paths


def from_keras(keras_model: Any, config: ml_collections.ConfigDict | None = None
               ) -> tuple[ml_collections.ConfigDict, Params]:
  """A Keras model of the notebook's architecture -> (rnnbench config, params).

  The model fields (and data.num_words, data.maxlen when the input length is fixed) are
  written onto a copy of ``config`` (default: ``configs/default.py``'s). The number of
  classes is ``params['dense_2']['kernel'].shape[1]``.
  """
  import keras  # pylint: disable=g-import-not-at-top
  register_keras_objects()
  parts = _parts(keras_model)
  _check(parts)
  config = copy.deepcopy(config) if config is not None else default.get_config()
  config.data.num_words = int(parts.embedding.input_dim)
  shape = getattr(keras_model, "input_shape", None)
  if isinstance(shape, tuple) and len(shape) == 2 and shape[1] is not None:
    config.data.maxlen = int(shape[1])
  rnn = parts.directions(parts.rnns[0])[0][1]
  m = config.model
  m.cell = "gru" if isinstance(rnn, keras.layers.GRU) else "lstm"
  m.embed_dim = int(parts.embedding.output_dim)
  m.hidden_size = int(rnn.cell.units)
  m.dense_size = int(parts.dense_1.units)
  m.dropout = float(parts.dropout_1.rate)
  m.recurrent_activation = _GATES[_activation_name(rnn.cell.recurrent_activation)]
  if m.cell == "gru":
    m.reset_after = bool(rnn.cell.reset_after)
  m.num_layers = len(parts.rnns)
  m.bidirectional = isinstance(parts.rnns[0], keras.layers.Bidirectional)
  m.mask_padding = bool(parts.embedding.mask_zero)
  m.pooling = _POOLING[type(parts.pool).__name__] if parts.pool is not None else "last"
  params: Params = {}
  for path, variable in variable_paths(keras_model):
    node = params
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = _numpy(variable)
  return config, params


def to_keras(config: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
  """rnnbench (config, params) -> a built ``keras.Sequential`` with the same weights."""
  import keras  # pylint: disable=g-import-not-at-top
  register_keras_objects()
  m, data = config["model"], config["data"]
  if m["cell"] not in ("lstm", "gru"):
    raise ValueError(f"to_keras supports the 'lstm' and 'gru' cells, not {m['cell']!r} "
                     "(Keras has no layer with the other cells' equations)")
  gates = {"sigmoid": "sigmoid", "hard_sigmoid": keras2_hard_sigmoid}
  if m["recurrent_activation"] not in gates:
    raise ValueError(f"recurrent_activation {m['recurrent_activation']!r} has no Keras "
                     f"equivalent here; use one of {sorted(gates)}")
  num_layers, pooling = int(m.get("num_layers", 1)), m.get("pooling", "max")
  mask_padding = bool(m.get("mask_padding", False))
  if pooling not in ("max", "mean", "last"):
    raise ValueError(f"model.pooling {pooling!r} has no Keras equivalent here; use one of "
                     "'max', 'mean', 'last'")
  def rnn_layer(name: str, return_sequences: bool, go_backwards: bool = False) -> Any:
    kwargs = dict(return_sequences=return_sequences, go_backwards=go_backwards, name=name,
                  recurrent_activation=gates[m["recurrent_activation"]])
    if m["cell"] == "gru":
      return keras.layers.GRU(m["hidden_size"], reset_after=bool(m["reset_after"]), **kwargs)
    return keras.layers.LSTM(m["hidden_size"], **kwargs)

  rnns = []
  for i in range(num_layers):
    name = m["cell"] if i == 0 else f"{m['cell']}_{i}"
    return_sequences = pooling != "last" or i < num_layers - 1
    rnn = rnn_layer(name, return_sequences)
    if m.get("bidirectional", False):  # an explicit backward layer: no config round trip
      rnn = keras.layers.Bidirectional(
          rnn, backward_layer=rnn_layer(f"backward_{name}", return_sequences, True),
          merge_mode="concat", name="bidirectional" if i == 0 else f"bidirectional_{i}")
    rnns.append(rnn)
  if pooling == "max" and mask_padding:
    pool = [_masked_max_pooling_class()(name="masked_global_max_pooling1d")]
  elif pooling == "max":
    pool = [keras.layers.GlobalMaxPooling1D(name="global_max_pooling1d")]
  elif pooling == "mean":
    pool = [keras.layers.GlobalAveragePooling1D(name="global_average_pooling1d")]
  else:
    pool = []
  num_classes = int(np.shape(params["dense_2"]["kernel"])[1])
  model = keras.Sequential([
      keras.Input(shape=(data.get("maxlen") or None,), dtype="int32"),
      keras.layers.Embedding(data["num_words"], m["embed_dim"], mask_zero=mask_padding,
                             name="embedding"),
      *rnns,
      *pool,
      keras.layers.Dropout(m["dropout"], name="dropout_1"),
      keras.layers.Dense(m["dense_size"], activation="relu", name="dense_1"),
      keras.layers.Dropout(m["dropout"], name="dropout_2"),
      keras.layers.Dense(num_classes, activation="softmax", name="dense_2"),
  ])
  for path, variable in variable_paths(model):
    value = functools.reduce(lambda node, key: node[key], path, params)
    value = np.asarray(value, np.float32)
    if tuple(variable.shape) != value.shape:
      raise ValueError(f"{'/'.join(path)}: Keras expects shape {tuple(variable.shape)}, "
                       f"params have {value.shape}")
    variable.assign(value)
  return model
