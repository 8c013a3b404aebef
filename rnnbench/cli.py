"""Command-line plumbing of every entry point: run.py, ``python -m rnnbench.{evaluate,predict,
bench,sweep}``.

``run(main)`` is their ``app.run``: one flag parser (``parse_flags``: a bad flag or config
override is one line), absl at WARNING unless ``--verbosity`` is given, and an expected error
(``expected_errors()``: bad config, data, checkpoint or workdir, NaN loss) printed as one line
``error: ...`` with exit status 1 and no traceback (``--traceback`` shows it).
"""

from __future__ import annotations

import logging
import os
import pathlib
import re
import sys
from collections.abc import Callable, Sequence

from absl import app
from absl import flags
from absl import logging as absl_logging

_TRACEBACK = flags.DEFINE_bool("traceback", False, "Show the traceback of an error.")

# JAX logs "Unable to initialize backend 'tpu': ..." at INFO while it looks for accelerators
# (libtpu installed on a machine with no TPU); absl shows INFO. A backend that JAX must use and
# cannot start is an error raised, not this line; --verbosity=1 shows it again.
_BACKEND_LOGGER = "jax._src.xla_bridge"


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a one-line error for a bad flag or config override.

  ml_collections reports a misspelled ``--config.a.b`` as a KeyError/AttributeError deep in a
  traceback; this prints its message (which names the field and suggests the right one) instead.
  """
  try:
    rest = flags.FLAGS(argv)
    if flags.FLAGS["verbosity"].value <= 0:
      logging.getLogger(_BACKEND_LOGGER).setLevel(logging.WARNING)
    return rest
  except flags.Error as e:
    sys.exit(f"{argv[0]}: {e}\nPass --helpfull to see the flags.")
  except OVERRIDE_ERRORS as e:
    sys.exit(f"{argv[0]}: bad config override: {override_error(e)}")


# What ml_collections raises for a bad ``--config.a.b=value``.
OVERRIDE_ERRORS = (AttributeError, KeyError, TypeError, ValueError)


def override_error(e: Exception, what: str = "config") -> str:
  """One line for a bad override: the field and, for a misspelling, the right name."""
  text = str(e.args[0] if e.args else e)
  hint = re.search(r"Did you mean \"(\w+)\" instead of \"(\w+)\"", text)
  if hint:
    text = f"no {what} field {hint[2]!r}; did you mean {hint[1]!r}?"
  return text


def use_compilation_cache(directory: str | os.PathLike, max_bytes: int = 1 << 30) -> None:
  """Turns on JAX's persistent compilation cache in ``directory`` (call before the first
  compile): a later process loads its compiled programs instead of compiling them again.
  XLA keys each entry by the program, the compile options and the versions; at most
  ``max_bytes`` are kept, the least recently used dropped first."""
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_compilation_cache_dir", str(directory))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  jax.config.update("jax_compilation_cache_max_size", int(max_bytes))


def compilation_cache_dir(value: str, auto: str | os.PathLike) -> pathlib.Path | None:
  """A ``--compilation_cache`` flag's folder: ``auto`` for 'auto', None for '' (off)."""
  if not value:
    return None
  return pathlib.Path(auto if value == "auto" else value).expanduser()


def new_folders(path: str | os.PathLike) -> list[pathlib.Path]:
  """``path`` and those of its parents that do not exist yet, deepest first."""
  out = []
  folder = pathlib.Path(path).absolute()
  while not folder.exists() and folder != folder.parent:
    out.append(folder)
    folder = folder.parent
  return out


def remove_if_empty(folders: list[pathlib.Path]) -> None:
  """Removes the folders of ``new_folders`` that are still empty (a run that failed early)."""
  for folder in folders:
    try:
      folder.rmdir()
    except OSError:  # not empty, or gone: keep what is there
      return


def expected_errors() -> tuple[type[BaseException], ...]:
  """The errors whose message is for the user (it names the problem and the fix)."""
  # pylint: disable=g-import-not-at-top
  from rnnbench import checkpoint
  from rnnbench import data
  from rnnbench import sharding
  from rnnbench import train
  from rnnbench import workdir
  return (ValueError, data.DataError, checkpoint.CheckpointError, train.NonFiniteLossError,
          FileNotFoundError, sharding.DistributedError, workdir.WorkdirError)


def set_verbosity() -> None:
  """absl (and so JAX's and orbax's INFO lines) at WARNING, unless ``--verbosity`` was given."""
  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)


def run(main: Callable[[list[str]], object], *, required: Sequence[str] = (),
        flags_parser: Callable[[list[str]], list[str]] = parse_flags) -> None:
  """``app.run(main)`` with ``required`` flags, ``set_verbosity`` and the one-line error."""
  if required:
    flags.mark_flags_as_required(list(required))

  def entry(argv: list[str]) -> None:
    set_verbosity()
    try:
      main(argv)
    except expected_errors() as e:
      if _TRACEBACK.value:
        raise
      sys.exit(f"error: {e}")

  app.run(entry, flags_parser=flags_parser)
