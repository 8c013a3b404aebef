"""LSTM and GRU recurrences as pure-JAX kernels with a hand-written backward (custom VJP).

The cells (``rnnbench.cells.lstm`` / ``gru``, ``impl="fused"``) compute the input projection
``x W`` for every step at once and call a kernel here for the recurrence. A kernel is a plain
``jax.lax`` loop (no Flax) over TIME-MAJOR arrays ``(T, B, ...)``. Its forward is the cell's
``nn.scan`` recurrence op for op (``(x W + b) + h U``, then the same gate math), and its
gradients equal autodiff's up to float32 rounding (tests hold them to 1e-5). The backward is
shaped like cuDNN's:

* the forward loop saves three or four slabs per step (the output h, the pre-activations
  or recurrent matmul outputs, and the state each step started from), not every
  intermediate;
* the backward loop carries only the state gradients; per step it runs ``jax.vjp`` of the
  cell's element-wise math (so derivatives, clip ties and op order are autodiff's own)
  and the one matmul ``dz @ U^T`` (two for the reset_after=False GRU);
* the weight gradient is ONE large matmul after the loop, ``H_prev^T @ dZ`` over all
  ``T * B`` rows, instead of ``T`` small ones accumulated inside the loop; the gradient of
  ``x W`` is the stacked ``dZ``, the biases' its sums.

What makes it fast on CPU (each measured with benchmarks/speed_leads.py; docs/speed.md):

* No per-step weight-gradient matmul and accumulation inside the backward loop, and three
  or four saved slabs per step instead of autodiff's up to a dozen.
* XLA's CPU code for an element-wise op that reads the step's slice ``xs[t]`` of a stacked
  array is scalar (the dynamic index is reloaded for every element), several times slower
  than the same op on a plain buffer. ``_loop`` fetches the next step's slices into the
  carry one iteration ahead (a few small copies), so every element-wise op of a step reads
  plain buffers and is vectorized.
* The cotangent of a ``jnp.split`` is pads and adds that XLA compiles to a slow fusion; the
  element-wise functions here take their gate blocks as separate arguments and the
  gradients are joined with one ``jnp.concatenate``.
* XLA's CPU matmul is much faster when its output width is a multiple of 16:
  ``_transposed`` pads ``U^T`` with zero columns (exact).

Reverse mode only (``jax.custom_vjp``): ``jax.jvp`` through a kernel raises; the cells'
``impl="nn_scan"`` differentiates in both modes.

``gate`` is the recurrent activation (``rnnbench.activations``); the candidate and the
output use tanh, as Keras' defaults do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from rnnbench.scan import resolve_unroll

Activation = Callable[[jax.Array], jax.Array]


def _loop(step: Callable[[Any, Any], tuple[Any, Any]], carry: Any, xs: Any, *,
          reverse: bool = False, unroll: int = 1) -> tuple[Any, Any]:
  """``jax.lax.scan(step, carry, xs, reverse=reverse)`` over axis 0 of the arrays ``xs``.

  Each ``xs[t]`` is fetched into the carry one iteration ahead, so that ``step`` reads
  plain buffers (see the module docstring). Returns ``(carry, ys)``, ``ys`` stacked on
  axis 0.
  """
  steps = jax.tree.leaves(xs)[0].shape[0]
  first = steps - 1 if reverse else 0
  take = lambda t: jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, t, keepdims=False), xs)
  y_shapes = jax.eval_shape(step, carry, take(0))[1]
  ys = jax.tree.map(lambda s: jnp.zeros((steps,) + s.shape, s.dtype), y_shapes)

  def body(i, state):
    carry, x, ys = state
    t = first - i if reverse else i
    x_next = take(jnp.maximum(t - 1, 0) if reverse else jnp.minimum(t + 1, steps - 1))
    carry, y = step(carry, x)
    ys = jax.tree.map(lambda buf, v: jax.lax.dynamic_update_index_in_dim(buf, v, t, 0), ys, y)
    return carry, x_next, ys

  carry, _, ys = jax.lax.fori_loop(0, steps, body, (carry, take(first), ys), unroll=unroll)
  return carry, ys


def _rows(xs: jax.Array) -> jax.Array:
  """(T, B, F) -> (T * B, F): every step of every sequence as one row of a matmul."""
  return xs.reshape(-1, xs.shape[-1])


def _weight_grad(inputs: jax.Array, grads: jax.Array) -> jax.Array:
  """``sum_t inputs_t^T @ grads_t`` as one matmul over all ``T * B`` rows."""
  return _rows(inputs).T @ _rows(grads)


def _bias_grad(grads: jax.Array) -> jax.Array:
  return jnp.sum(_rows(grads), axis=0)


def _transposed(u: jax.Array) -> jax.Array:
  """``u.T`` with zero columns added up to a multiple of 16.

  ``dz @ _transposed(u)`` is ``dz @ u.T`` followed by exact zeros; XLA's CPU matmul is
  much faster at these sizes when the output width is a multiple of the vector width.
  """
  pad = -u.shape[0] % 16
  return jnp.pad(u.T, ((0, 0), (0, pad)))


def _zeros(xw: jax.Array, features: int) -> jax.Array:
  return jnp.zeros(xw.shape[1:-1] + (features,), xw.dtype)


# ----------------------------------------------------------------------------------------
# LSTM: z = (xw_t + b) + h U (gates i, f, c, o); c = f c + i tanh(z_c); h = o tanh(c).


def _lstm_cell(gate, z_i, z_f, z_c, z_o, c):
  c = gate(z_f) * c + gate(z_i) * jnp.tanh(z_c)
  return gate(z_o) * jnp.tanh(c), c


def _lstm_forward(gate, xw, b, u, unroll, save):
  def step(carry, xw_t):
    h_prev, c_prev = carry
    z = (xw_t + b) + h_prev @ u
    h, c = _lstm_cell(gate, *jnp.split(z, 4, axis=-1), c_prev)
    return (h, c), ((h, z, h_prev, c_prev) if save else h)

  zeros = _zeros(xw, u.shape[0])
  return _loop(step, (zeros, zeros), xw, unroll=unroll)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 4))
def lstm(gate: Activation, xw: jax.Array, b: jax.Array, u: jax.Array,
         unroll: int = 1) -> jax.Array:
  """Every ``h_t`` (T, B, H) of an LSTM from zero state.

  ``xw`` (T, B, 4H) is the input projection ``x W`` (no bias), ``b`` (4H,) the bias, ``u``
  (H, 4H) the recurrent kernel; gate order i, f, c, o (Keras').
  """
  return _lstm_forward(gate, xw, b, u, resolve_unroll(unroll), save=False)


def _lstm_fwd(gate, xw, b, u, unroll):
  hs, zs, h_prev, c_prev = _lstm_forward(gate, xw, b, u, resolve_unroll(unroll), save=True)
  return hs, (zs, h_prev, c_prev, u)


def _lstm_bwd(gate, unroll, res, dhs):
  zs, h_prev, c_prev, u = res
  units = u.shape[0]
  cell = functools.partial(_lstm_cell, gate)
  u_t = _transposed(u)

  def step(carry, inputs):
    dh_rec, dc = carry
    dh_t, z, c = inputs
    *dz, dc = jax.vjp(cell, *jnp.split(z, 4, axis=-1), c)[1]((dh_t + dh_rec[:, :units], dc))
    dz = jnp.concatenate(dz, axis=-1)
    return (dz @ u_t, dc), dz

  carry = (jnp.zeros(dhs.shape[1:-1] + u_t.shape[-1:], dhs.dtype), jnp.zeros_like(dhs[0]))
  _, dzs = _loop(step, carry, (dhs, zs, c_prev), reverse=True, unroll=unroll)
  return dzs, _bias_grad(dzs), _weight_grad(h_prev, dzs)


lstm.defvjp(_lstm_fwd, _lstm_bwd)


# ----------------------------------------------------------------------------------------
# GRU, reset_after=False (Keras 2.2): with xb = xw_t + b, s_zr = xb_zr + h U_zr,
# z, r = gate(s_zr); s_h = xb_h + (r h) U_h; h = z h + (1 - z) tanh(s_h).


def _gru_reset(gate, s_r, h):
  """``r h``, what multiplies U_h."""
  return gate(s_r) * h


def _gru_update(gate, s_z, s_h, h):
  z = gate(s_z)
  return z * h + (1 - z) * jnp.tanh(s_h)


def _gru_forward(gate, xw, b, u, unroll, save):
  units = u.shape[0]
  u_zr, u_h = u[:, :2 * units], u[:, 2 * units:]

  def step(h, xw_t):
    x_zr, x_h = jnp.split(xw_t + b, [2 * units], axis=-1)
    s_zr = x_zr + h @ u_zr
    s_z, s_r = jnp.split(s_zr, 2, axis=-1)
    s_h = x_h + _gru_reset(gate, s_r, h) @ u_h
    h_new = _gru_update(gate, s_z, s_h, h)
    return h_new, ((h_new, s_zr, s_h, h) if save else h_new)

  return _loop(step, _zeros(xw, units), xw, unroll=unroll)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 4))
def gru(gate: Activation, xw: jax.Array, b: jax.Array, u: jax.Array,
        unroll: int = 1) -> jax.Array:
  """Every ``h_t`` (T, B, H) of a reset_after=False GRU from zero state.

  ``xw`` (T, B, 3H) is ``x W`` (no bias), ``b`` (3H,), ``u`` (H, 3H); gate order z, r, h.
  """
  return _gru_forward(gate, xw, b, u, resolve_unroll(unroll), save=False)


def _gru_fwd(gate, xw, b, u, unroll):
  hs, s_zr, s_h, h_prev = _gru_forward(gate, xw, b, u, resolve_unroll(unroll), save=True)
  return hs, (s_zr, s_h, h_prev, u)


def _gru_bwd(gate, unroll, res, dhs):
  s_zr, s_h, h_prev, u = res
  units = u.shape[0]
  update = functools.partial(_gru_update, gate)
  reset = functools.partial(_gru_reset, gate)
  u_zr_t, u_h_t = _transposed(u[:, :2 * units]), _transposed(u[:, 2 * units:])

  def step(dh_rec, inputs):
    dh_t, s_zr_t, s_h_t, h = inputs
    s_z, s_r = jnp.split(s_zr_t, 2, axis=-1)
    ds_z, ds_h, dh = jax.vjp(update, s_z, s_h_t, h)[1](dh_t + dh_rec)
    ds_r, dh_r = jax.vjp(reset, s_r, h)[1]((ds_h @ u_h_t)[:, :units])
    ds_zr = jnp.concatenate([ds_z, ds_r], axis=-1)
    return dh + dh_r + (ds_zr @ u_zr_t)[:, :units], (ds_zr, ds_h)

  _, (ds_zr, ds_h) = _loop(step, jnp.zeros_like(dhs[0]), (dhs, s_zr, s_h, h_prev),
                           reverse=True, unroll=unroll)
  dxw = jnp.concatenate([ds_zr, ds_h], axis=-1)  # xw enters s_zr and s_h as a summand
  r_h = reset(jnp.split(s_zr, 2, axis=-1)[1], h_prev)
  du = jnp.concatenate([_weight_grad(h_prev, ds_zr), _weight_grad(r_h, ds_h)], axis=-1)
  return dxw, _bias_grad(dxw), du


gru.defvjp(_gru_fwd, _gru_bwd)


# ----------------------------------------------------------------------------------------
# GRU, reset_after=True (Keras >= 2.3, cuDNN): a = h U + b_rec;
# z, r = gate(xw_zr + b_zr + a_zr); h = z h + (1 - z) tanh(xw_h + b_h + r a_h).


def _gru_after_cell(gate, s_z, s_r, x_h, a_h, h):
  """The new state from s_z = x_z + a_z, s_r = x_r + a_r, x_h and a_h."""
  z, r = gate(s_z), gate(s_r)
  return z * h + (1 - z) * jnp.tanh(x_h + r * a_h)


def _gru_after_inputs(xb, a):
  """(s_z, s_r, x_h, a_h) of ``_gru_after_cell`` from ``xb = xw_t + b`` and ``a``."""
  x_z, x_r, x_h = jnp.split(xb, 3, axis=-1)
  a_z, a_r, a_h = jnp.split(a, 3, axis=-1)
  return x_z + a_z, x_r + a_r, x_h, a_h


def _gru_after_forward(gate, xw, b, u, recurrent_bias, unroll, save):
  def step(h, xw_t):
    a = h @ u + recurrent_bias
    h_new = _gru_after_cell(gate, *_gru_after_inputs(xw_t + b, a), h)
    return h_new, ((h_new, a, h) if save else h_new)

  return _loop(step, _zeros(xw, u.shape[0]), xw, unroll=unroll)[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 5))
def gru_reset_after(gate: Activation, xw: jax.Array, b: jax.Array, u: jax.Array,
                    recurrent_bias: jax.Array, unroll: int = 1) -> jax.Array:
  """Every ``h_t`` (T, B, H) of a reset_after=True GRU from zero state.

  ``xw`` (T, B, 3H) is ``x W`` (no bias), ``b`` (3H,) the input bias, ``u`` (H, 3H),
  ``recurrent_bias`` (3H,).
  """
  return _gru_after_forward(gate, xw, b, u, recurrent_bias, resolve_unroll(unroll), save=False)


def _gru_after_fwd(gate, xw, b, u, recurrent_bias, unroll):
  hs, a, h_prev = _gru_after_forward(gate, xw, b, u, recurrent_bias, resolve_unroll(unroll),
                                     save=True)
  return hs, (xw, b, a, h_prev, u)


def _gru_after_bwd(gate, unroll, res, dhs):
  xw, b, a, h_prev, u = res
  units = u.shape[0]
  cell = functools.partial(_gru_after_cell, gate)
  u_t = _transposed(u)

  # The loop finds dh, the whole gradient of every h_t; the gradients of xw and a, which
  # need nothing from later steps, come after it, for all steps at once.
  def step(dh_rec, inputs):
    dh_t, xw_t, a_t, h = inputs
    dh = dh_t + dh_rec
    ds_z, ds_r, _, da_h, dh_prev = jax.vjp(cell, *_gru_after_inputs(xw_t + b, a_t), h)[1](dh)
    da = jnp.concatenate([ds_z, ds_r, da_h], axis=-1)
    return dh_prev + (da @ u_t)[:, :units], dh

  _, dh = _loop(step, jnp.zeros_like(dhs[0]), (dhs, xw, a, h_prev), reverse=True,
                unroll=unroll)
  ds_z, ds_r, dx_h, da_h, _ = jax.vjp(cell, *_gru_after_inputs(xw + b, a), h_prev)[1](dh)
  dxw = jnp.concatenate([ds_z, ds_r, dx_h], axis=-1)
  da = jnp.concatenate([ds_z, ds_r, da_h], axis=-1)
  return dxw, _bias_grad(dxw), _weight_grad(h_prev, da), _bias_grad(da)


gru_reset_after.defvjp(_gru_after_fwd, _gru_after_bwd)
