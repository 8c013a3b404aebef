"""LSTM and GRU recurrences as Pallas kernels for GPUs (Triton), with a custom VJP.

The same API and math as ``rnnbench.fused_rnn`` (time-major ``xw`` (T, B, G H) = ``x W``
without bias, the bias, the recurrent kernel ``u`` (H, G H); every ``h_t`` (T, B, H) back),
but each direction of each layer is ONE ``pallas_call`` for the whole sequence forward and
one for the backward:

* the grid splits the batch into blocks of ``BLOCK_B`` rows, one program instance each;
* a program loads its gate blocks of ``u`` once and keeps them, and its state, on chip
  for all ``T`` steps (the time loop is a ``fori_loop`` inside the kernel);
* the input projection ``x W`` stays one large matmul outside (the caller's), and so does
  the weight gradient: the backward kernel writes the pre-activation gradients ``dZ``
  (T, B, G H), and ``dU = H_prev^T dZ`` is one matmul over all ``T * B`` rows, as in
  ``fused_rnn``;
* the forward saves the slabs ``fused_rnn``'s forward saves (the same residual tree, so
  either backward can follow either forward), the backward carries only the state
  gradients and runs ``jax.vjp`` of ``fused_rnn``'s element-wise cell functions, so
  derivatives (the hard sigmoid's ties included) and op order are the fused path's.

Triton wants power-of-two blocks of at least 16 for ``dot``: every gate block is padded
from ``H`` to ``hp = max(16, next_power_of_2(H))`` columns (and ``u`` to ``hp`` rows), the
batch to a multiple of ``BLOCK_B``. The padding is exact: padded units start at zero and,
with zero inputs, zero bias and zero rows/columns of ``u``, stay at zero (every gate sees
0, so ``c`` and ``h`` are ``0.5 * tanh(0) = 0``) and feed nothing into real units; padded
rows of the batch are dropped. Inside the kernel the state and the element-wise math are
float32; the matmul operands are in the input dtype (bfloat16 runs the tensor cores in
bfloat16, accumulating in float32); outputs and saved slabs are in the input dtype.

Where the kernel runs is decided by the platform being LOWERED for
(``jax.lax.platform_dependent``), not by the default backend: lowered for ``cuda`` it is
the compiled Triton kernel (both modes); for ``tpu`` ``mode="pallas"`` compiles it with
Mosaic TPU (it lowers; never run on a TPU here) and ``mode="auto"`` runs ``fused_rnn``;
anywhere else (CPU) ``mode="pallas"`` runs the same kernel in Pallas' interpret mode (for
testing; slow; one warning when first lowered) and ``mode="auto"`` runs ``fused_rnn``'s
kernel, the same ops as ``impl="fused"``.

``u`` must fit on chip: ``fits_on_chip`` bounds it by the shared memory of one thread
block of the target GPU (``SMEM_PER_BLOCK``); above the bound the cells use ``fused_rnn``
(docs/speed.md, "GPU kernels (Pallas)"). Reverse mode only, like ``fused_rnn``; ``unroll``
applies to the fused fallback only.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pl_triton
from jax.interpreters import batching
from jax.interpreters import mlir

from rnnbench import activations
from rnnbench import cpu_kernels
from rnnbench import cpu_rnn
from rnnbench import fused_rnn
from rnnbench import scan as scan_lib

Activation = Callable[[jax.Array], jax.Array]

MODES = ("pallas", "auto")  # "auto": fused_rnn where the kernel is not compiled (not cuda)
BACKENDS = ("cuda", "tpu", "interpret")
# Where mode="pallas" compiles the kernels (cuda: Triton; tpu: Mosaic TPU, lowered by
# jax.export but never compiled on a TPU here), and where mode="auto" picks them.
KERNEL_PLATFORMS = ("cuda", "tpu")
AUTO_PLATFORMS = ("cuda",)
BLOCK_B = 16  # batch rows per program instance: the smallest M of a Triton dot
# Shared memory one thread block may use on the target GPU, sm_90 (H100 / H200): 227 KiB
# (NVIDIA's Hopper tuning guide). Triton stages the loop-invariant dot operand ``u`` there.
SMEM_PER_BLOCK = 227 * 1024
GATES = {"lstm": 4, "gru": 3, "gru_reset_after": 3}
F32 = jnp.float32


def padded_units(units: int) -> int:
  """The gate block width in the kernel: a power of two, at least 16."""
  return max(16, pl.next_power_of_2(units))


def on_chip_bytes(cell: str, units: int, dtype) -> int:
  """Shared memory a program needs: ``u`` (hp, G hp) plus one (BLOCK_B, hp) operand."""
  if cell not in GATES:
    raise ValueError(f"the Pallas kernels are for {sorted(GATES)}, not {cell!r}")
  hp, size = padded_units(units), jnp.dtype(dtype).itemsize
  return GATES[cell] * hp * hp * size + BLOCK_B * hp * size


def fits_on_chip(cell: str, units: int, dtype) -> bool:
  """Whether ``u`` of ``cell`` (lstm, gru, gru_reset_after) stays on chip in the kernel."""
  return on_chip_bytes(cell, units, dtype) <= SMEM_PER_BLOCK


def resolve_impl(impl: str, platform: str | None = None, *, cell: str = "lstm",
                 hidden_size: int | None = None, dtype: Any = "float32",
                 recurrent_activation: str = "hard_sigmoid") -> str:
  """Which LSTM / GRU implementation ``config.model.impl=impl`` runs when lowered for
  ``platform`` (default: the default backend; "gpu" means "cuda").

  Returns "nn_scan", "fused", "cpu" (the C++ kernels of ``rnnbench.cpu_rnn``), "pallas"
  (the compiled kernels) or "pallas_interpret" (the kernels in Pallas' interpret mode).
  ``cell``: "lstm", "gru" or "gru_reset_after"; with ``hidden_size`` (and the compute
  ``dtype``), "pallas" / "auto" whose recurrent kernel does not fit on chip run "fused"
  (``fits_on_chip``). "auto" on cpu is "cpu" where those kernels run (a CPU host, the
  LSTM or reset_after=False GRU, float32, a hard / logistic sigmoid gate, one CPU device,
  a C++ compiler).
  """
  scan_lib.check_impl(cell, impl)
  if impl in ("fused", "nn_scan", "cpu"):
    return impl
  platform = platform or jax.default_backend()
  platform = "cuda" if platform == "gpu" else platform
  if impl == "auto" and platform == "cpu":
    gate = activations.get_activation(recurrent_activation)
    return "cpu" if cell in ("lstm", "gru") and _cpu_runs(gate, dtype) else "fused"
  if hidden_size is not None and not fits_on_chip(cell, hidden_size, dtype):
    return "fused"
  if impl == "auto":
    return "pallas" if platform in AUTO_PLATFORMS else "fused"
  return "pallas" if platform in KERNEL_PLATFORMS else "pallas_interpret"


def max_units(cell: str, dtype) -> int:
  """The largest hidden size whose kernel fits on chip (0 if none)."""
  fits = [h for h in (2 ** k for k in range(4, 14)) if fits_on_chip(cell, h, dtype)]
  return max(fits, default=0)


_warned_size: set[tuple[str, int, str]] = set()


def cell_mode(cell: str, impl: str, units: int, dtype) -> str:
  """``impl`` as a cell runs it: "pallas" becomes "fused" where ``u`` does not fit on chip
  (``fits_on_chip``), with one warning per shape."""
  if impl not in MODES or impl == "auto" or fits_on_chip(cell, units, dtype):
    return impl  # "auto" picks by the platform lowered for and the size (``_dispatch``)
  key = (cell, units, jnp.dtype(dtype).name)
  if impl == "pallas" and key not in _warned_size:
    _warned_size.add(key)
    warnings.warn_explicit(
        f"impl='pallas': the {cell} recurrent kernel for hidden_size={units} in {key[2]} "
        f"needs {on_chip_bytes(cell, units, dtype) // 1024} KiB on chip, more than "
        f"{SMEM_PER_BLOCK // 1024} KiB; running impl='fused' (use hidden_size <= "
        f"{max_units(cell, dtype)} for the Pallas kernel)", UserWarning,
        filename="rnnbench.pallas_rnn", lineno=0)
  return "fused"


# ----------------------------------------------------------------------------------------
# Padding between the callers' layout and the kernels'.


def _pad_gates(a: jax.Array, gates: int, hp: int) -> jax.Array:
  """(..., G H) -> (..., G hp), each gate block zero-padded on the right."""
  units = a.shape[-1] // gates
  a = a.reshape(a.shape[:-1] + (gates, units))
  a = jnp.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, hp - units)])
  return a.reshape(a.shape[:-2] + (gates * hp,))


def _unpad_gates(a: jax.Array, gates: int, units: int, batch: int) -> jax.Array:
  """(T, Bp, G hp) -> (T, B, G H)."""
  a = a[:, :batch]
  a = a.reshape(a.shape[:-1] + (gates, -1))[..., :units]
  return a.reshape(a.shape[:-2] + (gates * units,))


def _seq(a: jax.Array, gates: int, hp: int) -> jax.Array:
  """(T, B, G H) -> (T, Bp, G hp): gate blocks and batch padded."""
  batch = a.shape[1]
  a = _pad_gates(a, gates, hp)
  return jnp.pad(a, ((0, 0), (0, -batch % BLOCK_B), (0, 0)))


def _vec(b: jax.Array, gates: int, hp: int) -> jax.Array:
  """(G H,) -> (1, G hp)."""
  return _pad_gates(b, gates, hp)[None]


def _kernel_u(u: jax.Array, hp: int, transposed: bool = False) -> jax.Array:
  """(H, G H) -> (hp, G hp), block k = U_k, or U_k^T (for ``dz_k @ U_k^T``)."""
  units, gates = u.shape[0], u.shape[1] // u.shape[0]
  u = jnp.pad(_pad_gates(u, gates, hp), ((0, hp - units), (0, 0)))
  if transposed:
    u = u.reshape(hp, gates, hp).transpose(2, 1, 0).reshape(hp, gates * hp)
  return u


# ----------------------------------------------------------------------------------------
# Kernel plumbing.


def _get(ref, t, k, hp):
  """Gate block ``k`` of step ``t``: (BLOCK_B, hp) float32."""
  return ref[t, :, pl.ds(k * hp, hp)].astype(F32)


def _set(ref, t, k, hp, value):
  ref[t, :, pl.ds(k * hp, hp)] = value.astype(ref.dtype)


def _consts(ref, gates, hp, dtype=None):
  """The gate blocks of a (rows, G hp) ref, loaded once (before the time loop)."""
  return [ref[:, pl.ds(k * hp, hp)].astype(dtype or ref.dtype) for k in range(gates)]


def _dot(h, u_k):
  """(BLOCK_B, hp) @ (hp, hp) with ``u_k``'s operand dtype, float32 accumulation."""
  return jnp.dot(h.astype(u_k.dtype), u_k, preferred_element_type=F32)


def _dots(hs, us):
  """``sum_k hs[k] @ us[k]``: a matmul over the gate blocks concatenated."""
  total = _dot(hs[0], us[0])
  for h, u in zip(hs[1:], us[1:]):
    total = total + _dot(h, u)
  return total


def _call(kernel, seqs, consts, outs, backend: str):
  """One ``pallas_call`` over batch blocks, for ``backend`` (one of ``BACKENDS``).

  ``seqs``: (T, Bp, F) inputs, blocked (T, BLOCK_B, F); ``consts``: 2-D inputs every
  program reads whole; ``outs``: ``(F, dtype)`` of each (T, Bp, F) output, blocked like seqs.
  """
  steps, rows = seqs[0].shape[:2]
  seq_spec = lambda f: pl.BlockSpec((steps, BLOCK_B, f), lambda i: (0, i, 0))
  in_specs = ([seq_spec(a.shape[-1]) for a in seqs]
              + [pl.BlockSpec(a.shape, lambda i: (0, 0)) for a in consts])
  out_shape = [jax.ShapeDtypeStruct((steps, rows, f), d) for f, d in outs]
  params = {}
  if backend == "cuda":
    hp = max(c.shape[0] for c in consts)  # u's rows
    params["compiler_params"] = pl_triton.CompilerParams(num_warps=4 if hp <= 64 else 8,
                                                         num_stages=1)
  return pl.pallas_call(kernel, out_shape=out_shape, grid=(rows // BLOCK_B,),
                        in_specs=in_specs, out_specs=[seq_spec(f) for f, _ in outs],
                        interpret=backend == "interpret", **params)(*seqs, *consts)


def _loop(steps, step, carry, reverse=False):
  body = (lambda i, c: step(steps - 1 - i, c)) if reverse else step
  return jax.lax.fori_loop(0, steps, body, carry)


_warned = False


def _warn_interpret():
  global _warned
  if not _warned:
    _warned = True
    warnings.warn_explicit(
        "impl='pallas' runs the Pallas kernels in interpret mode on this platform (they "
        "compile for cuda and tpu): for testing only, and slow", UserWarning,
        filename="rnnbench.pallas_rnn", lineno=0)


# The identity on an array, whose LOWERING warns (once per process) that the interpret-mode
# kernels were lowered: ``platform_dependent`` lowers only the branch of the platform it
# lowers for, so nothing warns when the same function is lowered for cuda.
_interpret_note_p = jax.extend.core.Primitive("pallas_rnn_interpret_note")
_interpret_note_p.def_impl(lambda x: x)
_interpret_note_p.def_abstract_eval(lambda x: x)
batching.primitive_batchers[_interpret_note_p] = (
    lambda args, dims: (_interpret_note_p.bind(*args), dims[0]))


def _interpret_note_lowering(ctx, x):
  del ctx
  _warn_interpret()
  return [x]


mlir.register_lowering(_interpret_note_p, _interpret_note_lowering)


def _interpreted(kernel):
  """``kernel(backend="interpret")``, warning once (when first lowered) that it is slow."""
  def run(*args):
    leaves, tree = jax.tree.flatten(args)
    leaves[-1] = _interpret_note_p.bind(leaves[-1])
    return kernel(*jax.tree.unflatten(tree, leaves), backend="interpret")
  return run


def _dispatch(mode: str, kernel, fallback, *args, cpu=None, fits: bool = True):
  """By the platform lowered for: the compiled ``kernel`` on cuda (and on tpu with
  ``mode="pallas"``; with ``mode="auto"`` only if ``u`` ``fits`` on chip); with ``mode="auto"``, ``cpu(*args)`` on cpu where given (the C++
  kernels of ``rnnbench.cpu_rnn``: ``_cpu_kernel``); elsewhere the interpret-mode kernel
  (``"pallas"``) or ``fallback(*args)`` (``"auto"``: ``fused_rnn``)."""
  if mode not in MODES:
    raise ValueError(f"pallas_rnn mode must be one of {MODES}, got {mode!r}")
  platforms = KERNEL_PLATFORMS if mode == "pallas" else AUTO_PLATFORMS if fits else ()
  compiled = {p: functools.partial(kernel, backend=p) for p in platforms}
  if mode == "auto" and cpu is not None:
    compiled["cpu"] = cpu
  other = _interpreted(kernel) if mode == "pallas" else fallback
  return jax.lax.platform_dependent(*args, **compiled, default=other)


def _fits(cell: str, u: jax.Array) -> bool:
  return fits_on_chip(cell, u.shape[0], u.dtype)


def _cpu_runs(gate: Activation, dtype) -> bool:
  """Whether ``mode="auto"`` runs the C++ kernels (``rnnbench.cpu_rnn``) when lowered for
  cpu: on a host with ONE CPU device (with several, the batch is sharded over them and XLA
  cannot partition a custom call), for a gate and dtype they compute, where they build."""
  return cpu_rnn.supports(gate, dtype) and cpu_kernels.runs_here()


def input_projection(impl: str, gate: Activation, x: jax.Array, kernel: jax.Array,
                     ids: jax.Array | None = None) -> jax.Array:
  """A cell's input projection ``time_major(x) @ kernel`` (T, B, G). For a layer that reads
  an embedding (``ids`` (B, T), its tokens: ``models.Classifier`` passes them) whose
  recurrence runs on the C++ kernels (``impl`` "cpu", or "auto" where ``_cpu_runs``; the
  cell passes no ``ids`` where they don't run it), ``cpu_rnn.project``: each distinct
  token's row projected once."""
  if (ids is not None and impl in ("cpu", "auto") and _cpu_runs(gate, x.dtype)
      and kernel.dtype == jnp.float32):
    return cpu_rnn.project(x, ids, kernel)
  return scan_lib.time_major(x) @ kernel


def _cpu_kernel(gate: Activation, dtype, fn):
  """``fn`` where ``_cpu_runs``, else None (``_dispatch``'s ``cpu``)."""
  return fn if _cpu_runs(gate, dtype) else None


def _zeros(hp):
  return jnp.zeros((BLOCK_B, hp), F32)


# ----------------------------------------------------------------------------------------
# LSTM: z = (xw_t + b) + h U (gates i, f, c, o); c = f c + i tanh(z_c); h = o tanh(c).


def _lstm_fwd_kernel(gate, hp, save, x_ref, b_ref, u_ref, h_ref, *saved):
  u, b = _consts(u_ref, 4, hp), _consts(b_ref, 4, hp, F32)

  def step(t, carry):
    h_prev, c_prev = carry
    z = [(_get(x_ref, t, k, hp) + b[k]) + _dot(h_prev, u[k]) for k in range(4)]
    h, c = fused_rnn._lstm_cell(gate, *z, c_prev)
    _set(h_ref, t, 0, hp, h)
    if save:
      z_ref, hp_ref, cp_ref = saved
      for k in range(4):
        _set(z_ref, t, k, hp, z[k])
      _set(hp_ref, t, 0, hp, h_prev)
      _set(cp_ref, t, 0, hp, c_prev)
    return h, c

  _loop(x_ref.shape[0], step, (_zeros(hp), _zeros(hp)))


def _lstm_pallas_fwd(gate, save, xw, b, u, *, backend):
  units, batch = u.shape[0], xw.shape[1]
  hp = padded_units(units)
  outs = [(hp, xw.dtype)] + ([(4 * hp, xw.dtype), (hp, xw.dtype), (hp, xw.dtype)]
                             if save else [])
  res = _call(functools.partial(_lstm_fwd_kernel, gate, hp, save), [_seq(xw, 4, hp)],
              [_vec(b, 4, hp), _kernel_u(u, hp)], outs, backend)
  hs = _unpad_gates(res[0], 1, units, batch)
  if not save:
    return hs
  zs = _unpad_gates(res[1], 4, units, batch)
  h_prev, c_prev = (_unpad_gates(r, 1, units, batch) for r in res[2:])
  return hs, (zs, h_prev, c_prev, u)


def _lstm_bwd_kernel(gate, hp, dh_ref, z_ref, cp_ref, ut_ref, dz_ref):
  ut = _consts(ut_ref, 4, hp)
  cell = functools.partial(fused_rnn._lstm_cell, gate)

  def step(t, carry):
    dh_rec, dc = carry
    z = [_get(z_ref, t, k, hp) for k in range(4)]
    *dz, dc = jax.vjp(cell, *z, _get(cp_ref, t, 0, hp))[1]((_get(dh_ref, t, 0, hp) + dh_rec,
                                                            dc))
    for k in range(4):
      _set(dz_ref, t, k, hp, dz[k])
    dz = [d.astype(dz_ref.dtype) for d in dz]  # the fused path's dz @ U^T operand
    return _dots(dz, ut), dc

  _loop(dh_ref.shape[0], step, (_zeros(hp), _zeros(hp)), reverse=True)


def _lstm_pallas_bwd(gate, res, dhs, *, backend):
  zs, h_prev, c_prev, u = res
  units, batch = u.shape[0], dhs.shape[1]
  hp = padded_units(units)
  (dzs,) = _call(functools.partial(_lstm_bwd_kernel, gate, hp),
                 [_seq(dhs, 1, hp), _seq(zs, 4, hp), _seq(c_prev, 1, hp)],
                 [_kernel_u(u, hp, transposed=True)], [(4 * hp, dhs.dtype)], backend)
  dzs = _unpad_gates(dzs, 4, units, batch)
  return dzs, fused_rnn._bias_grad(dzs), fused_rnn._weight_grad(h_prev, dzs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 4, 5))
def lstm(gate: Activation, xw: jax.Array, b: jax.Array, u: jax.Array, unroll: int = 1,
         mode: str = "pallas") -> jax.Array:
  """Every ``h_t`` (T, B, H) of an LSTM from zero state (``fused_rnn.lstm``'s API).

  ``xw`` (T, B, 4H) = ``x W``, ``b`` (4H,), ``u`` (H, 4H); gates i, f, c, o. ``mode``:
  "pallas" (compiled for cuda and tpu, interpret mode elsewhere) or "auto" (compiled for
  cuda, ``fused_rnn.lstm`` elsewhere).
  """
  fallback = lambda xw, b, u: fused_rnn._lstm_forward(gate, xw, b, u, unroll, save=False)
  cpu = _cpu_kernel(gate, xw.dtype, lambda xw, b, u: cpu_rnn.lstm(gate, xw, b, u))
  return _dispatch(mode, functools.partial(_lstm_pallas_fwd, gate, False), fallback, xw, b, u,
                   cpu=cpu, fits=_fits("lstm", u))


def _lstm_fwd(gate, xw, b, u, unroll, mode):
  fallback = lambda xw, b, u: fused_rnn._lstm_fwd(gate, xw, b, u, unroll)
  cpu = _cpu_kernel(gate, xw.dtype, lambda xw, b, u: cpu_rnn.lstm_fwd(gate, xw, b, u, unroll))
  return _dispatch(mode, functools.partial(_lstm_pallas_fwd, gate, True), fallback, xw, b, u,
                   cpu=cpu, fits=_fits("lstm", u))


def _lstm_bwd(gate, unroll, mode, res, dhs):
  fallback = lambda res, dhs: fused_rnn._lstm_bwd(gate, unroll, res, dhs)
  cpu = _cpu_kernel(gate, dhs.dtype, lambda res, dhs: cpu_rnn.lstm_bwd(gate, unroll, res, dhs))
  return _dispatch(mode, functools.partial(_lstm_pallas_bwd, gate), fallback, res, dhs,
                   cpu=cpu, fits=_fits("lstm", res[-1]))


lstm.defvjp(_lstm_fwd, _lstm_bwd)


# ----------------------------------------------------------------------------------------
# GRU, reset_after=False (Keras 2.2): xb = xw_t + b; s_z, s_r = xb_zr + h U_zr;
# s_h = xb_h + (gate(s_r) h) U_h; h = z h + (1 - z) tanh(s_h).


def _gru_fwd_kernel(gate, hp, save, x_ref, b_ref, u_ref, h_ref, *saved):
  u, b = _consts(u_ref, 3, hp), _consts(b_ref, 3, hp, F32)

  def step(t, h_prev):
    xb = [_get(x_ref, t, k, hp) + b[k] for k in range(3)]
    s_z, s_r = xb[0] + _dot(h_prev, u[0]), xb[1] + _dot(h_prev, u[1])
    s_h = xb[2] + _dot(fused_rnn._gru_reset(gate, s_r, h_prev), u[2])
    h = fused_rnn._gru_update(gate, s_z, s_h, h_prev)
    _set(h_ref, t, 0, hp, h)
    if save:
      s_zr_ref, s_h_ref, hp_ref = saved
      _set(s_zr_ref, t, 0, hp, s_z)
      _set(s_zr_ref, t, 1, hp, s_r)
      _set(s_h_ref, t, 0, hp, s_h)
      _set(hp_ref, t, 0, hp, h_prev)
    return h

  _loop(x_ref.shape[0], step, _zeros(hp))


def _gru_pallas_fwd(gate, save, xw, b, u, *, backend):
  units, batch = u.shape[0], xw.shape[1]
  hp = padded_units(units)
  outs = [(hp, xw.dtype)] + ([(2 * hp, xw.dtype), (hp, xw.dtype), (hp, xw.dtype)]
                             if save else [])
  res = _call(functools.partial(_gru_fwd_kernel, gate, hp, save), [_seq(xw, 3, hp)],
              [_vec(b, 3, hp), _kernel_u(u, hp)], outs, backend)
  hs = _unpad_gates(res[0], 1, units, batch)
  if not save:
    return hs
  s_zr = _unpad_gates(res[1], 2, units, batch)
  s_h, h_prev = (_unpad_gates(r, 1, units, batch) for r in res[2:])
  return hs, (s_zr, s_h, h_prev, u)


def _gru_bwd_kernel(gate, hp, dh_ref, s_zr_ref, s_h_ref, hp_ref, ut_ref, ds_zr_ref, ds_h_ref):
  ut = _consts(ut_ref, 3, hp)
  update = functools.partial(fused_rnn._gru_update, gate)
  reset = functools.partial(fused_rnn._gru_reset, gate)
  cast = lambda v: v.astype(ds_zr_ref.dtype)  # the fused path's matmul operands

  def step(t, dh_rec):
    s_z, s_r = _get(s_zr_ref, t, 0, hp), _get(s_zr_ref, t, 1, hp)
    h = _get(hp_ref, t, 0, hp)
    ds_z, ds_h, dh = jax.vjp(update, s_z, _get(s_h_ref, t, 0, hp), h)[1](
        _get(dh_ref, t, 0, hp) + dh_rec)
    ds_r, dh_r = jax.vjp(reset, s_r, h)[1](_dot(cast(ds_h), ut[2]))
    _set(ds_zr_ref, t, 0, hp, ds_z)
    _set(ds_zr_ref, t, 1, hp, ds_r)
    _set(ds_h_ref, t, 0, hp, ds_h)
    return (dh + dh_r) + _dots([cast(ds_z), cast(ds_r)], ut[:2])

  _loop(dh_ref.shape[0], step, _zeros(hp), reverse=True)


def _gru_pallas_bwd(gate, res, dhs, *, backend):
  s_zr, s_h, h_prev, u = res
  units, batch = u.shape[0], dhs.shape[1]
  hp = padded_units(units)
  ds_zr, ds_h = _call(functools.partial(_gru_bwd_kernel, gate, hp),
                      [_seq(dhs, 1, hp), _seq(s_zr, 2, hp), _seq(s_h, 1, hp),
                       _seq(h_prev, 1, hp)],
                      [_kernel_u(u, hp, transposed=True)],
                      [(2 * hp, dhs.dtype), (hp, dhs.dtype)], backend)
  ds_zr, ds_h = _unpad_gates(ds_zr, 2, units, batch), _unpad_gates(ds_h, 1, units, batch)
  dxw = jnp.concatenate([ds_zr, ds_h], axis=-1)  # xw enters s_zr and s_h as a summand
  r_h = fused_rnn._gru_reset(gate, jnp.split(s_zr, 2, axis=-1)[1], h_prev)
  du = jnp.concatenate([fused_rnn._weight_grad(h_prev, ds_zr),
                        fused_rnn._weight_grad(r_h, ds_h)], axis=-1)
  return dxw, fused_rnn._bias_grad(dxw), du


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 4, 5))
def gru(gate: Activation, xw: jax.Array, b: jax.Array, u: jax.Array, unroll: int = 1,
        mode: str = "pallas") -> jax.Array:
  """Every ``h_t`` (T, B, H) of a reset_after=False GRU (``fused_rnn.gru``'s API).

  ``xw`` (T, B, 3H) = ``x W``, ``b`` (3H,), ``u`` (H, 3H); gates z, r, h.
  """
  fallback = lambda xw, b, u: fused_rnn._gru_forward(gate, xw, b, u, unroll, save=False)
  cpu = _cpu_kernel(gate, xw.dtype, lambda xw, b, u: cpu_rnn.gru(gate, xw, b, u))
  return _dispatch(mode, functools.partial(_gru_pallas_fwd, gate, False), fallback, xw, b, u,
                   cpu=cpu, fits=_fits("gru", u))


