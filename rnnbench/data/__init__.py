"""Text classification datasets, selected by ``config.data.name``.

A new dataset is one new module with a ``load(data_config, seed) -> TextClassificationData``
function, plus one entry in ``LOADERS``. A name ending in ':' is a family: 'tfds:' loads
'tfds:<anything>' (the loader reads the rest of data.name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rnnbench.data import files, longrange, newsgroups, synthetic, tfds_catalog
from rnnbench.data.base import DataError, TextClassificationData, TextDataset
from rnnbench.data.newsgroups import fetch_20newsgroups
from rnnbench.data.synthetic import make_synthetic

__all__ = [
    "DataError", "IDENTITIES", "LOADERS", "TextClassificationData", "TextDataset", "fetch_20newsgroups",
    "identity", "load", "make_synthetic",
]

Loader = Callable[[Any, int], TextClassificationData]

LOADERS: dict[str, Loader] = {
    "20newsgroups": newsgroups.load,
    "synthetic": synthetic.load,
    "csv": files.load,
    "jsonl": files.load,
    "folder": files.load,
    tfds_catalog.PREFIX: tfds_catalog.load,
    **{task: longrange.loader(task) for task in longrange.TASKS},  # listops, recall, delay
}


def _generated(data_config: Any, seed: int = 0) -> dict[str, Any]:
  return {"generated": data_config.name, "seed": int(seed)}  # the sizes are data fields


# What each loader reads, for the prepared-array cache (rnnbench.prepared_cache); a family
# missing here (tfds: it keeps its own cache) is not cached.
IDENTITIES: dict[str, Callable[[Any, int], dict[str, Any] | None]] = {
    "20newsgroups": newsgroups.identity,
    "synthetic": _generated,
    "csv": files.identity,
    "jsonl": files.identity,
    "folder": files.identity,
    **{task: _generated for task in longrange.TASKS},
}


def identity(data_config: Any, seed: int = 0) -> dict[str, Any] | None:
  """The identity of what ``load(data_config, seed)`` reads (a content hash, or a generated
  dataset's name and seed), for the prepared-array cache; None: do not cache."""
  family, colon, _ = data_config.name.partition(":")
  fn = IDENTITIES.get(family + colon)
  return None if fn is None else fn(data_config, seed)


def load(data_config: Any, seed: int = 0) -> TextClassificationData:
  """The dataset ``data_config.name``, cut to max_train/test/val_docs (0: all).

  Args:
    data_config: the ``config.data`` ConfigDict (see configs/default.py).
    seed: the run's seed (``config.seed``), used by generated datasets.
  """
  name = data_config.name
  family, colon, _ = name.partition(":")
  loader = LOADERS.get(family + colon)
  if loader is None:
    known = ", ".join(n + "<name>" if n.endswith(":") else n for n in sorted(LOADERS))
    raise DataError(f"unknown data.name {name!r}; known: {known}")
  limits = {field: int(getattr(data_config, field, 0) or 0)
            for field in ("max_train_docs", "max_test_docs", "max_val_docs")}
  if min(limits.values()) < 0:
    raise DataError(f"data.max_train_docs, max_test_docs and max_val_docs must be >= 0 (0: "
                    f"all), got {', '.join(map(str, limits.values()))}")
  return loader(data_config, seed).head(*limits.values())
