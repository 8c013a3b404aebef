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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rnnbench import cells


def uniform(minval: float, maxval: float) -> nn.initializers.Initializer:
  """Keras' RandomUniform(minval, maxval)."""

  def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, minval, maxval)

  return init


class Embedding(nn.Module):
  """Keras' Embedding: a (num_embeddings, features) table named ``embeddings``."""
  num_embeddings: int
  features: int

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    table = self.param("embeddings", uniform(-0.05, 0.05),
                       (self.num_embeddings, self.features))
    return jnp.take(table, tokens, axis=0)


class Classifier(nn.Module):
  """Embedding -> cell -> GlobalMaxPool1D -> Dropout -> Dense(relu) -> Dropout -> Dense."""
  num_words: int
  embed_dim: int
  rnn: nn.Module  # the recurrent cell; its params live under 'rnn'
  dense_size: int
  num_classes: int
  dropout: float = 0.5

  def setup(self):
    self.embedding = Embedding(self.num_words, self.embed_dim)
    self.dropout_1 = nn.Dropout(self.dropout)
    self.dense_1 = nn.Dense(self.dense_size, kernel_init=nn.initializers.glorot_uniform())
    self.dropout_2 = nn.Dropout(self.dropout)
    self.dense_2 = nn.Dense(self.num_classes, kernel_init=nn.initializers.glorot_uniform())

  def logits(self, tokens: jax.Array, train: bool = False) -> jax.Array:
    """Int tokens (B, T) -> pre-softmax class scores (B, num_classes)."""
    x = self.rnn(self.embedding(tokens))
    x = jnp.max(x, axis=1)  # every position, padding included, as Keras without a mask
    x = self.dropout_1(x, deterministic=not train)
    x = nn.relu(self.dense_1(x))
    x = self.dropout_2(x, deterministic=not train)
    return self.dense_2(x)

  def __call__(self, tokens: jax.Array, train: bool = False,
               return_logits: bool = False) -> jax.Array:
    """Int tokens (B, T) -> class probabilities (B, num_classes), or logits if asked."""
    logits = self.logits(tokens, train)
    return logits if return_logits else jax.nn.softmax(logits)


def create_model(config: Mapping[str, Any], num_classes: int = 20) -> Classifier:
  """The classifier for the full config (``config.data.num_words``, ``config.model.*``)."""
  m = config["model"]
  return Classifier(num_words=config["data"]["num_words"], embed_dim=m["embed_dim"],
                    rnn=cells.create(m), dense_size=m["dense_size"],
                    num_classes=num_classes, dropout=m["dropout"])


def param_shapes(config: Mapping[str, Any], num_classes: int = 20,
                 seq_len: int | None = None) -> dict[str, Any]:
  """The param tree's shapes (``jax.ShapeDtypeStruct`` leaves), computed without allocating."""
  seq_len = seq_len or config["data"]["maxlen"]
  model = create_model(config, num_classes)
  tokens = jax.ShapeDtypeStruct((1, seq_len), jnp.int32)
  return jax.eval_shape(model.init, jax.random.key(0), tokens)["params"]


def summary(config: Mapping[str, Any], num_classes: int = 20) -> str:
  """A Keras-style table: layer (type), output shape, params; then the totals."""
  m, t = config["model"], config["data"]["maxlen"]
  shapes = param_shapes(config, num_classes, t)
  count = lambda name: sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes[name]))
  cell_type = type(create_model(config, num_classes).rnn).__name__
  rows = [("embedding (Embedding)", (None, t, m["embed_dim"]), count("embedding")),
          (f"rnn ({cell_type})", (None, t, m["hidden_size"]), count("rnn")),
          ("global_max_pooling1d (GlobalMaxPooling1D)", (None, m["hidden_size"]), 0),
          ("dropout_1 (Dropout)", (None, m["hidden_size"]), 0),
          ("dense_1 (Dense)", (None, m["dense_size"]), count("dense_1")),
          ("dropout_2 (Dropout)", (None, m["dense_size"]), 0),
          ("dense_2 (Dense)", (None, num_classes), count("dense_2"))]
  fmt = "{:<44}{:<20}{:>12}"
  line = "=" * 76
  lines = [fmt.format("Layer (type)", "Output Shape", "Param #"), line]
  lines += [fmt.format(name, str(shape), f"{n:,}") for name, shape, n in rows]
  lines += [line, f"Total params: {sum(r[2] for r in rows):,}"]
  return "\n".join(lines)
