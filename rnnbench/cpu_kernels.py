"""rnnbench's C++ kernels for XLA:CPU (``cpu_kernels.cc``), built on first use and called
through XLA's FFI: the LSTM / GRU recurrences (``rnnbench.cpu_rnn``) and the Keras Adam
update of an embedding table from its gathered rows' gradient (``rnnbench.embedding_adam``).

The library is compiled from ``cpu_kernels.cc`` with the system C++ compiler (``$CXX``, else
``c++`` / ``g++`` / ``clang++``) the first time a process needs it, against the headers of
the installed jaxlib (``jax.ffi.include_dir()``), and kept in ``kernel_dir()``
(``$RNNBENCH_KERNELS``, else ``cache_home()/kernels``) under a name that hashes the source,
the flags, the compiler, jaxlib's version and this CPU's instruction set: a change to any of
them builds anew (a few seconds, once). ``available()`` says whether it builds here.
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

import jax
import jaxlib
import numpy as np

from rnnbench.data.base import cache_home

SOURCE = pathlib.Path(__file__).with_name("cpu_kernels.cc")
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-std=c++17",
         "-shared", "-fPIC")
COMPILERS = ("c++", "g++", "clang++")
KERNELS_ENV = "RNNBENCH_KERNELS"
TARGETS = {  # FFI target name -> the symbol cpu_kernels.cc exports
    "rnnbench_lstm_fwd": "RnnbenchLstmFwd", "rnnbench_lstm_infer": "RnnbenchLstmInfer",
    "rnnbench_lstm_bwd": "RnnbenchLstmBwd", "rnnbench_gru_fwd": "RnnbenchGruFwd",
    "rnnbench_gru_infer": "RnnbenchGruInfer", "rnnbench_gru_bwd": "RnnbenchGruBwd",
    "rnnbench_embedding_adam": "RnnbenchEmbeddingAdam",
    "rnnbench_gather_rows": "RnnbenchGatherRows",
    "rnnbench_rows_project": "RnnbenchRowsProject",
    "rnnbench_rows_project_bwd": "RnnbenchRowsProjectBwd",
    "rnnbench_max_over_time": "RnnbenchMaxOverTime",
    "rnnbench_max_over_time_bwd": "RnnbenchMaxOverTimeBwd",
}


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
  return kernel_dir() / f"cpu_kernels-{key.hexdigest()[:16]}.so"


def build(path: pathlib.Path, cxx: str, source: pathlib.Path | None = None) -> None:
  """Compiles ``source`` (else ``SOURCE``) into ``path`` (written to a temporary file, then
  renamed); raises ``BuildError`` with the compiler's message."""
  source = source or SOURCE
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
  os.close(fd)
  cmd = [cxx, *FLAGS, f"-I{jax.ffi.include_dir()}", str(source), "-o", tmp]
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
    warnings.warn(f"rnnbench.cpu_kernels: the CPU kernels are not available ({e}); "
                  "impl='auto' runs rnnbench.fused_rnn instead, and the train step its dense "
                  "embedding update", RuntimeWarning, stacklevel=2)
    return False




def runs_here() -> bool:
  """Whether a step traced now may call the kernels: the default backend is cpu with ONE
  device (with several, the batch is sharded over them and XLA cannot partition a custom
  call), and they build here."""
  return jax.default_backend() == "cpu" and jax.device_count() == 1 and available()


def call(target: str, out_shapes, *args, aliases: dict[int, int] | None = None, **attrs):
  """``jax.ffi.ffi_call`` of one of the library's ``TARGETS`` (built and registered first)
  with float32 results of ``out_shapes``; ``attrs`` become the kernel's attributes."""
  load()
  out = [jax.ShapeDtypeStruct(s, np.float32) for s in out_shapes]
  return jax.ffi.ffi_call(target, out, vmap_method="sequential",
                          input_output_aliases=aliases or {})(*args, **attrs)
