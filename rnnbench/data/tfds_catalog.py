"""Any text classification dataset of TensorFlow Datasets: ``data.name = 'tfds:<name>'``.

For example ``tfds:imdb_reviews``, ``tfds:ag_news_subset`` (text_key 'description') or
``tfds:yelp_polarity_reviews``; ``<name>`` may carry a config and version as tfds spells
them (``imdb_reviews/plain_text:1.0.0``). ``data.tfds`` (configs/default.py) names the splits
(tfds split syntax, e.g. 'train[:90%]') and the text and label features.

The splits are read once, whole, into lists and arrays (no tf.data in the training loop),
in the prepared files' order. Texts are decoded as UTF-8. Label names come from the label
feature when it is a ``ClassLabel``; other labels (integers or strings) become classes as
for your own files: the train split's distinct labels, sorted.

Needs the optional extra: ``pip install -e '.[tfds]'``.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from typing import Any

import numpy as np

from rnnbench.data.base import DataError, TextClassificationData, encode_labels, sorted_classes

PREFIX = "tfds:"
_INSTALL = "pip install -e '.[tfds]'"
_BATCH_SIZE = 4096  # examples per batch while reading a split
_SPLIT_FIELDS = ("train_split", "test_split", "val_split")


def load(data_config: Any, seed: int = 0) -> TextClassificationData:
  """The splits named by ``data_config.tfds`` of the dataset after 'tfds:' in the name."""
  del seed  # the prepared files' order
  name = data_config.name.removeprefix(PREFIX)
  cfg = data_config.tfds
  if not name:
    raise DataError(f"data.name={data_config.name!r} names no dataset: write "
                    f"{PREFIX}<name>, e.g. {PREFIX}imdb_reviews")
  if not cfg.train_split:
    raise DataError(f"{PREFIX}{name}: data.tfds.train_split is empty; name the split to train "
                    "on (e.g. 'train')")
  tfds = _import_tfds(data_config.name)
  builder = _builder(tfds, name, cfg)
  features = builder.info.features
  for field in ("text_key", "label_key"):
    if cfg[field] not in features:
      raise DataError(f"{PREFIX}{name} has no feature {cfg[field]!r} (data.tfds.{field}); its "
                      f"features are: {', '.join(map(repr, features))}")
  label_feature = features[cfg.label_key]
  names = (list(label_feature.names) if isinstance(label_feature, tfds.features.ClassLabel)
           else None)

  splits = {field: _read_split(tfds, builder, name, field, cfg)
            for field in _SPLIT_FIELDS if cfg[field]}
  if names is None:
    classes = sorted_classes(splits["train_split"][1])
    names = [str(c) for c in classes]
    ids = {field: encode_labels(labels, classes, f"the {cfg[field]!r} labels of {PREFIX}{name}")
           for field, (_, labels) in splits.items()}
  else:
    ids = {field: _class_ids(labels, names, f"{PREFIX}{name} split {cfg[field]!r}")
           for field, (_, labels) in splits.items()}
  test_texts, test_ids = [], np.zeros(0, np.int32)
  if "test_split" in splits:
    test_texts, test_ids = splits["test_split"][0], ids["test_split"]
  val_texts, val_ids = None, None
  if "val_split" in splits:
    val_texts, val_ids = splits["val_split"][0], ids["val_split"]
  return TextClassificationData(
      train_texts=splits["train_split"][0], train_labels=ids["train_split"],
      test_texts=test_texts, test_labels=test_ids, label_names=names, val_texts=val_texts,
      val_labels=val_ids)


def _import_tfds(data_name: str) -> Any:
  """tensorflow_datasets, with TensorFlow kept off the GPUs (JAX uses them)."""
  # pylint: disable=g-import-not-at-top
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines: none
  try:
    import tensorflow as tf
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DataError(f"data.name={data_name!r} needs tensorflow-datasets and TensorFlow, which "
                    f"are not installed ({e}). Install them with: {_INSTALL}") from None
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TensorFlow has already started its devices
    pass
  return tfds


def _builder(tfds: Any, name: str, cfg: Any) -> Any:
  """The dataset's builder, downloaded and prepared first if data.tfds.download."""
  try:
    builder = tfds.builder(name, data_dir=cfg.data_dir or None)
  except ValueError as e:  # DatasetNotFoundError, an unknown config or version
    lines = str(e).splitlines()
    hint = "".join(f" {line.strip()}" for line in lines[1:] if "Did you mean" in line)
    raise DataError(f"tensorflow-datasets has no dataset {name!r}: {lines[0] if lines else e}"
                    f"{hint} (data.name={PREFIX}{name})") from None
  if cfg.download and not _is_prepared(builder):
    _check_online(name, builder)
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-exception-caught
      # Anything can fail here (network, checksums, disk); say what, and how to get round it.
      reason = str(e).splitlines()[0] if str(e) else ""
      raise DataError(
          f"{PREFIX}{name}: could not download and prepare it into {builder.data_dir}: "
          f"{type(e).__name__}: {reason}. {_how_to_get(name)}") from None
  return builder


