"""The notebook's classifier: Embedding -> RNN (every step) -> max over time -> MLP -> softmax.

``model.apply({'params': p}, tokens)`` returns class probabilities (as Keras' model does);
``model.apply({'params': p}, tokens, return_logits=True)`` (or ``method="logits"``) the
pre-softmax logits for the loss.
``train=True`` applies dropout and needs ``rngs={'dropout': key}``.

Param tree (the notebook's LSTM model)::

    embedding/embeddings             (20000, 128)   uniform(-0.05, 0.05)
    rnn/{kernel, recurrent_kernel, bias}             the cell's own layout
    dense_1/{kernel (50, 50), bias}   glorot_uniform, zeros
    dense_2/{kernel (50, 20), bias}   glorot_uniform, zeros

Options (``config.model``, docs/model_options.md); the defaults are the notebook's model:

* ``num_layers``: stacked RNNs ``rnn``, ``rnn_1``, ``rnn_2``, ...; layer i > 0 reads the
  previous layer's sequence (Keras: one ``LSTM(return_sequences=True)`` per layer).
* ``bidirectional``: each layer is ``rnn*/forward`` and ``rnn*/backward``, the backward cell
  run on the time-reversed sequence and its outputs reversed back, concatenated on the
  feature axis (Keras: ``Bidirectional(layer, merge_mode='concat')``).
* ``mask_padding``: token 0 is padding (Keras: ``Embedding(mask_zero=True)``). The RNNs skip
  it (each step sees the previous *valid* step's state) and pooling ignores it; 'pre',
  'post' or any other placement of the zeros. An all-padding row pools to zeros.
* ``pooling``: 'max' (GlobalMaxPooling1D), 'mean' (GlobalAveragePooling1D) or 'last' (the
  last RNN's ``return_sequences=False``: the forward output at the last (valid) step, and
  for a bidirectional RNN the backward output at the first (valid) step, its final one).
* ``block``: each RNN layer inside a pre-norm residual block, as the minGRU/minLSTM paper's
  models (and most modern RNN stacks) use: ``h = skip(x) + rnn(LayerNorm(x))``, then
  ``h + MLP(LayerNorm(h))`` with ``MLP = Dense(4 W, gelu) -> Dense(W)``; ``skip`` is the
  identity, or a bias-free Dense when the layer's input width is not its output width ``W``.
  A final LayerNorm (``block_norm``) comes before the pooling. Params ``block_0``,
  ``block_1``, ... beside ``rnn``, ``rnn_1``, ...; False (the default) is the notebook's model.

The first layer reads the embedding's rows; a cell that ``takes_ids`` (the LSTM, the GRU)
is also given their tokens, so that on CPU it projects each distinct token's row once
(``pallas_rnn.input_projection``).

Masking, how: a causal RNN started from zeros gives at every valid step what it gives on the
same row with its padding moved to the end. So each row's tokens are put in "valid-first"
order (a stable sort of the mask), the cells run unchanged, the backward direction reverses
only the valid segment, and pooling reads the first ``length`` steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rnnbench import cells
from rnnbench import cpu_rnn
from rnnbench import scan as scan_lib

POOLINGS = ("max", "mean", "last")


def check_options(num_layers: int, pooling: str) -> None:
  """A clear ValueError for a model option out of range."""
  if pooling not in POOLINGS:
    raise ValueError(f"unknown model.pooling {pooling!r}; choose one of "
                     + ", ".join(repr(p) for p in POOLINGS))
  if int(num_layers) < 1:
    raise ValueError(f"model.num_layers must be >= 1, got {num_layers}")


class Block(nn.Module):
  """The non-recurrent parts of one residual block around an RNN layer (``model.block``)."""
  in_features: int
  features: int  # the RNN layer's output width W
  mlp_ratio: int = 4

  def setup(self):
    self.norm_1 = nn.LayerNorm()
    if self.in_features != self.features:
      self.skip = nn.Dense(self.features, use_bias=False)
    self.norm_2 = nn.LayerNorm()
    self.mlp_in = nn.Dense(self.mlp_ratio * self.features)
    self.mlp_out = nn.Dense(self.features)

  def pre(self, x: jax.Array) -> jax.Array:
    """(B, T, in) -> the RNN layer's input, LayerNorm(x)."""
    return self.norm_1(x)

  def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
    """x (B, T, in), the RNN's output y (B, T, W) -> the block's output (B, T, W)."""
    h = (x if self.in_features == self.features else self.skip(x)) + y
    return h + self.mlp_out(nn.gelu(self.mlp_in(self.norm_2(h))))

  @staticmethod
  def count(in_features: int, features: int, mlp_ratio: int = 4) -> int:
    skip = 0 if in_features == features else in_features * features
    hidden = mlp_ratio * features
    return 2 * in_features + skip + 2 * features + (features + 1) * hidden + (hidden + 1) * features


