"""Text classification datasets, selected by ``config.data.name``.

A new dataset is one new module with a ``load(data_config, seed) -> TextClassificationData``
function, plus one entry in ``LOADERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rnnbench.data import newsgroups, synthetic
from rnnbench.data.base import DataError, TextClassificationData, TextDataset
from rnnbench.data.newsgroups import fetch_20newsgroups
from rnnbench.data.synthetic import make_synthetic

__all__ = [
    "DataError", "LOADERS", "TextClassificationData", "TextDataset", "fetch_20newsgroups",
    "load", "make_synthetic",
]

Loader = Callable[[Any, int], TextClassificationData]

LOADERS: dict[str, Loader] = {
    "20newsgroups": newsgroups.load,
    "synthetic": synthetic.load,
}


def load(data_config: Any, seed: int = 0) -> TextClassificationData:
  """The dataset ``data_config.name``, cut to max_train_docs / max_test_docs (0: all).

  Args:
    data_config: the ``config.data`` ConfigDict (see configs/default.py).
    seed: the run's seed (``config.seed``), used by generated datasets.
  """
  name = data_config.name
  loader = LOADERS.get(name)
  if loader is None:
    raise DataError(f"unknown data.name {name!r}; known: {', '.join(sorted(LOADERS))}")
  max_train = int(getattr(data_config, "max_train_docs", 0) or 0)
  max_test = int(getattr(data_config, "max_test_docs", 0) or 0)
  if max_train < 0 or max_test < 0:
    raise DataError(f"data.max_train_docs and data.max_test_docs must be >= 0 (0: all), got "
                    f"{max_train} and {max_test}")
  return loader(data_config, seed).head(max_train, max_test)
