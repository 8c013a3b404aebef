"""A generated text classification dataset with a learnable label signal.

Every class owns a few indicative words; a document is random background words (Zipf-like
frequencies over a made-up vocabulary) with some of its class's indicative words mixed in.
Everything is a deterministic function of the seed; the train and test documents come from
separate streams, so the size of one subset does not change the other.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rnnbench.data.base import TextClassificationData, TextDataset, from_subsets

WORDS_PER_CLASS = 5
SIGNAL_RATE = 0.08  # the share of a document's words drawn from its class's words
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_SYLLABLES = [c + v for c in _CONSONANTS for v in _VOWELS]


def vocabulary(vocab_size: int) -> list[str]:
  """``vocab_size`` distinct pronounceable lower-case words of equally many syllables."""
  width = max(2, math.ceil(math.log(max(vocab_size, 2), len(_SYLLABLES))))
  words = []
  for i in range(vocab_size):
    syllables = []
    for _ in range(width):
      i, r = divmod(i, len(_SYLLABLES))
      syllables.append(_SYLLABLES[r])
    words.append("".join(syllables))
  return words


def indicative_words(num_classes: int, vocab_size: int, seed: int = 0) -> list[list[str]]:
  """The words that signal each class (disjoint sets of ``WORDS_PER_CLASS``)."""
  _check(num_classes, vocab_size, doc_len=1)
  words = vocabulary(vocab_size)
  picks = np.random.default_rng([seed, 0]).permutation(vocab_size)
  return [[words[i] for i in picks[c * WORDS_PER_CLASS:(c + 1) * WORDS_PER_CLASS]]
          for c in range(num_classes)]


def make_synthetic(subset: str = "train", *, num_train: int = 2000, num_test: int = 500,
                   num_classes: int = 20, vocab_size: int = 5000, doc_len: int = 120,
                   seed: int = 0) -> TextDataset:
  """A subset ('train', 'test' or 'all' = train then test) of the generated dataset.

  Documents have between ``ceil(doc_len / 2)`` and ``doc_len`` words; labels are uniform.
  """
  if subset not in ("train", "test", "all"):
    raise ValueError(f"subset must be 'train', 'test' or 'all', got {subset!r}")
  _check(num_classes, vocab_size, doc_len)
  if num_train < 0 or num_test < 0:
    raise ValueError(f"num_train and num_test must be >= 0, got {num_train}, {num_test}")
  words = np.array(vocabulary(vocab_size), dtype=object)
  lang = np.random.default_rng([seed, 0])
  picks = lang.permutation(vocab_size)
  signal = picks[:num_classes * WORDS_PER_CLASS].reshape(num_classes, WORDS_PER_CLASS)
  weights = 1.0 / np.arange(1, vocab_size + 1) ** 1.1
  background = lang.permutation(vocab_size)  # which word has which frequency rank
  probs = np.empty(vocab_size)
  probs[background] = weights / weights.sum()

  texts, labels = [], []
  for name, stream, n in (("train", 1, num_train), ("test", 2, num_test)):
    if subset in (name, "all"):
      rng = np.random.default_rng([seed, stream])
      target = rng.integers(num_classes, size=n)
      tokens = rng.choice(vocab_size, size=(n, doc_len), p=probs)
      use_signal = rng.random((n, doc_len)) < SIGNAL_RATE
      own = signal[target[:, None], rng.integers(WORDS_PER_CLASS, size=(n, doc_len))]
      tokens = np.where(use_signal, own, tokens)
      lengths = rng.integers((doc_len + 1) // 2, doc_len + 1, size=n)
      texts += [" ".join(words[row[:k]]) for row, k in zip(tokens, lengths)]
      labels.append(target)
  return TextDataset(data=texts, target=np.concatenate(labels).astype(np.int64),
                     target_names=[f"class{c:02d}" for c in range(num_classes)])


def load(data_config: Any, seed: int = 0) -> TextClassificationData:
  """Train and test subsets sized by ``data_config.synthetic``."""
  cfg = data_config.synthetic
  kwargs = dict(num_train=cfg.num_train, num_test=cfg.num_test, num_classes=cfg.num_classes,
                vocab_size=cfg.vocab_size, doc_len=cfg.doc_len, seed=seed)
  return from_subsets(make_synthetic("train", **kwargs), make_synthetic("test", **kwargs))


def _check(num_classes: int, vocab_size: int, doc_len: int) -> None:
  if num_classes < 2:
    raise ValueError(f"num_classes must be >= 2, got {num_classes}")
  if vocab_size < num_classes * WORDS_PER_CLASS + 1:
    raise ValueError(f"vocab_size must be at least num_classes * {WORDS_PER_CLASS} + 1 = "
                     f"{num_classes * WORDS_PER_CLASS + 1}, got {vocab_size}")
  if doc_len < 1:
    raise ValueError(f"doc_len must be >= 1, got {doc_len}")
