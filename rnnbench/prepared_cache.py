"""The prepared-array cache: a run's tokenized, padded and split arrays, kept between runs.

``input_pipeline.prepare`` reads an entry instead of loading and tokenizing again. An entry's
key is the sha256 of

* the dataset's identity (``rnnbench.data.identity``: the content hash of the archive or of
  the data files, or a generated dataset's name and seed),
* every ``config.data`` field that changes the arrays (all but the data locations, which the
  identity stands for, and ``data.cache`` itself),
* the source of the code that makes them (``rnnbench/data/``, ``tokenizer.py``,
  ``input_pipeline.py``, this file),

and an entry holds its own key and the sha256 of its contents: one whose key or contents do
not match is rebuilt, never trusted. Entries are ``.npz`` files (no pickles) in
``cache_home()/prepared`` (``data.data_home``, else ``$RNNBENCH_CACHE``, else
``~/.cache/rnnbench``); the ``MAX_ENTRIES`` most recently used are kept. ``data.cache=False``
turns it off; a dataset without an identity (``tfds:``, or an archive not there yet) is not
cached.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import tempfile
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from rnnbench import data as data_lib
from rnnbench.data import base as data_base

VERSION = 1
MAX_ENTRIES = 16
SUBDIR = "prepared"
# config.data fields that do not change the arrays: where the data is (the identity hashes
# what is there), and this switch.
NOT_IN_KEY = ("archive", "data_home", "files.train", "files.test", "files.val", "tfds.data_dir",
              "tfds.download", "cache")
ARRAYS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")


@functools.cache
def _code_sha256() -> str:
  here = pathlib.Path(__file__).parent
  sources = sorted((here / "data").glob("*.py")) + [
      here / "tokenizer.py", here / "input_pipeline.py", here / "prepared_cache.py"]
  return data_base.content_sha256(*sources)


def key(config: ml_collections.ConfigDict) -> str | None:
  """The entry's key for this config, or None: not cached (off, or no dataset identity)."""
  if not config.data.get("cache", True):
    return None
  identity = data_lib.identity(config.data, config.seed)
  if identity is None:
    return None
  fields = config.data.to_dict()
  for field in NOT_IN_KEY:
    *parents, leaf = field.split(".")
    node = fields
    for part in parents:
      node = node.get(part, {})
    node.pop(leaf, None)
  payload = {"version": VERSION, "code": _code_sha256(), "identity": identity,
             "data": fields}
  return hashlib.sha256(json.dumps(payload, sort_keys=True, default=repr).encode()).hexdigest()


def root(config: ml_collections.ConfigDict) -> pathlib.Path:
  return data_base.cache_home(config.data.get("data_home", "") or None) / SUBDIR


def _contents_sha256(arrays: dict[str, np.ndarray]) -> str:
  digest = hashlib.sha256()
  for name in sorted(arrays):
    a = np.ascontiguousarray(arrays[name])
    digest.update(repr((name, a.shape, a.dtype.str)).encode())
    digest.update(a.data)
  return digest.hexdigest()


def read(config: ml_collections.ConfigDict, entry_key: str) -> dict[str, Any] | None:
  """The entry's arrays (``ARRAYS``), ``label_names`` and ``tokenizer_json``, or None (no
  entry, or one that does not match: it is removed, with a warning)."""
  path = root(config) / f"{entry_key}.npz"
  if not path.is_file():
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {name: z[name] for name in z.files}
    stored_key = bytes(arrays.pop("key")).decode()
    stored_sha = bytes(arrays.pop("sha256")).decode()
    if stored_key != entry_key or stored_sha != _contents_sha256(arrays):
      raise ValueError("its key or contents do not match")
    out = {name: arrays[name] for name in ARRAYS}
    out["label_names"] = json.loads(bytes(arrays["label_names"]).decode())
    out["tokenizer_json"] = bytes(arrays["tokenizer_json"]).decode()
  except Exception as e:  # pylint: disable=broad-except  (damaged: BadZipFile, KeyError, ...)
    logging.warning("the prepared-array cache entry %s cannot be used (%s: %s); preparing the "
                    "data again", path, type(e).__name__, e)
    path.unlink(missing_ok=True)
    return None
  try:
    os.utime(path)  # most recently used
  except OSError:
    pass
  return out


def write(config: ml_collections.ConfigDict, entry_key: str, arrays: dict[str, np.ndarray],
          label_names: list[str], tokenizer_json: str) -> pathlib.Path | None:
  """Stores an entry (atomically) and keeps the newest ``MAX_ENTRIES``; a cache that cannot be
  written is a warning, never a failed run."""
  folder = root(config)
  payload = {name: np.ascontiguousarray(arrays[name]) for name in ARRAYS}
  payload["label_names"] = np.frombuffer(json.dumps(label_names).encode(), np.uint8)
  payload["tokenizer_json"] = np.frombuffer(tokenizer_json.encode(), np.uint8)
  payload["sha256"] = np.frombuffer(_contents_sha256(payload).encode(), np.uint8)
  payload["key"] = np.frombuffer(entry_key.encode(), np.uint8)
  path = folder / f"{entry_key}.npz"
  try:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{entry_key[:16]}.", suffix=".partial", dir=folder)
    try:
      with os.fdopen(fd, "wb") as f:
        np.savez(f, **payload)
      os.replace(tmp, path)
    finally:
      if os.path.exists(tmp):
        os.unlink(tmp)
    _prune(folder)
  except OSError as e:
    logging.warning("cannot write the prepared-array cache in %s (%s); the data will be "
                    "prepared again next run (set data.data_home or $%s to a writable folder, "
                    "or data.cache=False)", folder, e, data_base.CACHE_ENV)
    return None
  return path


def _prune(folder: pathlib.Path) -> None:
  def used(p: pathlib.Path) -> float:
    try:
      return p.stat().st_mtime
    except OSError:  # removed meanwhile by another run
      return 0.0
  for stale in sorted(folder.glob("*.npz"), key=used, reverse=True)[MAX_ENTRIES:]:
    stale.unlink(missing_ok=True)