def _gru_fwd(gate, xw, b, u, unroll, mode):
  fallback = lambda xw, b, u: fused_rnn._gru_fwd(gate, xw, b, u, unroll)
  cpu = _cpu_kernel(gate, xw.dtype, lambda xw, b, u: cpu_rnn.gru_fwd(gate, xw, b, u, unroll))
  return _dispatch(mode, functools.partial(_gru_pallas_fwd, gate, True), fallback, xw, b, u,
                   cpu=cpu, fits=_fits("gru", u))


def _gru_bwd(gate, unroll, mode, res, dhs):
  fallback = lambda res, dhs: fused_rnn._gru_bwd(gate, unroll, res, dhs)
  cpu = _cpu_kernel(gate, dhs.dtype, lambda res, dhs: cpu_rnn.gru_bwd(gate, unroll, res, dhs))
  return _dispatch(mode, functools.partial(_gru_pallas_bwd, gate), fallback, res, dhs,
                   cpu=cpu, fits=_fits("gru", res[-1]))


gru.defvjp(_gru_fwd, _gru_bwd)


# ----------------------------------------------------------------------------------------
# GRU, reset_after=True (Keras >= 2.3, cuDNN): a = h U + b_rec;
# z, r = gate(xw_zr + b_zr + a_zr); h = z h + (1 - z) tanh(xw_h + b_h + r a_h).


