"""Sequence-scan helpers for recurrent cells, kept apart from the cell math.

Every helper scans over the TIME axis (axis 1 of batch-major ``(B, T, ...)`` arrays) with
Flax's lifted ``nn.scan`` (``variable_broadcast='params'``, ``split_rngs={'params': False}``),
so parameters are created once and shared by every step. Two ways to use it:

* ``run(module, step_fn, carry, xs, consts=...)``: a pure step function
  ``step_fn(carry, x_t, *consts) -> (carry, y_t)``; params declared by the calling module
  (flat param tree, e.g. ``{'kernel', 'recurrent_kernel', 'bias'}``) are passed in ``consts``
  and fed whole to every step.
* ``recurrence(step_cls, carry, xs, **fields)``: a step *module*
  ``step_cls(**fields)(carry, x_t) -> (carry, y_t)`` that declares its own params; they
  live under the submodule ``name`` (default ``'step'``) of the calling module.

Example (inside an ``@nn.compact`` ``__call__``)::

    u = self.param("recurrent_kernel", init, (h, h))
    step = lambda h_prev, x_t, u: (jnp.tanh(x_t + h_prev @ u),) * 2
    _, ys = scan.run(self, step, jnp.zeros((b, h)), x @ w, consts=(u,), unroll=self.unroll)

``get_activation`` (from ``rnnbench.activations``) is re-exported here for cells.

LSTM and GRU run their recurrence either here (``impl="nn_scan"``) or in the custom-VJP
kernels of ``rnnbench.fused_rnn`` (``impl="fused"``), which work time-major: ``time_major``
and ``batch_major`` convert, ``check_impl`` and ``resolve_unroll`` read the cell options.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnnbench.activations import get_activation, hard_sigmoid  # re-exported for cells

__all__ = ["TIME_AXIS", "IMPLS", "run", "recurrence", "get_activation", "hard_sigmoid",
           "check_impl", "resolve_unroll", "time_major", "batch_major"]

TIME_AXIS = 1  # inputs and outputs are batch-major: (batch, time, features)
IMPLS = ("fused", "nn_scan")  # LSTM / GRU recurrence: rnnbench.fused_rnn, or nn.scan here
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


def recurrence(step_cls: type[nn.Module], carry: Any, xs: Any, *, unroll: int = 1,
               reverse: bool = False, name: str | None = "step",
               **fields: Any) -> tuple[Any, Any]:
  """Scans the step module ``step_cls(**fields)`` over axis 1 of ``xs``.

  Must be called inside a compact method; the step's params are created once (from the
  first step's shapes) under the submodule ``name`` and broadcast to every step.
  ``step_cls.__call__(carry, x_t) -> (carry, y_t)``. Returns ``(final_carry, ys)``.
  """
  scanned_cls = nn.scan(step_cls, in_axes=TIME_AXIS, **_scan_kwargs(unroll, reverse))
  return scanned_cls(name=name, **fields)(carry, xs)


def check_impl(cell_name: str, impl: str) -> str:
  """``impl`` if it is one of ``IMPLS``, else a clear ``ValueError``."""
  if impl not in IMPLS:
    raise ValueError(f"config.model.impl={impl!r} is not an implementation of {cell_name!r}; "
                     f"use one of {IMPLS}")
  return impl


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


def time_major(x: jax.Array) -> jax.Array:
  """(B, T, ...) -> (T, B, ...)."""
  return jnp.swapaxes(x, 0, 1)


def batch_major(x: jax.Array) -> jax.Array:
  """(T, B, ...) -> (B, T, ...)."""
  return jnp.swapaxes(x, 0, 1)
