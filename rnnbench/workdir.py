"""A run's workdir: its layout (every file name, and their reads and writes), its checks, its lock.

The layout of a run folder (names below; nothing else in rnnbench spells them)::

    config.json           the whole config (JSON)
    tokenizer.json        the fitted Keras tokenizer
    labels.json           the class names, in label order
    params.msgpack        the final params (flax msgpack)
    metrics.jsonl         one line per finished epoch
    steps.jsonl           one line per logged step
    summary.json          the finished run's summary
    checkpoints/          orbax checkpoints
    checkpoints-damaged/  damaged checkpoints set aside
    tensorboard/          TensorBoard events
    .rnnbench.lock        the lock of the run using the folder

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
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from rnnbench.runinfo import write_text  # atomic

CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
LABELS = "labels.json"
PARAMS = "params.msgpack"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
CHECKPOINTS_DAMAGED = CHECKPOINTS + "-damaged"  # checkpoint.DAMAGED_SUFFIX (set aside there)
TENSORBOARD = "tensorboard"
LOCK_NAME = ".rnnbench.lock"
# A run's results: what train.overwrite removes (the inputs config/tokenizer/labels are rewritten).
RESULT_FILES = (METRICS, STEPS, SUMMARY, PARAMS)
RESULT_FOLDERS = (CHECKPOINTS, CHECKPOINTS_DAMAGED, TENSORBOARD)
# What run.py writes into a workdir; anything else makes it "not an rnnbench run".
ARTEFACTS = frozenset({LOCK_NAME, CONFIG, TOKENIZER, LABELS, *RESULT_FILES, *RESULT_FOLDERS})
# A sweep's or comparison's root (above its runs' workdirs): its report.
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def write_report(root: pathlib.Path, report: Mapping[str, Any], markdown: str) -> None:
  """A sweep's or comparison's ``REPORT_JSON`` and ``REPORT_MD`` in ``root``, atomically."""
  root.mkdir(parents=True, exist_ok=True)
  write_text(root / REPORT_JSON, json.dumps(report, indent=1) + "\n")
  write_text(root / REPORT_MD, markdown)


def read_report_md(root: pathlib.Path) -> str:
  return (root / REPORT_MD).read_text()


def write_json(path: pathlib.Path, obj: Any) -> None:
  """``obj`` as indented, key-sorted JSON, written atomically."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: pathlib.Path, records: Sequence[Mapping[str, Any]]) -> None:
  """``records`` one JSON object a line, written atomically."""
  write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def read_jsonl(path: pathlib.Path) -> list[dict[str, Any]]:
  """The records of a JSON-lines file (strict: a damaged line raises ValueError)."""
  return [json.loads(l) for l in path.read_text().splitlines() if l]


def read_intact_jsonl(path: pathlib.Path, what: str = "") -> list[dict[str, Any]]:
  """The records of a JSON-lines file, up to its first damaged line (e.g. a crash mid-write).

  A damaged line and everything after it are dropped with a one-line warning naming the file;
  ``what`` says what becomes of them.
  """
  records = []
  try:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
  except FileNotFoundError:
    return records
  for n, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
      if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    except ValueError as e:
      print(f"warning: {path} line {n} of {len(lines)} is damaged ({str(e)[:80]}); kept the "
            f"{len(records)} complete record(s) before it{what}", file=sys.stderr, flush=True)
      break
    records.append(record)
  return records


def write_inputs(workdir: pathlib.Path, config: Mapping[str, Any], tokenizer_json: str,
                 label_names: Sequence[str]) -> None:
  """What predict and evaluate need besides the params: the config, tokenizer and class names."""
  write_json(workdir / CONFIG, config)
  (workdir / TOKENIZER).write_text(tokenizer_json)
  (workdir / LABELS).write_text(json.dumps(list(label_names)) + "\n")


def write_results(workdir: pathlib.Path, params: bytes, summary: Mapping[str, Any]) -> None:
  """A finished run's serialized params and its summary (the summary last: it marks the end)."""
  (workdir / PARAMS).write_bytes(params)
  write_json(workdir / SUMMARY, summary)


def has_results(workdir: pathlib.Path) -> bool:
  """Whether ``workdir`` holds a run's epoch metrics or summary."""
  return (workdir / METRICS).exists() or (workdir / SUMMARY).exists()


def clear_results(workdir: pathlib.Path) -> None:
  """Removes a previous run's results, checkpoints and TensorBoard events (train.overwrite)."""
  for name in RESULT_FOLDERS:
    shutil.rmtree(workdir / name, ignore_errors=True)
  for name in RESULT_FILES:
    (workdir / name).unlink(missing_ok=True)


def read_run_records(workdir: pathlib.Path) -> dict[str, Any]:
  """A finished run's ``history`` (metrics.jsonl), ``summary`` and ``steps`` (steps.jsonl)."""
  steps = workdir / STEPS
  return {"history": read_jsonl(workdir / METRICS),
          "summary": json.loads((workdir / SUMMARY).read_text()),
          "steps": read_jsonl(steps) if steps.exists() else []}


def epochs_done(workdir: pathlib.Path) -> int:
  """How many epochs ``metrics.jsonl`` records (0 without one)."""
  metrics = workdir / METRICS
  return sum(1 for l in metrics.read_text().splitlines() if l) if metrics.exists() else 0


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
  config = path / CONFIG
  if not foreign and config.is_file():
    try:
      saved = json.loads(config.read_text())
    except (ValueError, UnicodeDecodeError):
      saved = None
    if not (isinstance(saved, dict) and {"data", "model", "train"} <= saved.keys()):
      foreign = [f"{CONFIG} (not an rnnbench config)"]
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
