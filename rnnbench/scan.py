"""What the recurrent cells share, kept apart from the cell math: the time scan, the checks
of their options (``impl``, ``scan``, ``unroll``) and their initialisers.

Shapes follow the legend of ``rnnbench.cells`` (B batch, T time, D input features, H hidden
units). The scan scans over the TIME axis (axis 1 of batch-major ``(B, T, ...)`` arrays) with
Flax's lifted ``nn.scan`` (``variable_broadcast='params'``, ``split_rngs={'params': False}``),
so parameters are created once and shared by every step:

* ``run(module, step_fn, carry, xs, consts=...)``: a pure step function
  ``step_fn(carry, x_t, *consts) -> (carry, y_t)``; params declared by the calling module
  (flat param tree, e.g. ``{'kernel', 'recurrent_kernel', 'bias'}``) are passed in ``consts``
  and fed whole to every step.

Example (inside an ``@nn.compact`` ``__call__``)::

    u = self.param("recurrent_kernel", init, (h, h))
    step = lambda h_prev, x_t, u: (jnp.tanh(x_t + h_prev @ u),) * 2
    _, ys = scan.run(self, step, jnp.zeros((b, h)), x @ w, consts=(u,), unroll=self.unroll)

LSTM and GRU run their recurrence either here (``impl="nn_scan"``), in the custom-VJP
kernels of ``rnnbench.fused_rnn`` (``impl="fused"``) or in the Pallas kernels of
``rnnbench.pallas_rnn`` (``impl="pallas"``; ``"auto"``: Pallas on GPU, fused elsewhere),
which work time-major: ``time_major`` and ``batch_major`` convert. The cells with a linear
recurrence run it with ``rnnbench.linear_scan`` (``scan="sequential"`` or ``"parallel"``).
``check_impl``, ``check_scan_mode`` and ``resolve_unroll`` read the cell options
(``rnnbench.pallas_rnn.resolve_impl`` says which LSTM / GRU implementation runs); ``uniform`` is the
``U(minval, maxval)`` initialiser (Keras' RandomUniform; PyTorch's ``nn.Linear`` init with
``-minval = maxval = 1/sqrt(fan_in)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

TIME_AXIS = 1  # inputs and outputs are batch-major: (B, T, ...)
# LSTM / GRU recurrence: rnnbench.fused_rnn, nn.scan here, rnnbench.pallas_rnn, or "auto"
# (pallas where it compiles and fits on chip, else fused: ``pallas_rnn.resolve_impl``).
IMPLS = ("fused", "nn_scan", "pallas", "cpu", "auto")
# rnnbench.linear_scan: lax.scan, associative_scan, or rnnbench.pallas_scan's kernel
SCAN_MODES = ("sequential", "parallel", "pallas")
# unroll="auto": the scan unroll measured fastest per backend (benchmarks/speed_leads.py);
# 1 where not measured.
AUTO_UNROLL = {"cpu": 1}

StepFn = Callable[..., tuple[Any, Any]]


def _scan_kwargs(unroll: int, reverse: bool) -> dict[str, Any]:
  return dict(variable_broadcast="params", split_rngs={"params": False},
              out_axes=TIME_AXIS, unroll=int(unroll), reverse=reverse)


def run(module: nn.Module, step_fn: StepFn, carry: Any, xs: Any, *,
        consts: Sequence[Any] = (), unroll: int = 1,
        reverse: bool = False) -> tuple[Any, Any]:
  """Scans ``step_fn(carry, x_t, *consts) -> (carry, y_t)`` over axis 1 of ``xs``.

  Args:
    module: the calling (bound) module; the scan is lifted through its scope.
    step_fn: pure step function; must not create params (pass them in ``consts``).
    carry: initial carry pytree (e.g. zeros of shape (B, H)).
    xs: pytree of (B, T, ...) arrays, sliced along time.
    consts: arrays (e.g. params) given whole to every step.
    unroll: time steps unrolled per loop iteration (``jax.lax.scan``'s ``unroll``).
    reverse: scan from the last step to the first (outputs stay in input order).

  Returns:
    ``(final_carry, ys)`` with ``ys`` stacked on axis 1: (B, T, ...).
  """
  def body(_, c, x, cs):
    return step_fn(c, x, *cs)

  scanned = nn.scan(body, in_axes=(TIME_AXIS, nn.broadcast),
                    **_scan_kwargs(unroll, reverse))
  return scanned(module, carry, xs, tuple(consts))


def check_impl(cell_name: str, impl: str) -> str:
  """``impl`` if it is one of ``IMPLS``, else a clear ``ValueError``."""
  if impl not in IMPLS:
    raise ValueError(f"config.model.impl={impl!r} is not an implementation of {cell_name!r}; "
                     f"use one of {IMPLS}")
  return impl


def check_scan_mode(cell_name: str, scan: str, supports_parallel: bool) -> None:
  """Raises a clear ``ValueError`` for an unknown mode, or 'parallel'/'pallas' on a sequential
  cell."""
  if scan not in SCAN_MODES:
    raise ValueError(
        f"config.model.scan={scan!r} is not a scan mode; use one of {SCAN_MODES}")
  if scan != "sequential" and not supports_parallel:
    raise ValueError(
        f"cell {cell_name!r} has a nonlinear recurrence and runs only with "
        f"config.model.scan='sequential'; {scan!r} needs a recurrence that is linear in "
        "the state, e.g. mingru, minlstm, lru, qrnn")


def resolve_unroll(unroll: int | str) -> int:
  """``unroll`` as a positive int; ``"auto"`` is ``AUTO_UNROLL`` for the default backend."""
  if unroll == "auto":
    return AUTO_UNROLL.get(jax.default_backend(), 1)
  try:
    value = int(unroll)
  except (TypeError, ValueError):
    value = 0
  if value < 1 or value != unroll:
    raise ValueError(f"config.model.unroll must be a positive int or 'auto', got {unroll!r}")
  return value


def uniform(minval: float, maxval: float) -> nn.initializers.Initializer:
  """``U(minval, maxval)``: Keras' RandomUniform(minval, maxval)."""

  def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    return jax.random.uniform(key, shape, dtype, minval, maxval)

  return init


def time_major(x: jax.Array) -> jax.Array:
  """(B, T, ...) -> (T, B, ...)."""
  return jnp.swapaxes(x, 0, 1)


def batch_major(x: jax.Array) -> jax.Array:
  """(T, B, ...) -> (B, T, ...)."""
  return jnp.swapaxes(x, 0, 1)
