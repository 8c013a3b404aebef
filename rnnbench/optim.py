"""Keras' Adam as an optax transformation, and the classification losses.

Keras' Adam (Keras 2 on TF1, and Keras 3) folds the bias correction into the step size and
adds epsilon to sqrt(v), not to sqrt(v_hat)::

    lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    p -= lr_t * m / (sqrt(v) + eps)

optax.adam instead divides by sqrt(v_hat) + eps, so the two differ while sqrt(v) ~ eps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


class KerasAdamState(NamedTuple):
  """Step count and the first and second moments."""
  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates


def keras_adam_lr_t(lr: jax.Array | float, count: jax.Array, beta_1: float,
                    beta_2: float) -> jax.Array:
  """Keras' bias-corrected step size at update ``count`` (1 for the first)."""
  t = count.astype(jnp.float32)
  return lr * jnp.sqrt(1.0 - jnp.power(jnp.float32(beta_2), t)) / (
      1.0 - jnp.power(jnp.float32(beta_1), t))


def keras_adam(learning_rate: optax.ScalarOrSchedule = 1e-3, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-7) -> optax.GradientTransformation:
  """Adam exactly as ``keras.optimizers.Adam`` applies it (updates to add to the params).

  Its update function carries the hyperparameters (``keras_adam_hyperparams``), for the
  train step's one-pass update of the embedding table (``rnnbench.embedding_adam``).
  """

  def init_fn(params: optax.Params) -> KerasAdamState:
    zeros = lambda p: jnp.zeros_like(p)
    return KerasAdamState(count=jnp.zeros([], jnp.int32), mu=jax.tree.map(zeros, params),
                          nu=jax.tree.map(zeros, params))

  def update_fn(updates: optax.Updates, state: KerasAdamState,
                params: optax.Params | None = None) -> tuple[optax.Updates, KerasAdamState]:
    del params
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    count = state.count + 1
    lr_t = keras_adam_lr_t(lr, count, beta_1, beta_2)
    mu = jax.tree.map(lambda m, g: beta_1 * m + (1.0 - beta_1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: beta_2 * v + (1.0 - beta_2) * jnp.square(g),
                      state.nu, updates)
    updates = jax.tree.map(
        lambda m, v: (-lr_t * m / (jnp.sqrt(v) + epsilon)).astype(m.dtype), mu, nu)
    return updates, KerasAdamState(count=count, mu=mu, nu=nu)

  update_fn.keras_adam = KerasAdamHyperparams(learning_rate, beta_1, beta_2, epsilon)
  return optax.GradientTransformation(init_fn, update_fn)


class KerasAdamHyperparams(NamedTuple):
  learning_rate: optax.ScalarOrSchedule
  beta_1: float
  beta_2: float
  epsilon: float


def keras_adam_hyperparams(tx: optax.GradientTransformation) -> KerasAdamHyperparams | None:
  """The hyperparameters of a ``keras_adam`` (not wrapped in a chain), else None."""
  return getattr(tx.update, "keras_adam", None)


_OPTIMIZERS = {"keras_adam": keras_adam, "adam": optax.adam}
SCHEDULES = ("constant", "warmup_cosine")


def make_schedule(train_config: Mapping[str, Any],
                  total_steps: int = 0) -> optax.ScalarOrSchedule:
  """``train.schedule``: 'constant' (``learning_rate``, the notebook's) or 'warmup_cosine'.

  'warmup_cosine' rises linearly from 0 to ``learning_rate`` over ``warmup_steps``, then
  follows a cosine down to ``learning_rate * final_lr_fraction`` at ``decay_steps`` (0: the
  run's ``total_steps``; if that is 0 too, ``warmup_steps + 1``), through
  ``optax.warmup_cosine_decay_schedule``.
  """
  name = train_config.get("schedule", "constant")
  lr = train_config["learning_rate"]
  if name == "constant":
    return lr
  if name != "warmup_cosine":
    raise ValueError(f"unknown train.schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
  warmup = int(train_config.get("warmup_steps", 0))
  decay = int(train_config.get("decay_steps", 0))
  if warmup < 0 or decay < 0:
    raise ValueError(f"train.schedule='warmup_cosine' needs warmup_steps >= 0 and decay_steps "
                     f">= 0 (0: the run's steps), got {warmup} and {decay}")
  # With no run length known (the benchmark, a standalone optimizer): warm-up, then decay.
  decay = decay or int(total_steps) or warmup + 1
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=lr, warmup_steps=min(warmup, decay - 1),
      decay_steps=decay, end_value=lr * float(train_config.get("final_lr_fraction", 0.0)))


def make_optimizer(train_config: Mapping[str, Any],
                   total_steps: int = 0) -> optax.GradientTransformation:
  """``train.optimizer`` ('keras_adam' or 'adam') on ``make_schedule``'s learning rate.

  With ``train.grad_clip > 0`` the gradients are first clipped to that global norm
  (``optax.clip_by_global_norm``); 0, the default, applies the optimizer alone (the notebook's).
  """
  name = train_config["optimizer"]
  if name not in _OPTIMIZERS:
    raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(_OPTIMIZERS)}")
  tx = _OPTIMIZERS[name](learning_rate=make_schedule(train_config, total_steps))
  clip = float(train_config.get("grad_clip", 0.0))
  if clip < 0:
    raise ValueError(f"train.grad_clip must be >= 0 (0: off), got {clip}")
  return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx


