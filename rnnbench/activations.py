"""Element-wise activations by name, with Keras 2's hard sigmoid."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]


@jax.custom_jvp
def hard_sigmoid(x: jax.Array) -> jax.Array:
  """Keras 2's hard sigmoid: clip(0.2 x + 0.5, 0, 1) (not Keras 3's relu6(x + 3) / 6).

  Its derivative is autodiff's of ``jnp.clip`` bit for bit: 0.2 inside, 0 outside and half
  of 0.2 exactly on a corner (``jnp.clip``'s min / max split ties evenly), but written with
  selects instead of ``jnp.clip``'s divides, so XLA fuses it freely into loop bodies.
  """
  return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


@hard_sigmoid.defjvp
def _hard_sigmoid_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  s = 0.2 * x + 0.5
  slope = jnp.where((s > 0) & (s < 1), 1.0, jnp.where((s == 0) | (s == 1), 0.5, 0.0))
  return jnp.clip(s, 0.0, 1.0), 0.2 * (t * slope.astype(t.dtype))


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
