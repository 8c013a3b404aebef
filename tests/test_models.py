"""The classifier: Keras-like param tree, the notebook's param counts, outputs and dropout."""

import jax
import numpy as np
import pytest

from rnnbench.configs import default
from rnnbench import models


def _config(cell="lstm", **model):
  config = default.get_config()
  config.model.cell = cell
  config.model.update(model)
  return config


def _count(tree):
  return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(tree))


@pytest.mark.parametrize("cell,reset_after,rnn_count,total", [
    ("lstm", False, 35_800, 2_599_370), ("gru", False, 26_850, 2_590_420),
    ("gru", True, 27_000, 2_590_570)])
def test_notebook_param_counts(cell, reset_after, rnn_count, total):
  config = _config(cell, reset_after=reset_after)
  shapes = models.param_shapes(config, num_classes=20)
  counts = {name: _count(tree) for name, tree in shapes.items()}
  assert counts == {"embedding": 2_560_000, "rnn": rnn_count, "dense_1": 2_550,
                    "dense_2": 1_020}
  assert sum(counts.values()) == total
  assert jax.tree.map(lambda s: s.shape, shapes["embedding"]) == {"embeddings": (20000, 128)}
  assert set(shapes["rnn"]) == {"kernel", "recurrent_kernel", "bias"}
  text = models.summary(config, num_classes=20)
  assert f"Total params: {total:,}" in text and f"{rnn_count:,}" in text
  assert "(None, 100, 50)" in text and "(None, 20)" in text


@pytest.fixture(scope="module")
def small():
  """A small GRU model, its params and a batch of tokens."""
  config = _config("gru", embed_dim=8, hidden_size=6, dense_size=5)
  config.data.num_words = 50
  model = models.create_model(config, num_classes=4)
  tokens = jax.random.randint(jax.random.key(1), (3, 9), 0, 50)
  params = jax.jit(model.init)(jax.random.key(0), tokens)["params"]
  return model, params, tokens


def test_initialisers(small):
  _, params, _ = small
  emb = np.asarray(params["embedding"]["embeddings"])
  assert emb.min() >= -0.05 and emb.max() <= 0.05 and emb.std() > 0.02
  for name in ("dense_1", "dense_2"):
    kernel = np.asarray(params[name]["kernel"])
    assert np.abs(kernel).max() <= np.sqrt(6 / sum(kernel.shape))
    np.testing.assert_array_equal(params[name]["bias"], 0.0)


def test_probabilities_logits_and_structure(small):
  model, params, tokens = small
  probs = model.apply({"params": params}, tokens)
  logits = model.apply({"params": params}, tokens, return_logits=True)
  np.testing.assert_allclose(model.apply({"params": params}, tokens, method="logits"), logits)
  assert probs.shape == (3, 4)
  np.testing.assert_allclose(probs, jax.nn.softmax(logits), atol=1e-7)
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
  # The same composition by hand: max over every time step, then the MLP (no dropout).
  emb = params["embedding"]["embeddings"][tokens]
  seq = model.rnn.apply({"params": params["rnn"]}, emb)
  hidden = jax.nn.relu(seq.max(1) @ params["dense_1"]["kernel"] + params["dense_1"]["bias"])
  want = hidden @ params["dense_2"]["kernel"] + params["dense_2"]["bias"]
  np.testing.assert_allclose(logits, want, atol=1e-6)


def test_dropout(small):
  model, params, tokens = small
  apply = lambda seed: model.apply({"params": params}, tokens, train=True,
                                   rngs={"dropout": jax.random.key(seed)})
  assert not np.allclose(apply(0), apply(1))
  np.testing.assert_array_equal(apply(0), apply(0))
  with pytest.raises(Exception, match="dropout"):
    model.apply({"params": params}, tokens, train=True)