def _gru_after_fwd_kernel(gate, hp, save, x_ref, b_ref, u_ref, rb_ref, h_ref, *saved):
  u, b, rb = _consts(u_ref, 3, hp), _consts(b_ref, 3, hp, F32), _consts(rb_ref, 3, hp, F32)

  def step(t, h_prev):
    a = [_dot(h_prev, u[k]) + rb[k] for k in range(3)]
    xb = [_get(x_ref, t, k, hp) + b[k] for k in range(3)]
    h = fused_rnn._gru_after_cell(gate, xb[0] + a[0], xb[1] + a[1], xb[2], a[2], h_prev)
    _set(h_ref, t, 0, hp, h)
    if save:
      a_ref, hp_ref = saved
      for k in range(3):
        _set(a_ref, t, k, hp, a[k])
      _set(hp_ref, t, 0, hp, h_prev)
    return h

  _loop(x_ref.shape[0], step, _zeros(hp))


def _gru_after_pallas_fwd(gate, save, xw, b, u, recurrent_bias, *, backend):
  units, batch = u.shape[0], xw.shape[1]
  hp = padded_units(units)
  outs = [(hp, xw.dtype)] + ([(3 * hp, xw.dtype), (hp, xw.dtype)] if save else [])
  res = _call(functools.partial(_gru_after_fwd_kernel, gate, hp, save), [_seq(xw, 3, hp)],
              [_vec(b, 3, hp), _kernel_u(u, hp), _vec(recurrent_bias, 3, hp)], outs,
              backend)
  hs = _unpad_gates(res[0], 1, units, batch)
  if not save:
    return hs
  a, h_prev = _unpad_gates(res[1], 3, units, batch), _unpad_gates(res[2], 1, units, batch)
  return hs, (xw, b, a, h_prev, u)


