"""The data types shared by every dataset module."""

from __future__ import annotations

import dataclasses

import numpy as np


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
  """The train and test texts and labels that training reads."""

  train_texts: list[str]
  train_labels: np.ndarray  # int32
  test_texts: list[str]
  test_labels: np.ndarray  # int32
  label_names: list[str]

  def __post_init__(self):
    for texts, labels, name in ((self.train_texts, self.train_labels, "train"),
                                (self.test_texts, self.test_labels, "test")):
      if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} {name} texts but {len(labels)} {name} labels")

  @property
  def num_classes(self) -> int:
    return len(self.label_names)

  def head(self, max_train: int = 0, max_test: int = 0) -> TextClassificationData:
    """The first ``max_train`` train and ``max_test`` test documents (0: all of them)."""
    train = slice(max_train or None)
    test = slice(max_test or None)
    return dataclasses.replace(
        self, train_texts=self.train_texts[train], train_labels=self.train_labels[train],
        test_texts=self.test_texts[test], test_labels=self.test_labels[test])


def from_subsets(train: TextDataset, test: TextDataset) -> TextClassificationData:
  """Train and test subsets as TextClassificationData (int32 labels)."""
  if list(train.target_names) != list(test.target_names):
    raise DataError("the train and test subsets name their classes differently: "
                    f"{train.target_names} vs {test.target_names}")
  return TextClassificationData(
      train_texts=list(train.data), train_labels=np.asarray(train.target, dtype=np.int32),
      test_texts=list(test.data), test_labels=np.asarray(test.target, dtype=np.int32),
      label_names=list(train.target_names))
