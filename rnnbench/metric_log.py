"""Where a run's metrics go: stdout, ``metrics.jsonl``, ``steps.jsonl`` and TensorBoard.

Only the main process writes (``enabled``); the others get a log that does nothing. TensorBoard
event files (``workdir/tensorboard``) are written when ``tensorboardX`` is installed
(``pip install -e '.[tensorboard]'``).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from rnnbench.runinfo import write_text  # atomic


def write_json(path: pathlib.Path, obj: Any) -> None:
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class MetricLog:
  """The metric files of one run in ``workdir``, resumed after global step ``resume_step``."""

  def __init__(self, workdir: pathlib.Path, *, enabled: bool = True, resume_step: int = 0,
               tensorboard: bool = True):
    self.workdir = workdir
    self.enabled = enabled
    self._steps = None
    self._tb = None
    if not enabled:
      return
    steps_file = workdir / "steps.jsonl"
    kept = []
    if resume_step and steps_file.exists():  # drop what a crashed run logged past the checkpoint
      kept = [l for l in steps_file.read_text().splitlines(keepends=True)
              if l.strip() and json.loads(l)["step"] <= resume_step]
    write_text(steps_file, "".join(kept))
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
