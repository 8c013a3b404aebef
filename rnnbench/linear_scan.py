"""Linear recurrences ``h_t = a_t * h_{t-1} + b_t`` over the time axis, two ways.

Arrays are batch-major, ``(batch, time, ...)``, with time on axis 1, like the cells'
inputs and outputs. ``h0`` is the state before the first step (zeros when omitted).

* ``sequential``: one step at a time, with Flax's ``nn.scan`` (``rnnbench.scan.run``);
  O(T) depth.
* ``parallel``: ``jax.lax.associative_scan`` over time; O(log T) depth, about twice
  the sequential form's work.
  The pairs ``(a, b)`` compose as ``(a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2)``.
* log space (Feng et al. 2024, "Were RNNs All We Needed?", appendix): for positive
  ``a`` and ``b`` the scan runs on ``(log a, log b)`` with
  ``(la1, lb1) . (la2, lb2) = (la1 + la2, logaddexp(lb1 + la2, lb2))``, so long products
  of small gates underflow to a large negative log instead of to zero.

``a``, ``b`` (and ``h0``) may be complex (the LRU's diagonal recurrence).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import flax.linen as nn

from rnnbench import scan as scan_lib

SCAN_MODES = ("sequential", "parallel")


def check_scan_mode(cell_name: str, scan: str, supports_parallel: bool) -> None:
  """Raises a clear ``ValueError`` for an unknown mode, or 'parallel' on a sequential cell."""
  if scan not in SCAN_MODES:
    raise ValueError(
        f"config.model.scan={scan!r} is not a scan mode; use one of {SCAN_MODES}")
  if scan == "parallel" and not supports_parallel:
    raise ValueError(
        f"cell {cell_name!r} has a nonlinear recurrence and runs only with "
        "config.model.scan='sequential'; 'parallel' (jax.lax.associative_scan) needs a "
        "recurrence that is linear in the state, e.g. mingru, minlstm, lru, qrnn")


def _linear_step(h: jax.Array, ab: tuple[jax.Array, jax.Array]):
  a, b = ab
  h = a * h + b
  return h, h


class _SequentialScan(nn.Module):
  """Hosts ``scan.run`` (Flax's ``nn.scan``) for the param-free linear step."""
  unroll: int = 1

  @nn.compact
  def __call__(self, a: jax.Array, b: jax.Array, h0: jax.Array) -> jax.Array:
    _, h = scan_lib.run(self, _linear_step, h0, (a, b), unroll=self.unroll)
    return h


def sequential_scan(a: jax.Array, b: jax.Array, h0: jax.Array | None = None,
                    unroll: int = 1) -> jax.Array:
  """Every ``h_t`` of ``h_t = a_t * h_{t-1} + b_t``, one step at a time (``nn.scan``)."""
  dtype = jnp.result_type(a, b)
  a, b = jnp.broadcast_to(a, b.shape), b.astype(dtype)
  h0 = jnp.zeros(b[:, 0].shape, dtype) if h0 is None else jnp.asarray(h0, dtype)
  return _SequentialScan(unroll=unroll, parent=None).apply({}, a, b, h0)


def _combine(left, right):
  a1, b1 = left
  a2, b2 = right
  return a1 * a2, a2 * b1 + b2


def parallel_scan(a: jax.Array, b: jax.Array, h0: jax.Array | None = None) -> jax.Array:
  """Every ``h_t`` of ``h_t = a_t * h_{t-1} + b_t``, by ``jax.lax.associative_scan``."""
  dtype = jnp.result_type(a, b)
  a, b = jnp.broadcast_to(a, b.shape).astype(dtype), b.astype(dtype)
  if h0 is not None:
    b = b.at[:, 0].add(a[:, 0] * jnp.asarray(h0, b.dtype))
  _, h = jax.lax.associative_scan(_combine, (a, b), axis=1)
  return h


def _log_combine(left, right):
  la1, lb1 = left
  la2, lb2 = right
  return la1 + la2, jnp.logaddexp(lb1 + la2, lb2)


def log_parallel_scan(log_a: jax.Array, log_b: jax.Array,
                      log_h0: jax.Array | None = None) -> jax.Array:
  """``log h_t`` for positive ``a``, ``b``: the recurrence run in log space, in parallel.

  ``log_h0`` (omitted: ``h0 = 0``) is folded into the first step.
  """
  log_a = jnp.broadcast_to(log_a, log_b.shape)
  if log_h0 is not None:
    log_b = log_b.at[:, 0].set(jnp.logaddexp(log_b[:, 0], log_a[:, 0] + log_h0))
  _, log_h = jax.lax.associative_scan(_log_combine, (log_a, log_b), axis=1)
  return log_h


def linear_scan(a: jax.Array, b: jax.Array, h0: jax.Array | None = None,
                mode: str = "sequential", unroll: int = 1) -> jax.Array:
  """``sequential_scan`` or ``parallel_scan`` by ``mode``."""
  if mode == "sequential":
    return sequential_scan(a, b, h0, unroll=unroll)
  if mode == "parallel":
    return parallel_scan(a, b, h0)
  raise ValueError(f"scan mode {mode!r} is not one of {SCAN_MODES}")


# The minGRU/minLSTM helpers of Feng et al. 2024: g keeps the candidate state positive, so
# the log-space scan applies; log_g is its log, written to stay finite (and smooth) for
# every x.


def g(x: jax.Array) -> jax.Array:
  """``x + 0.5`` for ``x >= 0``, else ``sigmoid(x)``: positive and continuous."""
  return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_g(x: jax.Array) -> jax.Array:
  """``log(g(x))``: ``log(x + 0.5)`` for ``x >= 0``, else ``-softplus(-x)``."""
  return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))
