"""Element-wise activations by name, with Keras 2's hard sigmoid."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]


def hard_sigmoid(x: jax.Array) -> jax.Array:
  """Keras 2's hard sigmoid: clip(0.2 x + 0.5, 0, 1) (not Keras 3's relu6(x + 3) / 6)."""
  return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


def linear(x: jax.Array) -> jax.Array:
  """The identity."""
  return x


_ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": hard_sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "linear": linear,
}


def names() -> list[str]:
  """The known activation names, sorted."""
  return sorted(_ACTIVATIONS)


def get_activation(name: str) -> Activation:
  """The activation called ``name``: sigmoid, hard_sigmoid (Keras 2), tanh, relu, linear."""
  try:
    return _ACTIVATIONS[name]
  except KeyError:
    raise ValueError(
        f"unknown activation {name!r}; known: {', '.join(names())}") from None
