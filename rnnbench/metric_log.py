"""Where a run's metrics go: stdout (Keras' lines, a tqdm bar on a terminal), ``metrics.jsonl``,
``steps.jsonl`` and TensorBoard (file names: ``rnnbench.workdir``).

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

from rnnbench import workdir as layout


def summary_writer_class() -> Any:
  """tensorboardX's ``SummaryWriter`` (None if tensorboardX is not installed), imported
  without torch.

  tensorboardX imports torch when it can (seconds: most of a short run's start-up) only to
  accept torch tensors, which rnnbench never logs: while it is imported, ``import torch``
  fails, which tensorboardX handles. If torch is loaded already, or tensorboardX cannot do
  without it, it is imported as usual.
  """
  hide = "torch" not in sys.modules
  if hide:
    sys.modules["torch"] = None  # `import torch` raises ImportError
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    return SummaryWriter
  except ImportError:
    if not hide:
      return None
  finally:
    if hide and sys.modules.get("torch", 0) is None:
      del sys.modules["torch"]
  for name in [m for m in sys.modules if m == "tensorboardX" or m.startswith("tensorboardX.")]:
    del sys.modules[name]  # half-imported without torch: import it again, torch and all
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top,reimported
    return SummaryWriter
  except ImportError:
    return None


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
    steps_file = workdir / layout.STEPS
    kept = []
    if resume_step and steps_file.exists():  # drop what a crashed run logged past the checkpoint
      kept = [r for r in layout.read_intact_jsonl(steps_file,
                                                  "; training resumes from the checkpoint")
              if isinstance(r.get("step"), int) and r["step"] <= resume_step]
    self.last_kept = kept[-1] if kept else None
    layout.write_jsonl(steps_file, kept)
    self._steps = steps_file.open("a", buffering=1)
    writer = summary_writer_class() if tensorboard else None
    if writer is not None:
      self._tb = writer(str(workdir / layout.TENSORBOARD), purge_step=resume_step or None)

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
    layout.write_jsonl(self.workdir / layout.METRICS, history)
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


def keras_line(n: int, seconds: float, steps: int, logs: Mapping[str, float]) -> str:
  """Keras' end-of-epoch progress line for ``n`` samples in ``steps`` steps."""
  per_step = 1000.0 * seconds / max(steps, 1)
  parts = [f"{n}/{n} [==============================] - {seconds:.0f}s {per_step:.0f}ms/step"]
  parts += [f"{k}: {v:.4f}" for k, v in logs.items()]
  return " - ".join(parts)


def window(now: Mapping[str, float], before: Mapping[str, float] | None) -> dict[str, float]:
  """Loss and accuracy over the steps between two running epoch means."""
  if before is None:
    return {"loss": now["loss"], "accuracy": now["accuracy"]}
  n = now["count"] - before["count"]
  mean = lambda k: (now[k] * now["count"] - before[k] * before["count"]) / max(n, 1)
  return {"loss": mean("loss"), "accuracy": mean("accuracy")}


def interactive() -> bool:
  """Whether stdout and stderr are both terminals (not a log file or a pipe)."""
  return all(getattr(s, "isatty", lambda: False)() for s in (sys.stdout, sys.stderr))


def progress(total: int, enabled: bool, initial: int = 0):
  """A tqdm bar on a terminal; None in a log (Keras' one line per epoch is printed anyway)."""
  if not enabled or not interactive():
    return None
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, initial=initial, unit="step", leave=False, file=sys.stderr,
              dynamic_ncols=True)
