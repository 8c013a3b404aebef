"""LSTM and GRU recurrences as C++ kernels for XLA:CPU (``cpu_kernels.cc``, through XLA's FFI).

``fused_rnn``'s API and residuals (time-major ``xw`` (T, B, G H) = ``x W`` without bias, the
bias, the recurrent kernel ``u`` (H, G H); every ``h_t`` (T, B, H) back; the forward saves
the slabs ``fused_rnn``'s forward saves), so the backward of either follows the forward of
either. Each direction of a layer is ONE custom call for the whole sequence: the time loop
runs in C++ with ``u`` in cache, the batch rows split over XLA's intra-op threads. The weight
gradient ``H_prev^T dZ`` stays an XLA matmul over all ``T * B`` rows, as in ``fused_rnn``.

``project`` is the input projection ``x W`` of an embedding's rows, once per distinct token
(``rows_project`` in ``cpu_kernels.cc``): the cells use it for a layer that reads the
embedding directly (``ids``), where the recurrence runs here.

The library is built on first use (``rnnbench.cpu_kernels``); ``available()`` says whether
it builds here; ``impl="auto"`` runs it on CPU where it does (and ``fused_rnn`` where it does
not, with one warning), ``impl="cpu"`` insists.

What it runs: float32 only; the gate (recurrent activation) Keras 2's hard sigmoid or the
logistic sigmoid (``supports``); the LSTM and the reset_after=False GRU (the
reset_after=True GRU runs ``fused_rnn``). Its tanh and sigmoid are its own (within 2 ulp),
so results equal ``fused_rnn``'s to float32 rounding, not bit for bit
(``tests/test_cpu_rnn.py``). Reverse mode only, like ``fused_rnn``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rnnbench import activations
from rnnbench import cpu_kernels
from rnnbench import fused_rnn
from rnnbench import scan as scan_lib

Activation = Callable[[jax.Array], jax.Array]
GATES = {activations.hard_sigmoid: 0, jax.nn.sigmoid: 1}  # cpu_kernels.cc's enum Gate
available = cpu_kernels.available  # whether the kernels build here


def supports(gate: Activation, dtype) -> bool:
  """Whether the kernels compute this gate in this dtype (float32, hard / logistic sigmoid)."""
  return gate in GATES and jnp.dtype(dtype) == jnp.float32


def check(cell: str, gate: Activation, dtype) -> None:
  """A clear ``ValueError`` when ``impl="cpu"`` cannot run this cell."""
  if not supports(gate, dtype):
    raise ValueError(
        f"config.model.impl='cpu' runs float32 {cell} cells with the hard_sigmoid or "
        f"sigmoid recurrent activation, not {getattr(gate, '__name__', gate)} in "
        f"{jnp.dtype(dtype).name}; use config.model.impl='fused'")
  cpu_kernels.load()


def _call(target: str, shapes, gate: Activation, *args):
  return cpu_kernels.call(target, shapes, *args, gate=np.int32(GATES[gate]))


# ----------------------------------------------------------------------------------------
# LSTM


def _lstm_forward(gate, xw, b, u, save):
  t, batch, _ = xw.shape
  h = (t, batch, u.shape[0])
  if not save:
    return _call("rnnbench_lstm_infer", [h], gate, xw, b, u)[0]
  hs, zs, h_prev, c_prev = _call("rnnbench_lstm_fwd", [h, xw.shape, h, h], gate, xw, b, u)
  return hs, (zs, h_prev, c_prev, u)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 4))
def lstm(gate: Activation, xw: jax.Array, b: jax.Array, u: jax.Array,
         unroll: int = 1) -> jax.Array:
  """Every ``h_t`` (T, B, H) of an LSTM from zero state (``fused_rnn.lstm``'s API; ``unroll``
  is ignored)."""
  del unroll
  return _lstm_forward(gate, xw, b, u, save=False)


def lstm_fwd(gate, xw, b, u, unroll):
  """``fused_rnn._lstm_fwd``: ``(hs, (zs, h_prev, c_prev, u))``."""
  del unroll
  return _lstm_forward(gate, xw, b, u, save=True)


def lstm_bwd(gate, unroll, res, dhs):
  """``fused_rnn._lstm_bwd``: the gradients of ``xw``, ``b`` and ``u``."""
  del unroll
  zs, h_prev, c_prev, u = res
  (dzs,) = _call("rnnbench_lstm_bwd", [zs.shape], gate, dhs, zs, c_prev, u)
  return dzs, fused_rnn._bias_grad(dzs), fused_rnn._weight_grad(h_prev, dzs)


lstm.defvjp(lstm_fwd, lstm_bwd)


# ----------------------------------------------------------------------------------------
# GRU, reset_after=False


def _gru_forward(gate, xw, b, u, save):
  t, batch, _ = xw.shape
  units = u.shape[0]
  h = (t, batch, units)
  if not save:
    return _call("rnnbench_gru_infer", [h], gate, xw, b, u)[0]
  hs, s_zr, s_h, h_prev = _call("rnnbench_gru_fwd", [h, (t, batch, 2 * units), h, h], gate,
                                xw, b, u)
  return hs, (s_zr, s_h, h_prev, u)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 4))
def gru(gate: Activation, xw: jax.Array, b: jax.Array, u: jax.Array,
        unroll: int = 1) -> jax.Array:
  """Every ``h_t`` (T, B, H) of a reset_after=False GRU from zero state
  (``fused_rnn.gru``'s API; ``unroll`` is ignored)."""
  del unroll
  return _gru_forward(gate, xw, b, u, save=False)


def gru_fwd(gate, xw, b, u, unroll):
  """``fused_rnn._gru_fwd``: ``(hs, (s_zr, s_h, h_prev, u))``."""
  del unroll
  return _gru_forward(gate, xw, b, u, save=True)


def gru_bwd(gate, unroll, res, dhs):
  """``fused_rnn._gru_bwd``: the gradients of ``xw``, ``b`` and ``u``."""
  del unroll
  s_zr, s_h, h_prev, u = res
  ds_zr, ds_h = _call("rnnbench_gru_bwd", [s_zr.shape, s_h.shape], gate, dhs, s_zr, s_h,
                      h_prev, u)
  dxw = jnp.concatenate([ds_zr, ds_h], axis=-1)
  r_h = fused_rnn._gru_reset(gate, jnp.split(s_zr, 2, axis=-1)[1], h_prev)
  du = jnp.concatenate([fused_rnn._weight_grad(h_prev, ds_zr),
                        fused_rnn._weight_grad(r_h, ds_h)], axis=-1)
  return dxw, fused_rnn._bias_grad(dxw), du


gru.defvjp(gru_fwd, gru_bwd)


# ----------------------------------------------------------------------------------------
# The input projection of an embedding's rows, once per distinct id


def _project_kernel(x, ids, w):
  t, b = ids.shape[1], ids.shape[0]
  return cpu_kernels.call("rnnbench_rows_project", [(t, b, w.shape[1])], x,
                          ids.astype(jnp.int32), w)[0]


def _project_xla(x, ids, w):
  del ids
  return scan_lib.time_major(x) @ w


def _project_bwd_kernel(x, ids, w, dxw):
  return tuple(cpu_kernels.call("rnnbench_rows_project_bwd", [x.shape, w.shape], x,
                                ids.astype(jnp.int32), w, dxw))


def _project_bwd_xla(x, ids, w, dxw):
  del ids
  return scan_lib.batch_major(dxw @ w.T), fused_rnn._weight_grad(scan_lib.time_major(x), dxw)


@jax.custom_vjp
def project(x: jax.Array, ids: jax.Array, w: jax.Array) -> jax.Array:
  """``time_major(x) @ w`` (T, B, G) for ``x`` (B, T, D) whose rows are a function of
  ``ids`` (B, T): an embedding's output, equal ids giving equal rows (the caller's promise;
  nothing checks it). Lowered for cpu, one C++ call projects each distinct id's row once
  (a batch of the notebook's has about 1,200 distinct ids in 3,200 positions) and copies
  it to the id's positions; elsewhere (a CUDA export made here) the XLA matmul.

  The backward is exact for ``w`` and for whatever gathered ``x``'s rows: ``x``'s gradient
  comes summed per id, at the id's first (time-major) position, zeros at its others, so
  its sum over each id's positions (what an embedding's backward, or
  ``rnnbench.embedding_adam``, takes) is the true one, though single rows are not.
  """
  return jax.lax.platform_dependent(x, ids, w, cpu=_project_kernel, default=_project_xla)


def _project_fwd(x, ids, w):
  return project(x, ids, w), (x, ids, w)


def _project_bwd(res, dxw):
  x, ids, w = res
  dx, dw = jax.lax.platform_dependent(*res, dxw, cpu=_project_bwd_kernel,
                                      default=_project_bwd_xla)
  return dx, np.zeros(ids.shape, jax.dtypes.float0), dw


project.defvjp(_project_fwd, _project_bwd)


# ----------------------------------------------------------------------------------------
# The max over time of the outputs (the notebook's GlobalMaxPool1D)


def _max_kernel(hs):
  return tuple(cpu_kernels.call("rnnbench_max_over_time", [hs.shape[1:]] * 2, hs))


def _max_xla(hs):
  m = jnp.max(hs, axis=0)
  return m, jnp.sum(hs == m, axis=0, dtype=hs.dtype)


def _max_bwd_kernel(hs, m, count, ct):
  return cpu_kernels.call("rnnbench_max_over_time_bwd", [hs.shape], hs, m, count, ct)[0]


def _max_bwd_xla(hs, m, count, ct):
  return jnp.where(hs == m, ct / count, 0.0).astype(hs.dtype)


def _max_and_count(hs):
  return jax.lax.platform_dependent(hs, cpu=_max_kernel, default=_max_xla)


@jax.custom_vjp
def _max_over_time(hs: jax.Array) -> jax.Array:
  return _max_and_count(hs)[0]


def _max_over_time_fwd(hs):
  m, count = _max_and_count(hs)
  return m, (hs, m, count)


def _max_over_time_bwd(res, ct):
  return (jax.lax.platform_dependent(*res, ct, cpu=_max_bwd_kernel, default=_max_bwd_xla),)


_max_over_time.defvjp(_max_over_time_fwd, _max_over_time_bwd)


def max_pool(x: jax.Array) -> jax.Array:
  """``jnp.max(x, axis=1)`` (B, F) of ``x`` (B, T, F), with its gradient (split among ties, as
  autodiff's). Where the kernels run (a CPU host with one device, float32; lowered for cpu)
  one C++ call reads the time-major array the recurrences write: the cell's transpose to
  (B, T, F) and this one's back cancel, so nothing is copied (XLA transposes, reduces, and for
  the gradient compares, counts and transposes back); elsewhere ``jnp.max``."""
  if not (x.dtype == jnp.float32 and cpu_kernels.runs_here()):
    return jnp.max(x, axis=1)
  return _max_over_time(scan_lib.time_major(x))