def takes_ids(layer: nn.Module) -> bool:
  """Whether a cell (or both cells of a Bidirectional) takes ``ids``, the tokens of an
  embedding's rows it reads (a cell's ``takes_ids`` ClassVar: rnnbench.cells)."""
  if isinstance(layer, Bidirectional):
    return takes_ids(layer.forward) and takes_ids(layer.backward)
  return getattr(layer, "takes_ids", False)


def _take(x: jax.Array, index: jax.Array) -> jax.Array:
  """``x[b, index[b, t]]`` for (B, T, ...) x and (B, T) int index."""
  return jnp.take_along_axis(x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1)


class Embedding(nn.Module):
  """Keras' Embedding: a (num_embeddings, features) table named ``embeddings``."""
  num_embeddings: int
  features: int

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    table = self.param("embeddings", scan_lib.uniform(-0.05, 0.05),
                       (self.num_embeddings, self.features))
    return jnp.take(table, tokens, axis=0)


class Bidirectional(nn.Module):
  """Keras' Bidirectional(merge_mode='concat'): (B, T, D) -> (B, T, 2 H)."""
  forward: nn.Module   # two cells of the same kind; params 'forward' and 'backward'
  backward: nn.Module

  def __call__(self, x: jax.Array, reverse: jax.Array | None = None,
               ids: jax.Array | None = None) -> jax.Array:
    """``reverse``: (B, T) per-row time indices that reverse each row; None: all T steps.
    ``ids``: the tokens of ``x``'s rows, if an embedding's (``takes_ids``)."""
    flip = ((lambda a: jnp.flip(a, axis=1)) if reverse is None
            else (lambda a: _take(a, reverse)))  # a permutation that is its own inverse
    if ids is None:
      forward, backward = self.forward(x), self.backward(flip(x))
    else:
      forward, backward = self.forward(x, ids), self.backward(flip(x), flip(ids))
    return jnp.concatenate([forward, flip(backward)], axis=-1)


