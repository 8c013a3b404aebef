"""``h_t = a_t * h_{t-1} + b_t`` as a chunked Pallas kernel, with its backward (custom VJP).

``config.model.scan = "pallas"`` for the cells whose recurrence is linear in the state
(mingru, minlstm, lru, qrnn): ``rnnbench.linear_scan.linear_scan`` sends ``mode="pallas"``
here. Arrays are batch-major ``(B, T, F)`` like the cells'; ``a`` broadcasts to ``b``'s
shape; ``h0`` is ``(B, F)`` (zeros when omitted); ``a``, ``b``, ``h0`` may be complex (the
LRU's state), which the kernel runs as real arithmetic on the real and imaginary parts.

The kernel. The grid splits batch x features into ``(block_b, block_f)`` tiles, one
program instance each; a program walks time with its tile of the state held in registers
(float32, whatever the input dtype), reading ``a_t``, ``b_t`` and writing ``h_t`` one
``(block_b, block_f)`` slice per step. Time goes in chunks of ``chunk`` steps unrolled in
the kernel body (Pallas' Triton lowering has no ``fori_loop(unroll=...)``), so the loads of
a chunk do not wait on the state; a shorter loop takes the ``T % chunk`` steps left.
Batch and features are zero-padded to whole tiles (Triton blocks are powers of two) and
the padding is sliced off. An ``a`` that is the same at every step and row (the LRU's
``lambda``, ``(F,)``) is passed as ``(1, 1, F)`` and read once per program, not broadcast to
``(B, T, F)``.

The backward is the same kernel run backwards in time on ``(a, dL/dh)``:
``g_t = dL/dh_t + a_{t+1} g_{t+1}`` (``conj(a_{t+1})`` for complex states), then
``db = g``, ``da = g * h_{t-1}`` (``g * conj(h_{t-1})``), ``dh0 = a_0 g_0``
(``conj(a_0) g_0``), with ``h_{-1} = h0``; in reverse the kernel takes ``a`` from the step
it did last, so no shifted copy of ``a`` is made.

Where it runs. The kernel is compiled with Pallas' Triton backend when the computation is
LOWERED for CUDA (``jax.lax.platform_dependent``), so a ``jax.export`` for CUDA made on a
CPU carries the GPU kernel (the custom call ``__gpu$xla.gpu.triton``); on any other
platform (CPU, TPU) the same kernel runs in Pallas' interpret mode: exact, but slow, for
tests. The first trace on a machine without a GPU logs one warning saying so.

Relation to ``log_space`` (mingru, minlstm): the log-space form is only for the parallel
scan, whose long products ``prod a_t`` underflow. Like ``"sequential"``, ``"pallas"`` runs
the plain recurrence step by step (no products, nothing to underflow), so with
``log_space=True`` it runs on ``a = 1 - z`` and ``b = z * g(k_h)``, the same values and
the same ``h`` as ``"sequential"``; ``log_space`` then only means the candidate goes
through ``g``.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

TRITON_CALL = "__gpu$xla.gpu.triton"  # the custom call a CUDA lowering carries
BLOCK_B, BLOCK_F, CHUNK = 8, 32, 16  # defaults: tile (batch, features), time steps per chunk

_warned = False


def _warn_interpret() -> None:
  """One warning per process when the kernel is traced on a machine without a GPU."""
  global _warned
  if not _warned and jax.default_backend() not in ("gpu", "cuda"):
    _warned = True
    logging.getLogger("rnnbench").warning(
        "scan='pallas' runs its kernel in Pallas interpret mode on %s: exact, for testing, "
        "and slow; it compiles for CUDA GPUs", jax.default_backend())


def _pow2(n: int) -> int:
  return 1 << max(0, (n - 1).bit_length())


# ------------------------------------------------------------------------------ the kernel


def _kernel(*refs, steps: int, chunk: int, reverse: bool, complex_: bool, const_a: bool):
  """One ``(block_b, block_f)`` tile of the recurrence over all ``steps``.

  Refs: ``a, b, h0 -> h`` (real) or ``a_re, a_im, b_re, b_im, h0_re, h0_im -> h_re, h_im``
  (complex), blocks ``(block_b, T, block_f)`` (``h0``: ``(block_b, 1, block_f)``; ``a``:
  ``(1, 1, block_f)`` when ``const_a``, read once).
  ``reverse``: walk time backwards and use the ``a`` of the step before (``a_{t+1}``).
  """
  parts = 2 if complex_ else 1
  a_refs, b_refs = refs[:parts], refs[parts:2 * parts]
  h0_refs, out_refs = refs[2 * parts:3 * parts], refs[3 * parts:]

  def load(ref, t):
    return ref[:, pl.ds(t, 1), :].astype(jnp.float32)

  def mul_add(a, h, b):
    if complex_:
      (ar, ai), (hr, hi), (br, bi) = a, h, b
      return ar * hr - ai * hi + br, ar * hi + ai * hr + bi
    return (a[0] * h[0] + b[0],)

  a_const = tuple(r[...].astype(jnp.float32) for r in a_refs) if const_a else None

  def step(i, carry):
    h, a_next = carry
    t = steps - 1 - i if reverse else i
    a = a_const if const_a else tuple(load(r, t) for r in a_refs)
    b = tuple(load(r, t) for r in b_refs)
    h = mul_add(a_next if reverse and not const_a else a, h, b)
    for ref, v in zip(out_refs, h):
      ref[:, pl.ds(t, 1), :] = v.astype(ref.dtype)
    return h, a_next if const_a else a

  def chunk_body(c, carry):
    for k in range(chunk):  # unrolled: the chunk's loads are independent of the state
      carry = step(c * chunk + k, carry)
    return carry

  h0 = tuple(r[...].astype(jnp.float32) for r in h0_refs)
  carry = (h0, tuple(jnp.zeros_like(v) for v in h0))  # a_next: unused before the first step
  full = steps // chunk
  carry = jax.lax.fori_loop(0, full, chunk_body, carry)
  jax.lax.fori_loop(full * chunk, steps, step, carry)


def _call(arrays, *, reverse: bool, complex_: bool, const_a: bool, out_dtype,
          interpret: bool, block_b: int, block_f: int, chunk: int):
  """The kernel over padded ``(B, T, F)`` arrays (``h0`` parts ``(B, 1, F)``, a constant
  ``a`` ``(1, 1, F)``)."""
  parts = 2 if complex_ else 1
  b_, steps, f = arrays[parts].shape
  grid = (b_ // block_b, f // block_f)
  seq = pl.BlockSpec((block_b, steps, block_f), lambda i, j: (i, 0, j))
  state = pl.BlockSpec((block_b, 1, block_f), lambda i, j: (i, 0, j))
  a_spec = pl.BlockSpec((1, 1, block_f), lambda i, j: (0, 0, j)) if const_a else seq
  out = jax.ShapeDtypeStruct((b_, steps, f), out_dtype)
  num_warps = max(1, min(8, block_b * block_f // 256))
  return pl.pallas_call(
      functools.partial(_kernel, steps=steps, chunk=chunk, reverse=reverse,
                        complex_=complex_, const_a=const_a),
      out_shape=(out,) * parts, grid=grid,
      in_specs=[a_spec] * parts + [seq] * parts + [state] * parts, out_specs=(seq,) * parts,
      interpret=interpret, name="linear_scan_reverse" if reverse else "linear_scan",
      compiler_params=None if interpret else pltriton.CompilerParams(
          num_warps=num_warps, num_stages=1))(*arrays)


def _scan_parts(a, b, h0, *, reverse: bool, out_dtype, block_b: int, block_f: int,
                chunk: int):
  """The recurrence on real parts: ``a``, ``b`` tuples of 1 or 2 ``(B, T, F)`` arrays
  (``a``: ``(1, 1, F)`` when the same at every step and row).

  Pads batch and features to whole tiles, picks compiled (CUDA) or interpreted by the
  platform lowered for, and returns a tuple of ``(B, T, F)`` arrays in ``out_dtype``.
  """
  complex_, const_a = len(a) == 2, a[0].shape[:2] == (1, 1)
  n, steps, f = b[0].shape
  bb, bf = min(block_b, _pow2(n)), min(block_f, _pow2(f))
  pad = ((0, -n % bb), (0, 0), (0, -f % bf))
  a_pad = ((0, 0), (0, 0), pad[2]) if const_a else pad
  arrays = ([jnp.pad(v, a_pad) for v in a] + [jnp.pad(v, pad) for v in b]
            + [jnp.pad(v[:, None], pad) for v in h0])
  kw = dict(reverse=reverse, complex_=complex_, const_a=const_a, out_dtype=out_dtype,
            block_b=bb, block_f=bf, chunk=max(1, min(chunk, steps)))
  _warn_interpret()
  outs = jax.lax.platform_dependent(
      *arrays, cuda=lambda *xs: _call(xs, interpret=False, **kw),
      default=lambda *xs: _call(xs, interpret=True, **kw))
  return tuple(o[:n, :, :f] for o in outs)


# ------------------------------------------------------------------------------ custom VJP


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _real_scan(a, b, h0, block_b, block_f, chunk):
  """``h`` for real ``a``, ``b``: tuples ``(x,)`` or ``(x_re, x_im)`` of ``(B, T, F)``
  (``a``: or ``(1, 1, F)``, the same at every step and row)."""
  return _forward(a, b, h0, block_b, block_f, chunk)[0]


def _forward(a, b, h0, block_b, block_f, chunk):
  dtype = b[0].dtype
  h = _scan_parts(a, b, h0, reverse=False, out_dtype=dtype, block_b=block_b,
                  block_f=block_f, chunk=chunk)
  return h, (a, h, h0)


def _backward(block_b, block_f, chunk, residuals, dh):
  a, h, h0 = residuals
  complex_ = len(a) == 2
  a_adj = (a[0], -a[1]) if complex_ else a  # conj(a): the adjoint of multiplying by a
  g = _scan_parts(a_adj, dh, tuple(jnp.zeros_like(v) for v in h0), reverse=True,
                  out_dtype=jnp.float32, block_b=block_b, block_f=block_f, chunk=chunk)
  h_prev = tuple(jnp.concatenate([p[:, None].astype(v.dtype), v[:, :-1]], axis=1)
                 for p, v in zip(h0, h))
  g0, a0 = tuple(v[:, 0] for v in g), tuple(v[:, 0] for v in a)
  if complex_:
    (gr, gi), (pr, pi), (g0r, g0i), (a0r, a0i) = g, h_prev, g0, a0
    da = (gr * pr + gi * pi, gi * pr - gr * pi)      # g * conj(h_{t-1})
    dh0 = (a0r * g0r + a0i * g0i, a0r * g0i - a0i * g0r)  # conj(a_0) g_0
  else:
    da, dh0 = (g[0] * h_prev[0],), (a0[0] * g0[0],)
  if a[0].shape[:2] == (1, 1):  # a constant a: its gradient sums over steps and rows
    da = tuple(jnp.sum(v, axis=(0, 1), keepdims=True) for v in da)
  cast = lambda vs, like: tuple(v.astype(w.dtype) for v, w in zip(vs, like))
  return cast(da, a), cast(g, dh), cast(dh0, h0)


_real_scan.defvjp(_forward, _backward)


def linear_scan(a: jax.Array, b: jax.Array, h0: jax.Array | None = None, *,
                block_b: int = BLOCK_B, block_f: int = BLOCK_F,
                chunk: int = CHUNK) -> jax.Array:
  """Every ``h_t`` of ``h_t = a_t * h_{t-1} + b_t`` by the Pallas kernel.

  Args:
    a: ``(B, T, F)`` or anything that broadcasts to ``b`` (e.g. ``(F,)``); real or complex.
    b: ``(B, T, F)``.
    h0: ``(B, F)``, the state before the first step; zeros when omitted.
    block_b, block_f: the tile of one program instance (powers of two; capped at the
      padded batch and feature counts).
    chunk: time steps unrolled per loop iteration of the kernel.

  Returns:
    ``h``, ``(B, T, F)``, in ``jnp.result_type(a, b)``.
  """
  for name, v in (("block_b", block_b), ("block_f", block_f)):
    if v < 1 or v & (v - 1):
      raise ValueError(f"pallas_scan {name}={v} is not a power of two; use e.g. 8 or 32")
  if b.ndim != 3:
    raise ValueError(f"pallas_scan needs b of shape (batch, time, features), got {b.shape}")
  dtype = jnp.result_type(a, b)
  a = jnp.asarray(a, dtype)
  a_shape = (1,) * (3 - a.ndim) + a.shape if a.ndim <= 3 else a.shape
  if a_shape[:2] == (1, 1):  # the same a at every step and row (the LRU's lambda): read once
    a = jnp.broadcast_to(a.reshape(a_shape), (1, 1, b.shape[2]))
  else:
    a = jnp.broadcast_to(a, b.shape)
  b = b.astype(dtype)
  h0 = jnp.zeros(b[:, 0].shape, dtype) if h0 is None else jnp.asarray(h0, dtype)
  if jnp.issubdtype(dtype, jnp.complexfloating):
    split = lambda v: (jnp.real(v), jnp.imag(v))
    hr, hi = _real_scan(split(a), split(b), split(h0), block_b, block_f, chunk)
    return jax.lax.complex(hr, hi)
  return _real_scan((a,), (b,), (h0,), block_b, block_f, chunk)[0]
