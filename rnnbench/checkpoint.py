"""Orbax checkpoints of a training run: state, data-order position and a config fingerprint.

A checkpoint holds two items: ``state`` (params, optimizer state, step, dropout key, as a
plain state dict) and ``meta`` (JSON: epoch, batches done in that epoch, the epoch's running
metric sums, the history so far, and the fingerprint of the whole config less
``RESUME_MAY_DIFFER``, plus a digest of the encoded data). Restoring checks the fingerprint
first, so a checkpoint of another config or other data is an error naming every differing
field, never silently loaded or overwritten. A damaged newest checkpoint is set aside and the
next older intact one restored (docs/runs.md).
"""

from __future__ import annotations

import pathlib
import re
import shutil
import sys
from collections.abc import Mapping
from typing import Any

import orbax.checkpoint as ocp
from flax import serialization

# Config fields that may differ when a run is resumed: how long to train, what to log and print,
# when to checkpoint, how to evaluate, on how many devices and hosts, which kernel runs the
# recurrence (the same params and math: a run started on CPU may resume on a GPU), and where the
# data is read from (``data_digest`` guards the data itself). Every other field must match.
RESUME_MAY_DIFFER = (
    "train.num_epochs", "train.progress", "train.log_every_steps", "train.tensorboard",
    "train.test_every_epoch", "train.eval_batch_size", "train.checkpoint_every_steps",
    "train.keep_checkpoints", "train.overwrite", "train.num_devices", "train.shard_embedding",
    "model.impl", "model.unroll", "dist.*", "data.archive", "data.data_home", "data.tfds.data_dir", "data.tfds.download",
    "data.files.train", "data.files.test", "data.files.val", "data.cache",
)
FORMAT = "rnnbench-checkpoint-v1"
# Where a damaged checkpoint is set aside: next to ``directory``, this suffix added to its name
# (``workdir.CHECKPOINTS_DAMAGED`` for a run's ``checkpoints``).
DAMAGED_SUFFIX = "-damaged"
FINGERPRINT_KEY = "config_fingerprint"  # the whole-config fingerprint (older: "fingerprint")


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be read or does not belong to this config."""


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping) or hasattr(value, "to_dict"):
      out.update(_flatten(value.to_dict() if hasattr(value, "to_dict") else value, name + "."))
    else:
      out[name] = list(value) if isinstance(value, tuple) else value
  return out


def may_differ(field: str) -> bool:
  """Whether ``field`` (dotted) is in ``RESUME_MAY_DIFFER``."""
  return any(field == f or (f.endswith(".*") and field.startswith(f[:-1]))
             for f in RESUME_MAY_DIFFER)


def fingerprint(config: Mapping[str, Any], data_digest: str | None = None) -> dict[str, Any]:
  """Every config field a resumed run must share with the one that saved the checkpoint.

  The whole config, flattened to dotted names, less ``RESUME_MAY_DIFFER``; with
  ``data_digest`` (``input_pipeline.data_digest``: a hash of the encoded splits) as ``data.digest``.
  ``train.num_epochs`` stays in when it sets the learning-rate schedule (a warm-up + cosine
  whose ``decay_steps`` is 0 decays over the whole run): a longer run there is another run.
  """
  flat = _flatten(config)
  out = {k: v for k, v in flat.items() if not may_differ(k)}
  if flat.get("train.schedule") == "warmup_cosine" and not flat.get("train.decay_steps"):
    out["train.num_epochs"] = flat.get("train.num_epochs")
  if data_digest is not None:
    out["data.digest"] = data_digest
  return out


def mismatches(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  missing = object()
  keys = sorted(set(saved) | set(current))
  show = lambda v: "nothing" if v is missing else repr(v)
  return [f"{k}: checkpoint has {show(saved.get(k, missing))}, config has "
          f"{show(current.get(k, missing))}"
          for k in keys if saved.get(k, missing) != current.get(k, missing)]


def _short(e: BaseException, limit: int = 160) -> str:
  """``e`` as one short line: its type and the first line of its message (orbax and
  tensorstore messages carry kilobytes of JSON spec)."""
  text = (str(e).strip().splitlines() or [""])[0]
  text = re.sub(r"\s*\{.*", " {...}", text) if len(text) > limit else text
  return f"{type(e).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


class Checkpointer:
  """Saves and restores training checkpoints under ``directory`` (newest ``max_to_keep``)."""

  FIX = "pass --config.train.overwrite=True to start afresh, or use another --workdir"

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

  def _read(self, step: int, target: Any) -> tuple[pathlib.Path, dict[str, Any]]:
    """Where ``step`` is and its meta; CheckpointError (one line) if it cannot be read."""
    where = self.directory / str(step)
    try:
      meta = self._manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # orbax raises many types for missing or corrupt files
      raise CheckpointError(f"the checkpoint at {where} cannot be read ({_short(e)})") from e
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
      raise CheckpointError(f"{where} is not an rnnbench checkpoint")
    return where, dict(meta)

  def _state(self, step: int, target: Any) -> Any:
    where = self.directory / str(step)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(serialization.to_state_dict(target))))["state"]
      return serialization.from_state_dict(target, restored)
    except Exception as e:
      raise CheckpointError(f"the checkpoint at {where} cannot be read ({_short(e)})") from e

  def restore(self, target: Any, config_fingerprint: Mapping[str, Any] | None,
              step: int | None = None, set_aside: bool = True) -> tuple[Any, dict[str, Any]]:
    """Restores into the structure of ``target`` (a state); returns ``(state, meta)``.

    Without ``step``, the newest intact checkpoint: a damaged newer one is moved aside to
    ``<directory>-damaged/<step>`` (only warned about without ``set_aside``, for readers that
    must not change the workdir) with a one-line warning. ``config_fingerprint`` (None: not
    checked) must equal the saved one. Raises CheckpointError (one line) if no checkpoint is
    intact or the config differs.
    """
    steps = [step] if step is not None else sorted(self._manager.all_steps(), reverse=True)
    errors = []
    for s in steps:
      try:
        where, meta = self._read(s, target)
        self._check(where, meta, config_fingerprint)
        state = self._state(s, target)
      except CheckpointError as e:
        if "another config" in str(e) or "older rnnbench" in str(e):
          raise
        errors.append((s, e))
        continue
      for bad, e in errors:
        if set_aside:
          self._set_aside(bad, e, fallback=s)
        else:
          print(f"warning: {e}; using the checkpoint at step {s}", file=sys.stderr, flush=True)
      return state, meta
    if not errors:
      raise CheckpointError(f"{self.directory} holds no checkpoint; {self.FIX}")
    newest, e = errors[0]
    older = f" (and {len(errors) - 1} older)" if len(errors) > 1 else ""
    raise CheckpointError(f"no intact checkpoint in {self.directory}: the newest{older} cannot "
                          f"be read: {str(e).split(' cannot be read ', 1)[-1]}; {self.FIX}")

  def _check(self, where, meta: Mapping[str, Any], config_fingerprint) -> None:
    if config_fingerprint is None:
      return
    if FINGERPRINT_KEY not in meta:
      raise CheckpointError(
          f"the checkpoint at {where} was written by an older rnnbench, which fingerprinted "
          "only part of the config, so resuming it cannot be checked; " + self.FIX)
    saved = dict(meta[FINGERPRINT_KEY])
    if "data.digest" not in config_fingerprint:  # a reader with no data (runs.load_run)
      saved.pop("data.digest", None)
    diff = mismatches(saved, config_fingerprint)
    if diff:
      raise CheckpointError(
          f"the checkpoint at {where} was made with another config ({len(diff)} field"
          f"{'s' if len(diff) > 1 else ''} differ: " + "; ".join(diff)
          + "); rerun with the checkpoint's values, or " + self.FIX)

  def _set_aside(self, step: int, error: Exception, fallback: int) -> None:
    """Moves the damaged checkpoint ``step`` out of the way (kept, never deleted)."""
    import jax  # pylint: disable=g-import-not-at-top
    aside = self.directory.parent / f"{self.directory.name}{DAMAGED_SUFFIX}" / str(step)
    if jax.process_index() == 0:
      aside.parent.mkdir(parents=True, exist_ok=True)
      shutil.rmtree(aside, ignore_errors=True)
      shutil.move(str(self.directory / str(step)), str(aside))
      print(f"warning: {error}; moved it to {aside} and resuming from the checkpoint at step "
            f"{fallback}", file=sys.stderr, flush=True)
    self._manager.reload()

  def close(self) -> None:
    self._manager.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
