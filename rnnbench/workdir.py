"""A run's workdir: checked before anything is written, and locked while a run uses it.

``open_workdir(path, overwrite)`` makes the folder (or finds it), refuses one that is a file,
sits under a file, cannot be written, or holds files that are not an rnnbench run's (unless
``overwrite``), and takes ``LOCK_NAME`` with ``fcntl.flock``: a second run on the same workdir
is refused at once, naming the holder. The kernel drops the lock when its process ends, however
it ends (kill -9 included), so a stale lock never blocks the next run. docs/runs.md has the rules.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pathlib
import socket
import time
from collections.abc import Iterator

LOCK_NAME = ".rnnbench.lock"
# What run.py writes into a workdir; anything else makes it "not an rnnbench run".
ARTEFACTS = frozenset({
    LOCK_NAME, "config.json", "tokenizer.json", "labels.json", "metrics.jsonl", "steps.jsonl",
    "summary.json", "params.msgpack", "checkpoints", "checkpoints-damaged", "tensorboard",
})


class WorkdirError(OSError):
  """A workdir that cannot be used: its message is one line naming the problem and the fix."""


def _describe(e: OSError) -> str:
  return e.strerror or type(e).__name__


def make(path: pathlib.Path) -> None:
  """Creates ``path`` (and its parents) as a folder; WorkdirError if that is impossible."""
  if path.exists() and not path.is_dir():
    raise WorkdirError(f"--workdir {path} is a file, not a folder; pass a folder path")
  try:
    path.mkdir(parents=True, exist_ok=True)
  except (NotADirectoryError, FileExistsError) as e:
    parent = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
    raise WorkdirError(f"--workdir {path}: {parent} is a file, not a folder, so nothing can be "
                       "created under it; pass another path") from e
  except OSError as e:
    raise WorkdirError(f"cannot create --workdir {path} ({_describe(e)}); pass a folder you "
                       "can write to") from e


def check_contents(path: pathlib.Path, overwrite: bool) -> None:
  """Refuses a non-empty folder that is not an rnnbench run, unless ``overwrite``."""
  if overwrite:
    return
  foreign = sorted(p.name for p in path.iterdir() if p.name not in ARTEFACTS)
  config = path / "config.json"
  if not foreign and config.is_file():
    try:
      saved = json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError):
      saved = None
    if not (isinstance(saved, dict) and {"data", "model", "train"} <= saved.keys()):
      foreign = ["config.json (not an rnnbench config)"]
  if foreign:
    shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
    raise WorkdirError(f"--workdir {path} holds files that are not an rnnbench run's ({shown}); "
                       "nothing was written. Use an empty or new folder, or pass "
                       "--config.train.overwrite=True to write the run's files there anyway")


def _holder(lock_file: pathlib.Path) -> str:
  try:
    info = json.loads(lock_file.read_text())
    return f"pid {info['pid']} on {info['host']}, started {info['started']}"
  except (OSError, ValueError, KeyError, TypeError):
    return "another process"


@contextlib.contextmanager
def lock(path: pathlib.Path) -> Iterator[pathlib.Path]:
  """Holds an exclusive ``flock`` on ``path/LOCK_NAME`` for the ``with`` block.

  WorkdirError at once if another process holds it (the message names that process), or if
  the folder cannot be written (a read-only file system, no permission).
  """
  lock_file = path / LOCK_NAME
  try:
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise WorkdirError(f"cannot write to --workdir {path} ({_describe(e)}); pass a folder you "
                       "can write to") from e
  held = False
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      held = True
    except OSError as e:
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise WorkdirError(f"cannot lock --workdir {path} ({_describe(e)})") from e
      raise WorkdirError(f"--workdir {path} is in use by another run ({_holder(lock_file)}); "
                         "wait for it to finish, or use another --workdir") from None
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    yield lock_file
  finally:
    with contextlib.suppress(OSError):  # a run that wrote nothing leaves the folder empty
      if held and os.listdir(path) == [LOCK_NAME]:
        lock_file.unlink()
    os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def open_workdir(path: str | os.PathLike, overwrite: bool = False,
                 exclusive: bool = True) -> Iterator[pathlib.Path]:
  """``make``, ``check_contents`` and (with ``exclusive``) ``lock``: the workdir, ready to use."""
  path = pathlib.Path(path)
  make(path)
  if not exclusive:
    yield path
    return
  check_contents(path, overwrite)  # before the lock file is made: a refused folder is untouched
  with lock(path):
    yield path