class Classifier(nn.Module):
  """Embedding -> cell -> GlobalMaxPool1D -> Dropout -> Dense(relu) -> Dropout -> Dense.

  With the options of the module docstring: Embedding -> ``num_layers`` cells (or
  Bidirectional) -> max|mean|last pooling (masked or not) -> the same MLP.
  """
  num_words: int
  embed_dim: int
  rnn: nn.Module  # the first recurrent layer (a cell, or Bidirectional); params 'rnn'
  dense_size: int
  num_classes: int
  dropout: float = 0.5
  num_layers: int = 1        # layers i > 0 are copies of ``rnn``, params 'rnn_{i}'
  mask_padding: bool = False
  pooling: str = "max"
  block: bool = False        # residual + LayerNorm + MLP around each layer (``Block``)

  def setup(self):
    check_options(self.num_layers, self.pooling)
    self.embedding = Embedding(self.num_words, self.embed_dim)
    for i in range(1, self.num_layers):
      setattr(self, f"rnn_{i}", self.rnn.copy())
    if self.block:
      width = _width(self.rnn)
      for i in range(self.num_layers):
        setattr(self, f"block_{i}", Block(self.embed_dim if i == 0 else width, width))
      self.block_norm = nn.LayerNorm()
    self.dropout_1 = nn.Dropout(self.dropout)
    self.dense_1 = nn.Dense(self.dense_size, kernel_init=nn.initializers.glorot_uniform())
    self.dropout_2 = nn.Dropout(self.dropout)
    self.dense_2 = nn.Dense(self.num_classes, kernel_init=nn.initializers.glorot_uniform())

  def _encode(self, tokens: jax.Array):
    """-> (last layer's outputs, valid (B, T) or None, order (B, T) or None).

    With ``mask_padding`` the outputs are in each row's valid-first ``order``: step t < the
    row's length is its t-th valid token; ``valid`` marks those steps.
    """
    valid = order = reverse = None
    if self.mask_padding:
      order = jnp.argsort(tokens == 0, axis=1, stable=True)
      tokens = jnp.take_along_axis(tokens, order, axis=1)
      steps = jnp.arange(tokens.shape[1])[None]
      length = jnp.sum(tokens != 0, axis=1, keepdims=True)
      valid = steps < length
      reverse = jnp.where(valid, length - 1 - steps, steps)
    x = self.embedding(tokens)
    for i in range(self.num_layers):
      layer = self.rnn if i == 0 else getattr(self, f"rnn_{i}")
      block = getattr(self, f"block_{i}") if self.block else None
      y = block.pre(x) if block is not None else x
      # the first layer reads the embedding's rows: its cell may use their tokens
      ids = {"ids": tokens} if i == 0 and block is None and takes_ids(layer) else {}
      y = layer(y, reverse, **ids) if isinstance(layer, Bidirectional) else layer(y, **ids)
      x = block(x, y) if block is not None else y
    if self.block:
      x = self.block_norm(x)
    return x, valid, order

  def _last(self, x: jax.Array, last: jax.Array | int) -> jax.Array:
    """Each row's step ``last``; a bidirectional RNN's backward half from step 0 (its end)."""
    out = jnp.take_along_axis(x, jnp.reshape(last, (-1, 1, 1)), axis=1)[:, 0]
    if not isinstance(self.rnn, Bidirectional):
      return out
    half = x.shape[-1] // 2
    return jnp.concatenate([out[:, :half], x[:, 0, half:]], axis=-1)

  def _pool(self, x: jax.Array, valid: jax.Array | None) -> jax.Array:
    """(B, T, F) -> (B, F), over every step, or over the valid ones (zeros if none)."""
    if valid is None:
      if self.pooling == "max":
        return cpu_rnn.max_pool(x)  # every position, padding included, as Keras without a mask
      if self.pooling == "mean":
        return jnp.mean(x, axis=1)
      return self._last(x, x.shape[1] - 1)
    length = valid.sum(axis=1, keepdims=True)
    if self.pooling == "max":
      out = jnp.max(jnp.where(valid[..., None], x, -jnp.inf), axis=1)
    elif self.pooling == "mean":
      out = jnp.where(valid[..., None], x, 0.0).sum(axis=1) / jnp.maximum(length, 1)
    else:
      out = self._last(x, jnp.maximum(length - 1, 0))
    return jnp.where(length > 0, out, 0.0)

  def rnn_outputs(self, tokens: jax.Array) -> jax.Array:
    """The last RNN layer's outputs (B, T, F) at each token's position (zeros at padding
    when masked): what a Keras ``return_sequences=True`` layer gives at the valid steps."""
    x, valid, order = self._encode(tokens)
    if order is None:
      return x
    return _take(jnp.where(valid[..., None], x, 0.0), jnp.argsort(order, axis=1))

  def logits(self, tokens: jax.Array, train: bool = False) -> jax.Array:
    """Int tokens (B, T) -> pre-softmax class scores (B, num_classes)."""
    x = self._pool(*self._encode(tokens)[:2])
    x = self.dropout_1(x, deterministic=not train)
    x = nn.relu(self.dense_1(x))
    x = self.dropout_2(x, deterministic=not train)
    return self.dense_2(x)

  def __call__(self, tokens: jax.Array, train: bool = False,
               return_logits: bool = False) -> jax.Array:
    """Int tokens (B, T) -> class probabilities (B, num_classes), or logits if asked."""
    logits = self.logits(tokens, train)
    return logits if return_logits else jax.nn.softmax(logits)


def _option(m: Mapping[str, Any], name: str, default: Any) -> Any:
  return m[name] if name in m else default


def _width(rnn: nn.Module) -> int:
  """The output width of a cell, or of a Bidirectional pair (both halves)."""
  return 2 * rnn.forward.features if isinstance(rnn, Bidirectional) else rnn.features


def create_model(config: Mapping[str, Any], num_classes: int = 20) -> Classifier:
  """The classifier for the full config (``config.data.num_words``, ``config.model.*``)."""
  m = config["model"]
  num_layers = int(_option(m, "num_layers", 1))
  pooling = _option(m, "pooling", "max")
  check_options(num_layers, pooling)
  rnn = cells.create(m)
  if _option(m, "bidirectional", False):
    rnn = Bidirectional(forward=rnn, backward=cells.create(m))
  return Classifier(num_words=config["data"]["num_words"], embed_dim=m["embed_dim"],
                    rnn=rnn, dense_size=m["dense_size"], num_classes=num_classes,
                    dropout=m["dropout"], num_layers=num_layers,
                    mask_padding=bool(_option(m, "mask_padding", False)), pooling=pooling,
                    block=bool(_option(m, "block", False)))


