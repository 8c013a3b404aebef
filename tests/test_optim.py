"""Keras' Adam against keras.optimizers.Adam, and the two cross-entropies."""

import os

os.environ["KERAS_BACKEND"] = "jax"

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp
import keras
import ml_collections
import numpy as np
import optax
import pytest

from rnnbench import optim

if keras.backend.backend() != "jax":
  pytest.skip("keras was imported with another backend", allow_module_level=True)

STEPS = 12


def _gradients():
  """Per step gradients for two params; tiny ones where eps placement matters."""
  rng = np.random.RandomState(0)
  grads = []
  for step in range(STEPS):
    scale = 1e-6 if step % 3 == 0 else 1.0
    grads.append({"w": (scale * rng.randn(3, 4)).astype(np.float32),
                  "b": (1e-7 * rng.randn(4)).astype(np.float32)})
  return grads


def _run_optax(tx, params, grads):
  state = tx.init(params)
  for g in grads:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params


def test_keras_adam_matches_keras():
  rng = np.random.RandomState(1)
  init = {"w": rng.randn(3, 4).astype(np.float32), "b": rng.randn(4).astype(np.float32)}
  grads = _gradients()
  variables = {k: keras.Variable(v) for k, v in init.items()}
  opt = keras.optimizers.Adam(learning_rate=1e-3)
  for g in grads:
    opt.apply_gradients([(jnp.asarray(g[k]), variables[k]) for k in ("w", "b")])
  want = {k: np.asarray(v.value) for k, v in variables.items()}
  got = _run_optax(optim.keras_adam(), init, grads)
  for k in want:
    assert np.abs(np.asarray(got[k]) - want[k]).max() <= 1e-6
  # optax.adam puts eps on sqrt(v_hat): measurably different on these gradients.
  plain = _run_optax(optax.adam(1e-3, eps=1e-7), init, grads)
  assert np.abs(np.asarray(plain["b"]) - want["b"]).max() > 1e-5


def test_keras_adam_jit_and_inject_hyperparams():
  params = {"w": jnp.ones((2, 2))}
  grads = {"w": jnp.full((2, 2), 0.5)}
  tx = optax.inject_hyperparams(optim.keras_adam)(learning_rate=1e-3)
  state = tx.init(params)
  updates, state = jax.jit(tx.update)(grads, state, params)
  # Step 1: lr * sqrt(1 - b2) / (1 - b1) * 0.1 g / (sqrt(0.001) |g| + eps) ~= lr.
  np.testing.assert_allclose(updates["w"], -1e-3, rtol=1e-4)
  schedule = optim.keras_adam(learning_rate=lambda count: 1e-3 / (1 + count))
  assert schedule.update(grads, schedule.init(params))[0]["w"].shape == (2, 2)


def test_make_optimizer():
  config = ml_collections.ConfigDict({"optimizer": "keras_adam", "learning_rate": 1e-3})
  assert isinstance(optim.make_optimizer(config), optax.GradientTransformation)
  config.optimizer = "adam"
  assert isinstance(optim.make_optimizer(config), optax.GradientTransformation)
  config.optimizer = "sgd"
  with pytest.raises(ValueError, match="keras_adam"):
    optim.make_optimizer(config)


def _logits(scale):
  return scale * jax.random.normal(jax.random.key(0), (16, 20))


def test_losses_agree_away_from_clip():
  logits, labels = _logits(2.0), jnp.arange(16) % 20
  np.testing.assert_allclose(optim.make_loss("keras")(logits, labels),
                             optim.make_loss("log_softmax")(logits, labels), rtol=1e-5)


def test_keras_loss_matches_keras_including_clip():
  labels = jnp.arange(16) % 20
  for scale in (2.0, 60.0):  # 60: many probabilities below 1e-7, so the clip bites
    logits = _logits(scale)
    want = keras.losses.categorical_crossentropy(jax.nn.one_hot(labels, 20),
                                                 jax.nn.softmax(logits))
    got = optim.keras_categorical_crossentropy(logits, labels)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  assert float(got.max()) == pytest.approx(-np.log(1e-7), rel=1e-5)
  assert float(optim.log_softmax_crossentropy(logits, labels).max()) > 50


def test_make_loss_unknown():
  with pytest.raises(ValueError, match="log_softmax"):
    optim.make_loss("hinge")


def test_batch_loss_ignores_weight_0_rows():
  losses = jnp.array([1.0, 3.0, 100.0])
  assert float(optim.batch_loss(losses, jnp.array([1.0, 1.0, 0.0]))) == 2.0
  assert float(optim.batch_loss(losses, jnp.zeros(3))) == 0.0