KERAS_EPSILON = 1e-7  # keras.backend.epsilon()


def keras_categorical_crossentropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Keras' categorical cross-entropy on softmax(logits) for int labels, per example.

  As Keras computes it on probabilities: normalised by their sum, clipped to
  [1e-7, 1 - 1e-7], then -log p[label].
  """
  probs = jax.nn.softmax(logits)
  probs = probs / jnp.sum(probs, axis=-1, keepdims=True)
  probs = jnp.clip(probs, KERAS_EPSILON, 1.0 - KERAS_EPSILON)
  return -jnp.take_along_axis(jnp.log(probs), labels[..., None], axis=-1)[..., 0]


def log_softmax_crossentropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Numerically stable cross-entropy -log_softmax(logits)[label], per example."""
  return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], axis=-1)[..., 0]


_LOSSES: dict[str, LossFn] = {"keras": keras_categorical_crossentropy,
                              "log_softmax": log_softmax_crossentropy}


def make_loss(name: str) -> LossFn:
  """``train.loss``: 'keras' (clipped, on probabilities) or 'log_softmax' (stable)."""
  if name not in _LOSSES:
    raise ValueError(f"unknown loss {name!r}; choose one of {sorted(_LOSSES)}")
  return _LOSSES[name]


def batch_loss(losses: jax.Array, weights: jax.Array) -> jax.Array:
  """The batch's loss: per-example ``losses`` (B,) averaged with ``weights`` (B,), so a
  batch padded with weight-0 rows has the loss of its real rows (0 for an empty batch)."""
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1.0)


COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def mixed_precision(apply_fn: Callable[..., jax.Array], dtype: str) -> Callable[..., jax.Array]:
  """``apply_fn`` computing in ``dtype`` on float32 params (``train.dtype``).

  The params are cast to ``dtype`` inside the step (the float32 ones stay the optimizer's master
  copy, and their gradients are float32); the outputs are cast back to float32 for the loss.
  """
  if dtype not in COMPUTE_DTYPES:
    raise ValueError(f"unknown train.dtype {dtype!r}; choose one of {COMPUTE_DTYPES}")
  if dtype == "float32":
    return apply_fn
  compute = jnp.dtype(dtype)

  def apply(variables, *args, **kwargs):
    cast = jax.tree.map(
        lambda p: p.astype(compute) if jnp.issubdtype(p.dtype, jnp.floating) else p, variables)
    return apply_fn(cast, *args, **kwargs).astype(jnp.float32)

  apply.compute_dtype = dtype
  return apply
