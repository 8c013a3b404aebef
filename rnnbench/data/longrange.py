"""Generated long-range tasks: ``listops``, ``recall`` and ``delay`` (``config.data.name``).

Every text is its tokens separated by single spaces; the texts keep ``[``, ``]`` and ``?``, so
the task configs set ``config.data.filters = ""`` (configs/tasks/). Everything is a
deterministic function of the seed; train and test come from separate random streams, so the
size of one subset does not change the other.

* ``listops`` (Nangia & Bowman 2018; Long Range Arena, Tay et al. 2021), by the rules of LRA's
  generator: a node at depth ``d < max_depth`` (the root has depth 1) is an operator with
  probability ``OPERATOR_P`` (else a digit 0-9; at ``max_depth`` always a digit); an operator
  is one of MAX, MIN, MED (the median, truncated to an int), SM (the sum mod 10) over
  ``randint(2, max_args)`` children, written ``[OP child ... ]``. Trees whose token count is
  outside ``[min_length, max_length]`` are drawn again. The label is the value, "0".."9".
* ``recall`` (associative recall, MQAR-style): ``num_pairs`` pairs ``k<i> v<j>`` with distinct
  keys out of ``num_keys``, values out of ``num_values``, then ``?`` and a key that appeared;
  the label is its value ``j`` (names "v0", "v1", ...).
* ``delay``: the first token ``s<j>`` names the class ``j``, then ``length - 1`` distractors
  ``n<k>``, ``k < vocab_size`` (names "s0", "s1", ...). Any pooling but ``last`` sees the
  answer at once; the task config sets ``model.pooling = "last"``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from rnnbench.data.base import TextClassificationData, TextDataset, from_subsets

OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
END = "]"
OPERATOR_P = 0.25  # LRA's VALUE_P: the chance that a node above max_depth is an operator
_STREAMS = {"train": 1, "test": 2}
_MAX_TRIES = 1000  # draws per accepted ListOps tree before giving up on the length range


def apply_operator(op: str, values: list[int]) -> int:
  """The value of ``[OP values ]``: MAX, MIN, MED (median truncated to int), SM (sum mod 10)."""
  if op == "[MAX":
    return max(values)
  if op == "[MIN":
    return min(values)
  if op == "[MED":
    return int(np.median(values))
  if op == "[SM":
    return sum(values) % 10
  raise ValueError(f"unknown ListOps operator {op!r}; known: {', '.join(OPERATORS)}")


class _TooLong(Exception):
  pass


def _tree(rng: np.random.Generator, depth: int, max_depth: int, max_args: int,
          tokens: list[str], budget: int) -> int:
  """Appends one random (sub)tree's tokens to ``tokens`` and returns its value."""
  if len(tokens) >= budget:
    raise _TooLong
  if depth < max_depth and rng.random() < OPERATOR_P:
    op = OPERATORS[rng.integers(len(OPERATORS))]
    tokens.append(op)
    values = [_tree(rng, depth + 1, max_depth, max_args, tokens, budget)
              for _ in range(int(rng.integers(2, max_args + 1)))]
    tokens.append(END)
    return apply_operator(op, values)
  value = int(rng.integers(10))
  tokens.append(str(value))
  return value


def listops_example(rng: np.random.Generator, min_length: int, max_length: int,
                    max_depth: int, max_args: int) -> tuple[str, int]:
  """One ListOps text with ``min_length <= tokens <= max_length``, and its value."""
  for _ in range(_MAX_TRIES):
    tokens: list[str] = []
    try:
      value = _tree(rng, 1, max_depth, max_args, tokens, max_length + 1)
    except _TooLong:
      continue
    if min_length <= len(tokens) <= max_length:
      return " ".join(tokens), value
  raise ValueError(
      f"no ListOps tree of {min_length}..{max_length} tokens in {_MAX_TRIES} draws with "
      f"max_depth={max_depth}, max_args={max_args}; widen data.listops.min_length/max_length "
      "or raise max_depth/max_args")


