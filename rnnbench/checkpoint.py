"""Orbax checkpoints of a training run: state, data-order position and a config fingerprint.

A checkpoint holds two items: ``state`` (params, optimizer state, step, dropout key, as a
plain state dict) and ``meta`` (JSON: epoch, batches done in that epoch, the epoch's running
metric sums, the history so far, and the fingerprint of the config fields that fix the shapes
and the data). Restoring checks the fingerprint first, so a checkpoint of another cell or other
sizes is an error naming the mismatch, never silently loaded or overwritten.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import orbax.checkpoint as ocp
from flax import serialization

# Config fields that must match for a checkpoint to be resumed.
FINGERPRINT_FIELDS = {
    "data": ("name", "num_words", "maxlen", "padding", "truncating", "validation_split",
             "max_train_docs", "max_test_docs"),
    "model": None,  # every model field
    "train": ("batch_size", "optimizer", "loss", "learning_rate"),
}
FORMAT = "rnnbench-checkpoint-v1"


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be read or does not belong to this config."""


def fingerprint(config: Mapping[str, Any]) -> dict[str, Any]:
  """The config fields a resumed run must share with the run that saved the checkpoint."""
  out = {"seed": config["seed"]}
  for section, fields in FINGERPRINT_FIELDS.items():
    values = config[section]
    for key in (sorted(values.keys()) if fields is None else fields):
      value = values[key]
      out[f"{section}.{key}"] = value.to_dict() if hasattr(value, "to_dict") else value
  return out


def mismatches(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  keys = sorted(set(saved) | set(current))
  return [f"{k}: checkpoint has {saved.get(k)!r}, config has {current.get(k)!r}"
          for k in keys if saved.get(k) != current.get(k)]


class Checkpointer:
  """Saves and restores training checkpoints under ``directory`` (newest ``max_to_keep``)."""

  def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 3):
    self.directory = pathlib.Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                             enable_async_checkpointing=False),
        item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: Mapping[str, Any]) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(serialization.to_state_dict(state)),
        meta=ocp.args.JsonSave({"format": FORMAT, **meta})), force=True)
    self._manager.wait_until_finished()

  def restore(self, target: Any, config_fingerprint: Mapping[str, Any],
              step: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Restores into the structure of ``target`` (a state); returns ``(state, meta)``.

    Raises CheckpointError if the checkpoint is unreadable or from an incompatible config.
    """
    step = self.latest_step() if step is None else step
    where = self.directory / str(step)
    fix = ("delete it, use another --workdir, or pass --config.train.overwrite=True "
           "to start afresh")
    try:
      meta = self._manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # orbax raises many types for missing or corrupt files
      raise CheckpointError(f"the checkpoint at {where} cannot be read ({type(e).__name__}: "
                            f"{e}); {fix}") from e
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
      raise CheckpointError(f"{where} is not an rnnbench checkpoint; {fix}")
    diff = mismatches(meta.get("fingerprint", {}), config_fingerprint)
    if diff:
      raise CheckpointError(f"the checkpoint at {where} was made with another config:\n  "
                            + "\n  ".join(diff) + f"\n{fix}")
    template = serialization.to_state_dict(target)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(template)))["state"]
      state = serialization.from_state_dict(target, restored)
    except Exception as e:
      raise CheckpointError(f"the checkpoint at {where} cannot be restored ({type(e).__name__}: "
                            f"{e}); {fix}") from e
    return state, dict(meta)

  def close(self) -> None:
    self._manager.close()
