"""Linear recurrences ``h_t = a_t * h_{t-1} + b_t`` over the time axis, three ways.

Arrays are batch-major, ``(B, T, ...)``, with time on axis 1, like the cells'
inputs and outputs. ``h0`` is the state before the first step (zeros when omitted).

* ``sequential``: one step at a time, with ``jax.lax.scan``; O(T) depth.
* ``parallel``: ``jax.lax.associative_scan`` over time; O(log T) depth, about twice
  the sequential form's work.
  The pairs ``(a, b)`` compose as ``(a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2)``.
* ``pallas``: a chunked Pallas kernel with a hand-written backward
  (``rnnbench.pallas_scan``): compiled on CUDA GPUs, interpreted (for tests) elsewhere; the
  same ``h`` as ``sequential`` (step by step, so no log space is needed).
* log space (Feng et al. 2024, "Were RNNs All We Needed?", appendix): for positive
  ``a`` and ``b`` the scan runs on ``(log a, log b)`` with
  ``(la1, lb1) . (la2, lb2) = (la1 + la2, logaddexp(lb1 + la2, lb2))``, so long products
  of small gates underflow to a large negative log instead of to zero.

``a``, ``b`` (and ``h0``) may be complex (the LRU's diagonal recurrence).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnnbench import scan as scan_lib


def _linear_step(h: jax.Array, ab: tuple[jax.Array, jax.Array]):
  a, b = ab
  h = a * h + b
  return h, h


def sequential_scan(a: jax.Array, b: jax.Array, h0: jax.Array | None = None,
                    unroll: int = 1) -> jax.Array:
  """Every ``h_t`` of ``h_t = a_t * h_{t-1} + b_t``, one step at a time (``lax.scan``).

  ``a``: (B, T, ...) or broadcastable to ``b``; ``b``: (B, T, ...); ``h0``: (B, ...).
  """
  dtype = jnp.result_type(a, b)
  a, b = jnp.broadcast_to(a, b.shape), b.astype(dtype)
  h0 = jnp.zeros(b[:, 0].shape, dtype) if h0 is None else jnp.asarray(h0, dtype)
  xs = (scan_lib.time_major(a), scan_lib.time_major(b))
  _, h = jax.lax.scan(_linear_step, h0, xs, unroll=int(unroll))
  return scan_lib.batch_major(h)


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
  """``sequential_scan``, ``parallel_scan`` or ``pallas_scan.linear_scan`` by ``mode``."""
  if mode == "sequential":
    return sequential_scan(a, b, h0, unroll=unroll)
  if mode == "parallel":
    return parallel_scan(a, b, h0)
  if mode == "pallas":
    from rnnbench import pallas_scan  # pylint: disable=g-import-not-at-top
    return pallas_scan.linear_scan(a, b, h0)
  raise ValueError(f"scan mode {mode!r} is not one of {scan_lib.SCAN_MODES}")


# The minGRU/minLSTM helpers of Feng et al. 2024: g keeps the candidate state positive, so
# the log-space scan applies; log_g is its log, written to stay finite (and smooth) for
# every x.


def g(x: jax.Array) -> jax.Array:
  """``x + 0.5`` for ``x >= 0``, else ``sigmoid(x)``: positive and continuous."""
  return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def log_g(x: jax.Array) -> jax.Array:
  """``log(g(x))``: ``log(x + 0.5)`` for ``x >= 0``, else ``-softplus(-x)``."""
  return jnp.where(x >= 0, jnp.log(jax.nn.relu(x) + 0.5), -jax.nn.softplus(-x))
