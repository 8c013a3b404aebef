"""LSTM and GRU recurrences as C++ kernels for XLA:CPU (``cpu_rnn.cc``, through XLA's FFI).

``fused_rnn``'s API and residuals (time-major ``xw`` (T, B, G H) = ``x W`` without bias, the
bias, the recurrent kernel ``u`` (H, G H); every ``h_t`` (T, B, H) back; the forward saves
the slabs ``fused_rnn``'s forward saves), so the backward of either follows the forward of
either. Each direction of a layer is ONE custom call for the whole sequence: the time loop
runs in C++ with ``u`` in cache, the batch rows split over XLA's intra-op threads. The input
projection, and the weight gradient ``H_prev^T dZ``, stay XLA matmuls over all ``T * B``
rows, as in ``fused_rnn``.

The library is compiled from ``cpu_rnn.cc`` with the system C++ compiler (``$CXX``, else
``c++`` / ``g++`` / ``clang++``) the first time a process needs it, against the headers of
the installed jaxlib (``jax.ffi.include_dir()``), and kept in ``kernel_dir()``
(``$RNNBENCH_KERNELS``, else ``cache_home()/kernels``) under a name that hashes the source, the flags, the compiler, jaxlib's version and this
CPU's instruction set: a change to any of them builds anew (a few seconds, once).
``available()`` says whether it builds here; ``impl="auto"`` runs it on CPU where it does
(and ``fused_rnn`` where it does not, with one warning), ``impl="cpu"`` insists.

What it runs: float32 only; the gate (recurrent activation) Keras 2's hard sigmoid or the
logistic sigmoid (``supports``); the LSTM and the reset_after=False GRU (the
reset_after=True GRU runs ``fused_rnn``). Its tanh and sigmoid are its own (about 1 ulp),
so results equal ``fused_rnn``'s to float32 rounding, not bit for bit
(``tests/test_cpu_rnn.py``). Reverse mode only, like ``fused_rnn``.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from rnnbench import activations
from rnnbench import fused_rnn
from rnnbench.data.base import cache_home

Activation = Callable[[jax.Array], jax.Array]

SOURCE = pathlib.Path(__file__).with_name("cpu_rnn.cc")
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-std=c++17",
         "-shared", "-fPIC")
COMPILERS = ("c++", "g++", "clang++")
KERNELS_ENV = "RNNBENCH_KERNELS"
TARGETS = {  # FFI target name -> the symbol cpu_rnn.cc exports
    "rnnbench_lstm_fwd": "RnnbenchLstmFwd", "rnnbench_lstm_infer": "RnnbenchLstmInfer",
    "rnnbench_lstm_bwd": "RnnbenchLstmBwd", "rnnbench_gru_fwd": "RnnbenchGruFwd",
    "rnnbench_gru_infer": "RnnbenchGruInfer", "rnnbench_gru_bwd": "RnnbenchGruBwd",
}
GATES = {activations.hard_sigmoid: 0, jax.nn.sigmoid: 1}  # cpu_rnn.cc's enum Gate


class BuildError(RuntimeError):
  """The kernel library could not be compiled or loaded here."""


def compiler() -> str | None:
  """The C++ compiler to use: ``$CXX``, else the first of ``COMPILERS`` on the PATH."""
  names = [os.environ["CXX"]] if os.environ.get("CXX") else list(COMPILERS)
  return next((shutil.which(n) for n in names if shutil.which(n)), None)


def _cpu_identity() -> str:
  """This CPU's instruction set (``-march=native`` depends on it)."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith(("flags", "Features")):
          return line
  except OSError:
    pass
  return platform.processor() or platform.machine()


def kernel_dir() -> pathlib.Path:
  """Where built libraries live: ``$RNNBENCH_KERNELS``, else ``cache_home()/kernels``."""
  return pathlib.Path(os.environ.get(KERNELS_ENV) or cache_home() / "kernels").expanduser()


def library_path(cxx: str) -> pathlib.Path:
  """Where the library built by ``cxx`` for this source, jaxlib and CPU lives."""
  version = subprocess.run([cxx, "--version"], capture_output=True, text=True,
                           check=False).stdout
  key = hashlib.sha256()
  for part in (SOURCE.read_bytes(), repr(FLAGS).encode(), version.encode(),
               jaxlib.__version__.encode(), _cpu_identity().encode(),
               platform.machine().encode()):
    key.update(part)
  return kernel_dir() / f"cpu_rnn-{key.hexdigest()[:16]}.so"


def build(path: pathlib.Path, cxx: str) -> None:
  """Compiles ``SOURCE`` into ``path`` (written to a temporary file, then renamed)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
  os.close(fd)
  cmd = [cxx, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", tmp]
  try:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
      raise BuildError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


@functools.cache
def load() -> ctypes.CDLL:
  """Builds (once per source, compiler, jaxlib and CPU) and loads the library, and
  registers its FFI targets for the CPU platform. Raises ``BuildError`` with the reason."""
  cxx = compiler()
  if cxx is None:
    raise BuildError("no C++ compiler found (set $CXX, or install g++ or clang++); "
                     "use config.model.impl='fused' to run the pure-JAX kernels")
  path = library_path(cxx)
  if not path.exists():
    build(path, cxx)
  try:
    lib = ctypes.CDLL(str(path))
  except OSError as e:
    raise BuildError(f"could not load {path}: {e}; delete it to rebuild") from e
  for name, symbol in TARGETS.items():
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
  return lib


@functools.cache
def available() -> bool:
  """Whether the kernels build and load here (a warning says why not, once)."""
  try:
    load()
    return True
  except (BuildError, OSError) as e:
    warnings.warn(f"rnnbench.cpu_rnn: the CPU kernels are not available ({e}); "
                  "impl='auto' runs rnnbench.fused_rnn instead", RuntimeWarning, stacklevel=2)
    return False


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
  load()


def _call(target: str, shapes, gate: Activation, *args):
  load()
  out = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
  return jax.ffi.ffi_call(target, out, vmap_method="sequential")(
      *args, gate=np.int32(GATES[gate]))


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
  units = u.shape[0]
  ds_zr, ds_h = _call("rnnbench_gru_bwd", [s_zr.shape, s_h.shape], gate, dhs, s_zr, s_h,
                      h_prev, u)
  dxw = jnp.concatenate([ds_zr, ds_h], axis=-1)
  r_h = fused_rnn._gru_reset(gate, jnp.split(s_zr, 2, axis=-1)[1], h_prev)
  du = jnp.concatenate([fused_rnn._weight_grad(h_prev, ds_zr),
                        fused_rnn._weight_grad(r_h, ds_h)], axis=-1)
  return dxw, fused_rnn._bias_grad(dxw), du


gru.defvjp(gru_fwd, gru_bwd)