def _gru_after_bwd_kernel(gate, hp, dh_ref, x_ref, a_ref, hp_ref, b_ref, ut_ref, dx_ref,
                          da_h_ref):
  ut, b = _consts(ut_ref, 3, hp), _consts(b_ref, 3, hp, F32)
  cell = functools.partial(fused_rnn._gru_after_cell, gate)
  cast = lambda v: v.astype(dx_ref.dtype)

  def step(t, dh_rec):
    xb = [_get(x_ref, t, k, hp) + b[k] for k in range(3)]
    a = [_get(a_ref, t, k, hp) for k in range(3)]
    inputs = (xb[0] + a[0], xb[1] + a[1], xb[2], a[2], _get(hp_ref, t, 0, hp))
    ds_z, ds_r, dx_h, da_h, dh_prev = jax.vjp(cell, *inputs)[1](
        _get(dh_ref, t, 0, hp) + dh_rec)
    for k, d in enumerate((ds_z, ds_r, dx_h)):
      _set(dx_ref, t, k, hp, d)
    _set(da_h_ref, t, 0, hp, da_h)
    return dh_prev + _dots([cast(ds_z), cast(ds_r), cast(da_h)], ut)

  _loop(dh_ref.shape[0], step, _zeros(hp), reverse=True)


def _gru_after_pallas_bwd(gate, res, dhs, *, backend):
  xw, b, a, h_prev, u = res
  units, batch = u.shape[0], dhs.shape[1]
  hp = padded_units(units)
  dx, da_h = _call(functools.partial(_gru_after_bwd_kernel, gate, hp),
                   [_seq(dhs, 1, hp), _seq(xw, 3, hp), _seq(a, 3, hp), _seq(h_prev, 1, hp)],
                   [_vec(b, 3, hp), _kernel_u(u, hp, transposed=True)],
                   [(3 * hp, dhs.dtype), (hp, dhs.dtype)], backend)
  dxw = _unpad_gates(dx, 3, units, batch)
  da = jnp.concatenate([dxw[..., :2 * units], _unpad_gates(da_h, 1, units, batch)], axis=-1)
  return (dxw, fused_rnn._bias_grad(dxw), fused_rnn._weight_grad(h_prev, da),
          fused_rnn._bias_grad(da))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 5, 6))
