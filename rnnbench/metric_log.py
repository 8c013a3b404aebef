"""Where a run's metrics go: stdout, ``metrics.jsonl``, ``steps.jsonl`` and TensorBoard.

Only the main process writes (``enabled``); the others get a log that does nothing. TensorBoard
event files (``workdir/tensorboard``) are written when ``tensorboardX`` is installed
(``pip install -e '.[tensorboard]'``).
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rnnbench.runinfo import write_text  # atomic


def write_json(path: pathlib.Path, obj: Any) -> None:
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_jsonl(path: pathlib.Path, what: str = "") -> list[dict[str, Any]]:
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


class MetricLog:
  """The metric files of one run in ``workdir``, resumed after global step ``resume_step``.

  ``last_kept`` is the last ``steps.jsonl`` record kept on resume (None if none).
  """

  def __init__(self, workdir: pathlib.Path, *, enabled: bool = True, resume_step: int = 0,
               tensorboard: bool = True):
    self.workdir = workdir
    self.enabled = enabled
    self.last_kept = None
    self._steps = None
    self._tb = None
    if not enabled:
      return
    steps_file = workdir / "steps.jsonl"
    kept = []
    if resume_step and steps_file.exists():  # drop what a crashed run logged past the checkpoint
      kept = [r for r in read_jsonl(steps_file, "; training resumes from the checkpoint")
              if isinstance(r.get("step"), int) and r["step"] <= resume_step]
    self.last_kept = kept[-1] if kept else None
    write_text(steps_file, "".join(json.dumps(r) + "\n" for r in kept))
    self._steps = steps_file.open("a", buffering=1)
    if tensorboard:
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      except ImportError:
        pass
      else:
        self._tb = SummaryWriter(str(workdir / "tensorboard"), purge_step=resume_step or None)

  def step(self, step: int, record: Mapping[str, float]) -> None:
    """A training-progress record (``steps.jsonl`` and the ``train_step/*`` scalars)."""
    if not self.enabled:
      return
    self._steps.write(json.dumps({"step": step, **record}) + "\n")
    if self._tb is not None:
      for key in ("loss", "accuracy"):
        self._tb.add_scalar(f"train_step/{key}", record[key], step)

  def epoch(self, history: Sequence[Mapping[str, Any]], step: int) -> None:
    """Rewrites ``metrics.jsonl`` with ``history``; its last epoch's scalars at ``step``."""
    if not self.enabled:
      return
    write_text(self.workdir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    if self._tb is not None:
      for key, value in history[-1].items():
        if key not in ("epoch", "train_count"):
          self._tb.add_scalar(f"epoch/{key}", value, history[-1]["epoch"])
      self._tb.flush()

  def close(self) -> None:
    if self._steps is not None:
      self._steps.close()
    if self._tb is not None:
      self._tb.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
