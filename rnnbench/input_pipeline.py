"""The input pipeline: texts to padded token ids, the notebook's validation split, and batches.

``prepare(config)`` loads the dataset, fits the tokenizer on the whole train subset, pads every
split with ``encode`` and cuts the validation split off the END of train with ``split_at``, as
Keras' ``fit(validation_split=v)`` does before any shuffle; the result is kept in the
prepared-array cache (``rnnbench.prepared_cache``), so the next run with the same data reads it
back. ``batches`` yields fixed-shape
``(x, y, weight)`` batches in an ``epoch_order``; shapes: ``x`` (B, T) int32, ``y`` (B,) int32,
``weight`` (B,) float32 (0 on padding rows).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Iterator, Sequence

import ml_collections
import numpy as np

from rnnbench import data as data_lib
from rnnbench import prepared_cache
from rnnbench import tokenizer as tokenizer_lib


@dataclasses.dataclass(frozen=True)
class Arrays:
  """Token ids ``x`` (n, maxlen) int32 and labels ``y`` (n,) int32 of one split."""
  x: np.ndarray
  y: np.ndarray

  def __len__(self) -> int:
    return len(self.y)


@dataclasses.dataclass(frozen=True)
class PreparedData:
  """The encoded splits, the class names and the fitted tokenizer (as ``to_json`` writes it;
  ``tokenizer`` is the object, made from it when first asked for)."""
  train: Arrays
  val: Arrays
  test: Arrays
  label_names: list[str]
  tokenizer_json: str
  from_cache: bool = False  # read back from the prepared-array cache

  @functools.cached_property
  def tokenizer(self) -> tokenizer_lib.Tokenizer:
    return tokenizer_lib.Tokenizer.from_json(self.tokenizer_json)


def split_at(n: int, validation_split: float) -> int:
  """Where Keras' ``fit(validation_split=v)`` cuts: the first ``int(n * (1 - v))`` train."""
  if not 0.0 <= validation_split < 1.0:
    raise ValueError(f"data.validation_split must be in [0, 1), got {validation_split}")
  return int(n * (1.0 - validation_split))


def encode(tok: tokenizer_lib.Tokenizer, texts: Sequence[str],
           data_config: ml_collections.ConfigDict) -> np.ndarray:
  """Token ids (len(texts), data.maxlen) int32, padded and truncated as ``data_config`` says."""
  x = tokenizer_lib.pad_sequences(
      tok.texts_to_sequences(list(texts)), maxlen=data_config.maxlen,
      padding=data_config.padding, truncating=data_config.truncating)
  return x.astype(np.int32)


def encode_split(tok: tokenizer_lib.Tokenizer, texts: Sequence[str], labels: Sequence[int],
                 data_config: ml_collections.ConfigDict) -> Arrays:
  """``encode``'s token ids with their labels."""
  return Arrays(x=encode(tok, texts, data_config), y=np.asarray(labels, np.int32))


def validation_texts(dataset: data_lib.TextClassificationData, validation_split: float):
  """The validation split's ``(texts, labels)``: a named split, else the last of train."""
  if dataset.val_texts is not None:
    return dataset.val_texts, dataset.val_labels
  cut = split_at(len(dataset.train_texts), validation_split)
  return dataset.train_texts[cut:], dataset.train_labels[cut:]


def prepare(config: ml_collections.ConfigDict) -> PreparedData:
  """The prepared-array cache's entry for this config, else ``build(config)`` (then stored)."""
  key = prepared_cache.key(config)
  hit = key and prepared_cache.read(config, key)
  if hit:
    split = lambda name: Arrays(hit[f"{name}_x"], hit[f"{name}_y"])
    return PreparedData(train=split("train"), val=split("val"), test=split("test"),
                        label_names=hit["label_names"], tokenizer_json=hit["tokenizer_json"],
                        from_cache=True)
  data = build(config)
  if key:
    prepared_cache.write(config, key, {f"{name}_{part}": getattr(getattr(data, name), part)
                                       for name in ("train", "val", "test") for part in "xy"},
                         data.label_names, data.tokenizer_json)
  return data


def build(config: ml_collections.ConfigDict) -> PreparedData:
  """Loads the dataset, fits the tokenizer on the whole train subset and pads every split."""
  dataset = data_lib.load(config.data, seed=config.seed)
  tok = tokenizer_lib.Tokenizer(
      num_words=config.data.num_words,
      filters=config.data.get("filters", tokenizer_lib.DEFAULT_FILTERS),
      lower=config.data.get("lower", True))
  tok.fit_on_texts(dataset.train_texts)
  encode_ = lambda texts, labels: encode_split(tok, texts, labels, config.data)

  full = encode_(dataset.train_texts, dataset.train_labels)
  if dataset.val_texts is None:  # the notebook's: the last validation_split of train
    cut = split_at(len(full), config.data.validation_split)
    train, val = Arrays(full.x[:cut], full.y[:cut]), Arrays(full.x[cut:], full.y[cut:])
  else:  # a named split (like Keras' validation_data): all of train trains
    train, val = full, encode_(dataset.val_texts, dataset.val_labels)
  data = PreparedData(train=train, val=val, test=encode_(dataset.test_texts, dataset.test_labels),
                      label_names=list(dataset.label_names), tokenizer_json=tok.to_json())
  data.__dict__["tokenizer"] = tok  # the cached_property's value: no from_json round trip
  return data


def data_digest(data: PreparedData) -> str:
  """A sha256 of what training sees: the encoded train and validation splits and the class names.

  Part of the checkpoint fingerprint, so data that changed (other files, other synthetic
  settings, another tokenizer fit) refuses a resume wherever it is read from.
  """
  h = hashlib.sha256()
  for a in (data.train.x, data.train.y, data.val.x, data.val.y):
    h.update(repr((a.shape, a.dtype.str)).encode())
    h.update(np.ascontiguousarray(a).tobytes())
  h.update(json.dumps(data.label_names).encode())
  return h.hexdigest()


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  """The training order of one epoch: a fresh permutation from (seed, epoch)."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def batches(arrays: Arrays, batch_size: int, order: np.ndarray | None = None,
            pad_to: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Fixed-shape batches ``(x, y, weight)`` of ``batch_size`` examples each.

  The last partial batch is zero-padded with weight 0, and so is every batch up to ``pad_to``
  rows if that is larger (a batch that must split evenly across devices).
  """
  idx = np.arange(len(arrays)) if order is None else np.asarray(order)
  rows = max(batch_size, pad_to or 0)
  for start in range(0, len(idx), batch_size):
    take = idx[start:start + batch_size]
    pad = rows - len(take)
    x, y = arrays.x[take], arrays.y[take]
    w = np.ones(len(take), np.float32)
    if pad:
      x = np.concatenate([x, np.zeros((pad, x.shape[1]), x.dtype)])
      y = np.concatenate([y, np.zeros(pad, y.dtype)])
      w = np.concatenate([w, np.zeros(pad, np.float32)])
    yield x, y, w


def num_batches(n: int, batch_size: int) -> int:
  return math.ceil(n / batch_size)