# Resolved before a download: when none resolves (offline) tfds would retry for minutes.
_PROBE_HOSTS = ("storage.googleapis.com",)
_PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _is_prepared(builder: Any) -> bool:
  """Whether the builder's files are there (``is_prepared`` without its warning line)."""
  try:
    return (builder.data_path / "dataset_info.json").exists()
  except Exception:  # pylint: disable=broad-exception-caught
    return builder.is_prepared()


def _check_online(name: str, builder: Any) -> None:
  """A DataError at once if no download host resolves (no network), instead of tfds' retries.

  Behind a proxy (``$HTTPS_PROXY`` ...) the proxy resolves names, so nothing is checked.
  """
  if any(os.environ.get(v) for v in _PROXY_ENV):
    return
  homepage = urllib.parse.urlparse(getattr(builder.info, "homepage", "") or "").hostname
  hosts = [h for h in (homepage, *_PROBE_HOSTS) if h]
  for host in hosts:
    try:
      socket.getaddrinfo(host, 443)
      return
    except (OSError, UnicodeError):
      continue
  raise DataError(f"{PREFIX}{name} is not prepared in {builder.data_dir} and there is no "
                  f"network to download it (cannot resolve {', '.join(hosts)}). "
                  f"{_how_to_get(name)}")


def _how_to_get(name: str) -> str:
  return (f"Prepare it where there is network access (python -c \"import tensorflow_datasets "
          f"as tfds; tfds.builder('{name}', data_dir='DIR').download_and_prepare()\"), then "
          f"pass --config.data.tfds.data_dir=DIR (or set $TFDS_DATA_DIR) here")


def _read_split(tfds: Any, builder: Any, name: str, field: str,
                cfg: Any) -> tuple[list[str], list[Any]]:
  """The texts and raw labels of the split ``cfg[field]``, in the prepared files' order."""
  split = cfg[field]
  try:
    ds = builder.as_dataset(split=split, shuffle_files=False)
  except AssertionError:  # what tfds raises for data that was never prepared
    raise DataError(f"{PREFIX}{name} is not downloaded: there is no prepared copy in "
                    f"{builder.data_dir} and data.tfds.download is False. "
                    f"{_how_to_get(name)}") from None
  except (ValueError, KeyError) as e:
    splits = ", ".join(map(repr, builder.info.splits)) or "none recorded"
    raise DataError(f"{PREFIX}{name}: cannot read split {split!r} (data.tfds.{field}): "
                    f"{str(e).splitlines()[0] if str(e) else type(e).__name__}; its splits "
                    f"are: {splits}") from None
  text_key, label_key = cfg.text_key, cfg.label_key
  ds = ds.map(lambda example: (example[text_key], example[label_key]))
  texts, labels = [], []
  for text_batch, label_batch in tfds.as_numpy(ds.batch(_BATCH_SIZE)):
    if text_batch.ndim != 1 or text_batch.dtype != object:
      raise DataError(f"{PREFIX}{name}: data.tfds.text_key={text_key!r} is not a text "
                      f"feature: {builder.info.features[text_key]!r}")
    if label_batch.ndim != 1:
      raise DataError(f"{PREFIX}{name}: data.tfds.label_key={label_key!r} is not one label "
                      f"per example: {builder.info.features[label_key]!r}")
    texts += _decode(text_batch.tolist(), name, split, len(texts))
    batch_labels = label_batch.tolist()
    if label_batch.dtype == object:  # string labels
      batch_labels = _decode(batch_labels, name, split, len(labels))
    labels += batch_labels
  if not texts and field != "test_split":
    raise DataError(f"{PREFIX}{name}: split {split!r} (data.tfds.{field}) has no examples")
  return texts, labels


def _decode(values: list[bytes], name: str, split: str, start: int) -> list[str]:
  try:
    return [v.decode("utf-8") for v in values]
  except UnicodeDecodeError:
    bad = next(i for i, v in enumerate(values) if not _is_utf8(v))
    raise DataError(f"{PREFIX}{name}: example {start + bad} of split {split!r} is not valid "
                    "UTF-8 text") from None


def _is_utf8(value: bytes) -> bool:
  try:
    value.decode("utf-8")
  except UnicodeDecodeError:
    return False
  return True


def _class_ids(labels: list[int], names: list[str], what: str) -> np.ndarray:
  """ClassLabel ids as int32; a DataError for ids outside the classes (-1: unlabelled)."""
  ids = np.asarray(labels, dtype=np.int64)
  bad = ids[(ids < 0) | (ids >= len(names))]
  if bad.size:
    raise DataError(f"{what} has labels outside its {len(names)} classes (e.g. {bad[0]}; -1 "
                    "marks unlabelled examples, as in imdb_reviews' 'unsupervised' split)")
  return ids.astype(np.int32)