def param_shapes(config: Mapping[str, Any], num_classes: int = 20,
                 seq_len: int | None = None) -> dict[str, Any]:
  """The param tree's shapes (``jax.ShapeDtypeStruct`` leaves), computed without allocating."""
  seq_len = seq_len or config["data"]["maxlen"]
  model = create_model(config, num_classes)
  tokens = jax.ShapeDtypeStruct((1, seq_len), jnp.int32)
  return jax.eval_shape(model.init, jax.random.key(0), tokens)["params"]


def rnn_names(config: Mapping[str, Any]) -> list[str]:
  """The recurrent layers' param names: 'rnn', 'rnn_1', ... (one per config.model.num_layers)."""
  return ["rnn" if i == 0 else f"rnn_{i}"
          for i in range(int(_option(config["model"], "num_layers", 1)))]


def rnn_param_count(config: Mapping[str, Any]) -> int:
  """The params of the recurrent layers (and their ``model.block`` parts), in closed form."""
  m = config["model"]
  directions = 2 if _option(m, "bidirectional", False) else 1
  cell = cells.create(m)
  width = directions * m["hidden_size"]
  rnn = sum(directions * cell.param_count(m["embed_dim"] if i == 0 else width)
            for i in range(len(rnn_names(config))))
  if _option(m, "block", False):
    rnn += sum(Block.count(m["embed_dim"] if i == 0 else width, width)
               for i in range(len(rnn_names(config)))) + 2 * width
  return rnn


def param_count(config: Mapping[str, Any], num_classes: int = 20) -> int:
  """The number of params, in closed form from the cells' ``param_count``."""
  m = config["model"]
  width = (2 if _option(m, "bidirectional", False) else 1) * m["hidden_size"]
  rnn = rnn_param_count(config)
  return (config["data"]["num_words"] * m["embed_dim"] + rnn
          + (width + 1) * m["dense_size"] + (m["dense_size"] + 1) * num_classes)


def summary(config: Mapping[str, Any], num_classes: int = 20) -> str:
  """A Keras-style table: layer (type), output shape, params; then the totals."""
  m, t = config["model"], config["data"]["maxlen"]
  shapes = param_shapes(config, num_classes, t)
  count = lambda name: sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes[name]))
  model = create_model(config, num_classes)
  bidirectional = isinstance(model.rnn, Bidirectional)
  cell_type = type(model.rnn.forward if bidirectional else model.rnn).__name__
  if bidirectional:
    cell_type = f"Bidirectional({cell_type})"
  width = (2 if bidirectional else 1) * m["hidden_size"]
  names = rnn_names(config)
  rows = [("embedding (Embedding)", (None, t, m["embed_dim"]), count("embedding"))]
  for i, name in enumerate(names):
    last = model.pooling == "last" and name == names[-1]  # return_sequences=False
    rows.append((f"{name} ({cell_type})", (None, width) if last else (None, t, width),
                 count(name)))
    if model.block:
      rows.append((f"block_{i} (Block: LayerNorm, MLP)", (None, t, width), count(f"block_{i}")))
  if model.block:
    rows.append(("block_norm (LayerNormalization)", (None, t, width), count("block_norm")))
  if model.pooling != "last":
    layer = {"max": "GlobalMaxPooling1D", "mean": "GlobalAveragePooling1D"}[model.pooling]
    name = {"max": "global_max_pooling1d", "mean": "global_average_pooling1d"}[model.pooling]
    if model.mask_padding:
      layer = f"masked {layer}"
    rows.append((f"{name} ({layer})", (None, width), 0))
  rows += [("dropout_1 (Dropout)", (None, width), 0),
           ("dense_1 (Dense)", (None, m["dense_size"]), count("dense_1")),
           ("dropout_2 (Dropout)", (None, m["dense_size"]), 0),
           ("dense_2 (Dense)", (None, num_classes), count("dense_2"))]
  name_width = max(44, max(len(r[0]) for r in rows) + 2)
  fmt = "{:<%d}{:<20}{:>12}" % name_width
  line = "=" * (name_width + 32)
  lines = [fmt.format("Layer (type)", "Output Shape", "Param #"), line]
  lines += [fmt.format(name, str(shape), f"{n:,}") for name, shape, n in rows]
  lines += [line, f"Total params: {sum(r[2] for r in rows):,}"]
  return "\n".join(lines)
