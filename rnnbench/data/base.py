"""The data types shared by every dataset module."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

_INT = re.compile(r"\s*[+-]?[0-9]+\s*")


CACHE_ENV = "RNNBENCH_CACHE"


def cache_home(data_home: str | os.PathLike[str] | None = None) -> pathlib.Path:
  """rnnbench's cache folder: ``data.data_home``, else ``$RNNBENCH_CACHE``, else
  ``~/.cache/rnnbench`` (unpacked archives, prepared arrays)."""
  base = data_home or os.environ.get(CACHE_ENV) or pathlib.Path.home() / ".cache" / "rnnbench"
  return pathlib.Path(base).expanduser()


def content_sha256(*paths: pathlib.Path) -> str:
  """The sha256 of the files' names, sizes and bytes, in the order given."""
  digest = hashlib.sha256()
  for path in paths:
    digest.update(repr((path.name, path.stat().st_size)).encode())
    with open(path, "rb") as f:
      for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
  return digest.hexdigest()


class DataError(Exception):
  """A dataset could not be loaded; the message says what was tried and how to fix it."""


@dataclasses.dataclass(frozen=True)
class TextDataset:
  """One subset of a text classification dataset, shaped like scikit-learn's Bunch."""

  data: list[str]
  target: np.ndarray
  target_names: list[str]


@dataclasses.dataclass(frozen=True)
class TextClassificationData:
  """The train, test and (optionally) validation texts and labels that training reads.

  ``val_texts`` and ``val_labels`` are None unless the dataset names its own validation
  split (data.tfds.val_split, data.files.val); then training validates on them and uses all
  of the train texts, else it validates on the last ``validation_split`` of the train texts.
  """

  train_texts: list[str]
  train_labels: np.ndarray  # int32
  test_texts: list[str]
  test_labels: np.ndarray  # int32
  label_names: list[str]
  val_texts: list[str] | None = None
  val_labels: np.ndarray | None = None  # int32

  def __post_init__(self):
    if (self.val_texts is None) != (self.val_labels is None):
      raise ValueError("val_texts and val_labels must both be given or both be None")
    for texts, labels, name in ((self.train_texts, self.train_labels, "train"),
                                (self.test_texts, self.test_labels, "test"),
                                (self.val_texts, self.val_labels, "validation")):
      if texts is not None and len(texts) != len(labels):
        raise ValueError(f"{len(texts)} {name} texts but {len(labels)} {name} labels")

  @property
  def num_classes(self) -> int:
    return len(self.label_names)

  def head(self, max_train: int = 0, max_test: int = 0,
           max_val: int = 0) -> TextClassificationData:
    """The first ``max_train`` train, ``max_test`` test and ``max_val`` validation documents.

    0 keeps all of them.
    """
    train, test, val = slice(max_train or None), slice(max_test or None), slice(max_val or None)
    has_val = self.val_texts is not None
    return dataclasses.replace(
        self, train_texts=self.train_texts[train], train_labels=self.train_labels[train],
        test_texts=self.test_texts[test], test_labels=self.test_labels[test],
        val_texts=self.val_texts[val] if has_val else None,
        val_labels=self.val_labels[val] if has_val else None)


def from_subsets(train: TextDataset, test: TextDataset) -> TextClassificationData:
  """Train and test subsets as TextClassificationData (int32 labels)."""
  if list(train.target_names) != list(test.target_names):
    raise DataError("the train and test subsets name their classes differently: "
                    f"{train.target_names} vs {test.target_names}")
  return TextClassificationData(
      train_texts=list(train.data), train_labels=np.asarray(train.target, dtype=np.int32),
      test_texts=list(test.data), test_labels=np.asarray(test.target, dtype=np.int32),
      label_names=list(train.target_names))


def sorted_classes(labels: Iterable[Any]) -> list[Any]:
  """The distinct labels in class-id order: by value when all are integers, else as strings.

  Integers and strings of digits (as a CSV file holds them) sort by their value, so that
  '10' comes after '9'; any other strings sort as strings. Mixing ints and strings is an
  error (is 1 the same class as '1'?).
  """
  classes = set(labels)
  ints = sorted(repr(c) for c in classes if type(c) is int)
  strings = sorted(repr(c) for c in classes if type(c) is str)
  if ints and strings:
    raise DataError(f"the labels mix integers and strings (e.g. {ints[0]} and {strings[0]}): "
                    "use one kind")
  if all(_is_int(c) for c in classes):
    return sorted(classes, key=lambda c: (int(c), str(c)))
  return sorted(classes, key=str)


def encode_labels(labels: Sequence[Any], classes: Sequence[Any], what: str) -> np.ndarray:
  """Each label's index in ``classes`` (int32); a DataError naming any label not there.

  Args:
    labels: the labels of one split.
    classes: the train split's classes (``sorted_classes`` of its labels).
    what: the split and its source, for the message (e.g. "the test labels of test.csv").
  """
  index = {c: i for i, c in enumerate(classes)}
  unknown = set(labels) - index.keys()
  if unknown:
    shown = ", ".join(repr(c) for c in sorted(unknown, key=str)[:10])
    more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
    raise DataError(f"{what} include {shown}{more}, which the training split does not have "
                    f"(its labels: {', '.join(map(repr, classes[:20]))}"
                    f"{', ...' if len(classes) > 20 else ''})")
  return np.fromiter(map(index.__getitem__, labels), dtype=np.int32, count=len(labels))


def _is_int(label: Any) -> bool:
  if type(label) is int:
    return True
  return isinstance(label, str) and _INT.fullmatch(label) is not None