def gru_reset_after(gate: Activation, xw: jax.Array, b: jax.Array, u: jax.Array,
                    recurrent_bias: jax.Array, unroll: int = 1,
                    mode: str = "pallas") -> jax.Array:
  """Every ``h_t`` (T, B, H) of a reset_after=True GRU (``fused_rnn.gru_reset_after``'s API).

  ``xw`` (T, B, 3H) = ``x W``, ``b`` (3H,) the input bias, ``u`` (H, 3H),
  ``recurrent_bias`` (3H,).
  """
  fallback = lambda *a: fused_rnn._gru_after_forward(gate, *a, unroll, save=False)
  return _dispatch(mode, functools.partial(_gru_after_pallas_fwd, gate, False), fallback,
                   xw, b, u, recurrent_bias, fits=_fits("gru_reset_after", u))


def _gru_after_fwd(gate, xw, b, u, recurrent_bias, unroll, mode):
  fallback = lambda *a: fused_rnn._gru_after_fwd(gate, *a, unroll)
  return _dispatch(mode, functools.partial(_gru_after_pallas_fwd, gate, True), fallback,
                   xw, b, u, recurrent_bias, fits=_fits("gru_reset_after", u))


def _gru_after_bwd(gate, unroll, mode, res, dhs):
  fallback = lambda res, dhs: fused_rnn._gru_after_bwd(gate, unroll, res, dhs)
  return _dispatch(mode, functools.partial(_gru_after_pallas_bwd, gate), fallback, res, dhs,
                   fits=_fits("gru_reset_after", res[-1]))


gru_reset_after.defvjp(_gru_after_fwd, _gru_after_bwd)
