"""The model options (config.model.num_layers, bidirectional, mask_padding, pooling).

Shared checks over a few registered cells (two Keras cells and non-Keras ones): param tree
names and counts (created == closed form == summary), shapes, jit, determinism, gradients.
Then the options' meaning, by hand: bidirectional == the backward cell on the reversed
sequence, masking == the same row without its padding (for every registered cell), the three
poolings, empty rows. Parity with Keras is in test_keras_compat.py.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnbench.configs import default
from rnnbench import cells
from rnnbench import models

B, T, WORDS, CLASSES = 5, 7, 40, 3
CELLS = [n for n in ("lstm", "gru", "mingru") if n in cells.names()]  # mingru: not in Keras
OPTIONS = {  # every option's every value; the padded tokens below include an empty row
    "stack3-masked-last": dict(num_layers=3, mask_padding=True, pooling="last"),
    "bi-masked-mean": dict(bidirectional=True, mask_padding=True, pooling="mean"),
    "bi2-masked-max": dict(num_layers=2, bidirectional=True, mask_padding=True),
    "bi2": dict(num_layers=2, bidirectional=True),
}
_FAST_COMPILE = {"xla_backend_optimization_level": 0}  # tiny programs: compile ~2x faster


def _config(cell: str = "lstm", **model):
  config = default.get_config()
  config.data.num_words, config.data.maxlen = WORDS, T
  config.model.update(cell=cell, embed_dim=5, hidden_size=4, dense_size=6, dropout=0.0)
  config.model.update(model)
  return config


def _tokens(seed: int = 0) -> np.ndarray:
  """A full row, a 'pre'-padded, a 'post'-padded, a one-token and an empty row."""
  ids = np.random.default_rng(seed).integers(1, WORDS, (B, T)).astype(np.int32)
  ids[1, :3] = 0
  ids[2, 4:] = 0
  ids[3, :-1] = 0
  ids[4] = 0
  return ids


def _compiled(fn, *args):
  return jax.jit(fn).lower(*args).compile(_FAST_COMPILE)


@functools.cache
def _built(cell: str, option: str):
  """(config, model, params, init, run) of one cell with one option set: ``init`` and ``run``
  (params -> logits, rnn outputs, grads) compiled once."""
  config = _config(cell, **OPTIONS[option])
  model = models.create_model(config, CLASSES)
  tokens, key = jnp.asarray(_tokens()), jax.random.key(0)
  init = _compiled(lambda: model.init(key, tokens)["params"])
  weights = jax.random.normal(jax.random.key(1), (B, CLASSES))

  def run(p):
    logits = lambda p: model.apply({"params": p}, tokens, return_logits=True)
    outputs = model.apply({"params": p}, tokens, method="rnn_outputs")
    return logits(p), outputs, jax.grad(lambda p: jnp.sum(weights * logits(p)))(p)

  params = init()
  return config, model, params, init, _compiled(run, params)


def _count(tree) -> int:
  return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("cell", CELLS)
def test_options_shared(cell, option):
  config, _, params, init, run = _built(cell, option)
  logits, outputs, grads = run(params)
  m = config.model
  directions = 2 if m.bidirectional else 1
  # The param tree: Keras-like names, one entry per layer, forward/backward when bidirectional.
  names = models.rnn_names(config)
  assert names == ["rnn"] + [f"rnn_{i}" for i in range(1, m.num_layers)]
  assert set(params) == {"embedding", "dense_1", "dense_2", *names}
  for name in names:
    assert (set(params[name]) == {"forward", "backward"}) == m.bidirectional
  # Params created == the closed form == the summary's total.
  cell_module = cells.create(m)
  width = directions * m.hidden_size
  rnn = [directions * cell_module.param_count(m.embed_dim if i == 0 else width)
         for i in range(m.num_layers)]
  assert [_count(params[n]) for n in names] == rnn
  assert _count(params) == models.param_count(config, CLASSES) == (
      WORDS * m.embed_dim + sum(rnn) + (width + 1) * m.dense_size
      + (m.dense_size + 1) * CLASSES)
  assert f"Total params: {_count(params):,}" in models.summary(config, CLASSES)
  # Shapes, finite values; determinism (same key, same params; same params, same output).
  assert logits.shape == (B, CLASSES) and outputs.shape == (B, T, width)
  assert np.all(np.isfinite(logits)) and np.all(np.isfinite(outputs))
  jax.tree.map(np.testing.assert_array_equal, init(), params)
  np.testing.assert_array_equal(run(params)[0], logits)
  if m.mask_padding:  # the padding embedding (row 0) is never read
    assert not np.asarray(grads["embedding"]["embeddings"][0]).any()
  # Gradients: finite, and every param reaches the output.
  for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
    assert np.all(np.isfinite(g)), path
    assert np.any(g != 0), f"{jax.tree_util.keystr(path)} gets no gradient"


def test_defaults_are_the_notebook_model():
  config = default.get_config()
  m = config.model
  assert (m.num_layers, m.bidirectional, m.mask_padding, m.pooling) == (1, False, False, "max")
  shapes = models.param_shapes(config)
  assert set(shapes) == {"embedding", "rnn", "dense_1", "dense_2"}
  assert set(shapes["rnn"]) == {"kernel", "recurrent_kernel", "bias"}
  assert models.param_count(config) == _count(shapes) == 2_599_370


def test_bidirectional_by_hand():
  """Forward half: the forward cell; backward half: the backward cell on the reversed row,
  reversed back (Keras' Bidirectional, merge_mode='concat'); masked: on the valid tokens."""
  for cell in CELLS[:2]:
    config, model, params, _, run = _built(cell, "bi-masked-mean")
    outputs, tokens = run(params)[1], _tokens()
    for row in range(2):  # a full row and a 'pre'-padded one
      emb = params["embedding"]["embeddings"][tokens[row][tokens[row] != 0]][None]
      rnn = model.rnn
      forward = rnn.forward.apply({"params": params["rnn"]["forward"]}, emb)
      backward = rnn.backward.apply({"params": params["rnn"]["backward"]}, emb[:, ::-1])
      np.testing.assert_allclose(outputs[row][tokens[row] != 0],
                                 np.concatenate([forward, backward[:, ::-1]], -1)[0],
                                 rtol=1e-5, atol=1e-6)
    assert config.model.hidden_size * 2 == outputs.shape[-1]


def _pool_by_hand(outputs: np.ndarray, valid: np.ndarray, pooling: str,
                  bidirectional: bool) -> np.ndarray:
  """Pooled features from the RNN outputs at their original positions, one row at a time."""
  rows = []
  for out, ok in zip(outputs, valid):
    steps = np.flatnonzero(ok)
    if not len(steps):
      rows.append(np.zeros(out.shape[-1]))
    elif pooling == "max":
      rows.append(out[steps].max(0))
    elif pooling == "mean":
      rows.append(out[steps].mean(0))
    else:  # forward: the last valid step; backward: the first (its final state)
      half = out.shape[-1] // 2 if bidirectional else out.shape[-1]
      rows.append(np.concatenate([out[steps[-1], :half], out[steps[0], half:]]))
  return np.stack(rows)


@pytest.mark.parametrize("mask_padding,bidirectional", [(False, False), (True, True)],
                         ids=["all_steps-uni", "masked-bi"])
def test_pooling_by_hand(mask_padding, bidirectional):
  tokens = _tokens()  # with an empty document
  valid = tokens != 0 if mask_padding else np.ones_like(tokens, bool)
  config = _config("gru", mask_padding=mask_padding, bidirectional=bidirectional)
  pool_models = {}
  for pooling in models.POOLINGS:  # the same params for every pooling
    config.model.pooling = pooling
    pool_models[pooling] = models.create_model(config, CLASSES)
  params = pool_models["max"].init(jax.random.key(0), tokens)["params"]

  def run(p):
    outputs = pool_models["max"].apply({"params": p}, tokens, method="rnn_outputs")
    return outputs, {k: m.apply({"params": p}, tokens, return_logits=True)
                     for k, m in pool_models.items()}

  outputs, logits = _compiled(run, params)(params)
  outputs = np.asarray(outputs)
  if mask_padding:
    assert not outputs[~valid].any()  # zeros at the padding
  for pooling, got in logits.items():
    pooled = _pool_by_hand(outputs, valid, pooling, bidirectional)
    hidden = np.maximum(pooled @ params["dense_1"]["kernel"] + params["dense_1"]["bias"], 0)
    want = hidden @ params["dense_2"]["kernel"] + params["dense_2"]["bias"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=pooling)


@pytest.mark.parametrize("name", cells.names())
def test_masking_is_the_row_without_padding(name):
  """Every registered cell, unchanged: a masked row ('pre', 'post', or zeros inside) gives
  the logits and, at its tokens, the RNN outputs of the same row with no padding at all.
  (Bidirectional; stacked layers compose, see test_options_shared and the Keras tests.)"""
  config = _config(name, bidirectional=True, mask_padding=True)
  masked = models.create_model(config, CLASSES)
  config.model.mask_padding = False
  plain = models.create_model(config, CLASSES)
  ids = np.array([5, 9, 2, 31, 7], np.int32)
  tokens = np.zeros((4, 9), np.int32)
  tokens[0, 4:] = ids                    # 'pre'
  tokens[1, :5] = ids                    # 'post'
  tokens[2, [0, 2, 3, 6, 8]] = ids       # zeros inside
  params = masked.init(jax.random.key(0), tokens)["params"]

  def run(model, x):  # -> (logits, rnn outputs), one compile
    fn = lambda p: (model.apply({"params": p}, x, return_logits=True),
                    model.apply({"params": p}, x, method="rnn_outputs"))
    return _compiled(fn, params)(params)

  logits, outputs = run(masked, tokens)
  want, want_outputs = (y[0] for y in run(plain, ids[None]))
  for row in range(3):
    np.testing.assert_allclose(logits[row], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs[row][tokens[row] != 0], want_outputs,
                               rtol=1e-5, atol=1e-6)
  # The empty row: pooled features are zeros, so the logits are the MLP's of zeros.
  zeros = jnp.maximum(params["dense_1"]["bias"], 0) @ params["dense_2"]["kernel"]
  np.testing.assert_allclose(logits[3], zeros + params["dense_2"]["bias"], atol=1e-6)


def test_unknown_options_are_clear_errors():
  with pytest.raises(ValueError, match="'max', 'mean', 'last'"):
    models.create_model(_config(pooling="median"))
  with pytest.raises(ValueError, match="num_layers"):
    models.create_model(_config(num_layers=0))


def test_summary_shows_the_options():
  config = default.get_config()
  config.model.update(num_layers=2, bidirectional=True)
  text = models.summary(config, num_classes=20)
  # LSTM(50) on 128 inputs, then on the 100 concatenated features; both directions.
  rnn, rnn_1 = 2 * 4 * (50 * (128 + 50) + 50), 2 * 4 * (50 * (100 + 50) + 50)
  total = 20000 * 128 + rnn + rnn_1 + (100 + 1) * 50 + (50 + 1) * 20
  assert re.search(rf"rnn \(Bidirectional\(LSTM\)\)\s+\(None, 100, 100\)\s+{rnn:,}", text)
  assert re.search(rf"rnn_1 \(Bidirectional\(LSTM\)\)\s+\(None, 100, 100\)\s+{rnn_1:,}", text)
  assert re.search(r"global_max_pooling1d \(GlobalMaxPooling1D\)\s+\(None, 100\)", text)
  assert text.endswith(f"Total params: {total:,}")
  assert total == models.param_count(config) == _count(models.param_shapes(config))
  config.model.update(pooling="last", mask_padding=True, bidirectional=False)
  text = models.summary(config, num_classes=20)
  assert re.search(r"rnn_1 \(LSTM\)\s+\(None, 50\)\s", text)
  assert "pooling" not in text
  config.model.pooling = "mean"
  text = models.summary(config, num_classes=20)
  assert "global_average_pooling1d (masked GlobalAveragePooling1D)" in text