def make_listops(n: int, rng: np.random.Generator, *, min_length: int, max_length: int,
                 max_depth: int, max_args: int, **unused: Any) -> tuple[list[str], np.ndarray]:
  del unused
  if not 1 <= min_length <= max_length:
    raise ValueError(f"data.listops needs 1 <= min_length <= max_length, got {min_length}, "
                     f"{max_length}")
  if max_depth < 1 or max_args < 2:
    raise ValueError(f"data.listops needs max_depth >= 1 and max_args >= 2, got {max_depth}, "
                     f"{max_args}")
  pairs = [listops_example(rng, min_length, max_length, max_depth, max_args) for _ in range(n)]
  return [t for t, _ in pairs], np.array([v for _, v in pairs], np.int64)


def make_recall(n: int, rng: np.random.Generator, *, num_keys: int, num_values: int,
                num_pairs: int, **unused: Any) -> tuple[list[str], np.ndarray]:
  del unused
  if not 1 <= num_pairs <= num_keys or num_values < 2:
    raise ValueError(f"data.recall needs 1 <= num_pairs <= num_keys and num_values >= 2, got "
                     f"num_pairs={num_pairs}, num_keys={num_keys}, num_values={num_values}")
  keys = np.argsort(rng.random((n, num_keys)), axis=1)[:, :num_pairs]  # distinct per row
  values = rng.integers(num_values, size=(n, num_pairs))
  asked = rng.integers(num_pairs, size=n)
  texts = [" ".join(f"k{k} v{v}" for k, v in zip(ks, vs)) + f" ? k{ks[q]}"
           for ks, vs, q in zip(keys, values, asked)]
  return texts, values[np.arange(n), asked].astype(np.int64)


def make_delay(n: int, rng: np.random.Generator, *, num_classes: int, length: int,
               vocab_size: int, **unused: Any) -> tuple[list[str], np.ndarray]:
  del unused
  if num_classes < 2 or length < 1 or vocab_size < 1:
    raise ValueError(f"data.delay needs num_classes >= 2, length >= 1 and vocab_size >= 1, "
                     f"got {num_classes}, {length}, {vocab_size}")
  labels = rng.integers(num_classes, size=n)
  noise = rng.integers(vocab_size, size=(n, length - 1))
  texts = [" ".join([f"s{j}", *(f"n{k}" for k in row)]) for j, row in zip(labels, noise)]
  return texts, labels.astype(np.int64)


# name -> (generator, class names from the task's fields)
TASKS: dict[str, tuple[Callable[..., tuple[list[str], np.ndarray]],
                       Callable[[dict[str, Any]], list[str]]]] = {
    "listops": (make_listops, lambda f: [str(v) for v in range(10)]),
    "recall": (make_recall, lambda f: [f"v{j}" for j in range(f["num_values"])]),
    "delay": (make_delay, lambda f: [f"s{j}" for j in range(f["num_classes"])]),
}


def make(task: str, subset: str, fields: dict[str, Any], seed: int = 0) -> TextDataset:
  """The ``subset`` ('train' or 'test') of ``task``, sized by ``fields`` (its config section).

  The last few subsets made are kept in memory (a comparison trains every cell on the same
  (task, seed)); the caller gets its own copy of the texts and labels.
  """
  out = _make(task, subset, tuple(sorted(fields.items())), int(seed))
  return TextDataset(data=list(out.data), target=out.target.copy(),
                     target_names=list(out.target_names))


@functools.lru_cache(maxsize=4)
def _make(task: str, subset: str, items: tuple[tuple[str, Any], ...], seed: int) -> TextDataset:
  fields = dict(items)
  generate, names = TASKS[task]
  n = int(fields[f"num_{subset}"])
  if n < 0:
    raise ValueError(f"data.{task}.num_{subset} must be >= 0, got {n}")
  rng = np.random.default_rng([seed, _STREAMS[subset], sorted(TASKS).index(task)])
  texts, labels = generate(n, rng, **fields)
  return TextDataset(data=texts, target=labels, target_names=names(fields))


def loader(task: str) -> Callable[[Any, int], TextClassificationData]:
  """``load(data_config, seed)`` for ``task``, reading ``data_config.<task>``."""

  def load(data_config: Any, seed: int = 0) -> TextClassificationData:
    fields = dict(data_config[task])
    return from_subsets(make(task, "train", fields, seed), make(task, "test", fields, seed))

  load.__doc__ = f"Train and test subsets of {task!r}, sized by ``data_config.{task}``."
  return load
