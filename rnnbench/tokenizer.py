"""A fast, pure numpy/Python twin of keras_preprocessing 1.1.2's Tokenizer and pad_sequences.

Outputs are identical to Keras' (the same ``word_counts`` order, ``word_index`` including its
tie order, the same sequences and padded arrays); only the work is organised differently:

* str texts are lower-cased and encoded as UTF-8 text by text, then split, keyed and grouped
  (one sort of hash|position words) in numpy over all their bytes, in chunks: no Python
  object per token (``_encode_texts``); other inputs (lists of tokens, char_level) are split
  with C-level string methods and numbered in one dict pass;
* ``fit_on_texts`` keeps the token ids of the texts it has just read, so that
  ``texts_to_sequences`` on those same text objects (checked by identity, with unchanged
  tokenisation settings) only maps a numpy array; other str texts are numbered as in fit;
* ``pad_sequences`` assigns each row straight from its list.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'

_JSON_FORMAT = "rnnbench.Tokenizer"
_JSON_VERSION = 1


def text_to_word_sequence(text: str, filters: str = DEFAULT_FILTERS, lower: bool = True,
                          split: str = " ") -> list[str]:
  """Keras' word splitter: lower-case, turn filter characters into ``split``, split."""
  if lower:
    text = text.lower()
  text = text.translate(str.maketrans({c: split for c in filters}))
  return [w for w in text.split(split) if w]


class _Splitter:
  """Tokenises texts exactly as ``text_to_word_sequence`` does, but faster.

  ``s.split()`` (no argument) equals ``[w for w in s.split(sep) if w]`` when ``sep`` is a
  single whitespace character and ``s`` holds no other whitespace; that is checked per text
  (cheaply for sep ' ': every other whitespace character is non-printable).
  """

  def __init__(self, filters: str, lower: bool, split: str):
    self.lower = lower
    self.split = split
    self.table = str.maketrans({c: split for c in filters})
    self.plain_split = len(split) == 1 and split.isspace()
    self.other_space = re.compile(r"[^\S" + re.escape(split) + "]")

  def __call__(self, text: str) -> list[str]:
    if self.lower:
      text = text.lower()
    text = text.translate(self.table)
    if self.plain_split and ((self.split == " " and text.isprintable())
                             or self.other_space.search(text) is None):
      return text.split()
    return list(filter(None, text.split(self.split)))


class Tokenizer:
  """keras_preprocessing.text.Tokenizer with the same attributes and results.

  ``num_words`` keeps indices below ``num_words`` (the ``num_words - 1`` most frequent
  words); index 0 is never assigned; ``oov_token`` (if set) gets index 1.

  After ``fit_on_texts`` it holds the token ids of the texts it read (4 bytes a token) until
  the next fit, so that ``texts_to_sequences`` on the same text objects is quick.
  """

  def __init__(self, num_words: int | None = None, filters: str = DEFAULT_FILTERS,
               lower: bool = True, split: str = " ", char_level: bool = False,
               oov_token: Any = None, document_count: int = 0):
    self.num_words = num_words
    self.filters = filters
    self.lower = lower
    self.split = split
    self.char_level = char_level
    self.oov_token = oov_token
    self.document_count = document_count
    self.word_counts: collections.OrderedDict[Any, int] = collections.OrderedDict()
    self.word_docs: collections.defaultdict[Any, int] = collections.defaultdict(int)
    self.index_docs: collections.defaultdict[int, int] = collections.defaultdict(int)
    self.word_index: dict[Any, int] = {}
    self.index_word: dict[int, Any] = {}
    self._memo: _Memo | None = None  # the last fit's token ids, see texts_to_sequences

  # Tokenisation.

  def _settings(self) -> tuple[Any, ...]:
    return (self.filters, self.lower, self.split, self.char_level)

  def _token_lists(self, texts: Iterable[Any]) -> Iterator[list[Any]]:
    """The token list of each text (a str, or a list of tokens), as Keras makes it."""
    splitter = _Splitter(self.filters, self.lower, self.split)
    for text in texts:
      if isinstance(text, list):
        yield [t.lower() for t in text] if self.lower else text
      elif self.char_level:
        yield list(text.lower() if self.lower else text)
      else:
        yield splitter(text)

  # Fitting.

  def _number(self, texts: Sequence[Any]) -> Numbered:
    """The texts' tokens numbered and counted, from their bytes when they are str."""
    numbered = None
    if not self.char_level and all(type(t) is str for t in texts):
      numbered = _encode_texts(texts, self.filters, self.lower, self.split,
                               with_doc_counts=True)
    if numbered is None:
      numbered = _encode(self._token_lists(texts))
      words, ids, lengths = numbered[:3]
      numbered = numbered._replace(counts=np.bincount(ids, minlength=len(words)),
                                   doc_counts=_doc_freq(ids, lengths, len(words)))
    return numbered

  def fit_on_texts(self, texts: Iterable[Any]) -> None:
    """Updates the vocabulary from texts (strings, or lists of tokens)."""
    texts = _as_list(texts)
    numbered = self._number(texts)
    words, counts = numbered.words, numbered.counts
    doc_counts = numbered.doc_counts.tolist()
    # Then word_counts and word_docs will hold the words in the order of ``words``.
    first_fit = not self.word_counts and not self.word_docs
    self.document_count += len(texts)
    _add_counts(self.word_counts, words, counts.tolist())
    _add_counts(self.word_docs, words, doc_counts)

    sorted_voc = [] if self.oov_token is None else [self.oov_token]
    if first_fit:  # Keras' stable sort by decreasing count, on the arrays
      by_count = np.argsort(-counts, kind="stable")
      sorted_voc.extend(map(words.__getitem__, by_count.tolist()))
    else:
      sorted_voc.extend(_by_count(self.word_counts))
    self.word_index = word_index = dict(zip(sorted_voc, range(1, len(sorted_voc) + 1)))
    self.index_word = dict(zip(word_index.values(), word_index))
    if first_fit and len(word_index) == len(sorted_voc):  # (oov_token not also a word)
      index = np.empty(len(words), np.int64)  # word_index[w] for w in words
      index[by_count] = np.arange(len(sorted_voc) - len(words) + 1, len(sorted_voc) + 1)
      self.index_docs.update(zip(index.tolist(), doc_counts))
    else:
      self.index_docs.update(zip(map(word_index.__getitem__, self.word_docs),
                                 self.word_docs.values()))

    # Only str texts are immutable, so only they can be recognised again by identity.
    self._memo = None
    if all(type(t) is str for t in texts):
      self._memo = _Memo(tuple(texts), self._settings(), numbered)

  def fit_on_sequences(self, sequences: Sequence[Sequence[int]]) -> None:
    """Updates ``index_docs`` from integer sequences, as Keras does."""
    self.document_count += len(sequences)
    for seq in sequences:
      for i in set(seq):
        self.index_docs[i] += 1

  # Texts to sequences.

  def texts_to_sequences(self, texts: Iterable[Any]) -> list[list[int]]:
    """Each text as a list of word indices (unknown words dropped, or ``oov_token``)."""
    texts = _as_list(texts)
    oov = self.word_index.get(self.oov_token)
    if (oov is None) != (self.oov_token is None):
      # Odd states (oov_token set but not in word_index: Keras appends None for unknown
      # words; or a None key in word_index): follow Keras' per-token rules.
      return [self._keras_sequence(t) for t in self._token_lists(texts)]
    # Every other case: words past num_words and unknown words both become ``oov``, or are
    # dropped when it is None.
    memo = self._memo
    if memo is not None and memo.matches(texts, self._settings()):
      numbered = memo.numbered
    elif not self.char_level and all(type(t) is str for t in texts):
      numbered = _encode_texts(texts, self.filters, self.lower, self.split)
    else:
      numbered = None
    if numbered is not None:
      sequences = _sequences(*numbered[:3], self.word_index, self.num_words, oov)
      if sequences is not None:
        return sequences
    num_words = self.num_words
    if num_words:
      kept = {w: i for w, i in self.word_index.items() if i < num_words}
    else:
      kept = self.word_index
    get = kept.get
    tokens = self._token_lists(texts)
    if oov is not None:
      return [[get(w, oov) for w in t] for t in tokens]
    if all(kept.values()):  # then filter(None) drops exactly the Nones
      return [list(filter(None, map(get, t))) for t in tokens]
    return [[i for i in map(get, t) if i is not None] for t in tokens]

  def _keras_sequence(self, tokens: list[Any]) -> list[Any]:
    """Keras' per-token loop, for the odd states the fast paths leave out."""
    num_words = self.num_words
    oov = self.word_index.get(self.oov_token)
    out = []
    for w in tokens:
      i = self.word_index.get(w)
      if i is not None:
        if num_words and i >= num_words:
          if oov is not None:
            out.append(oov)
        else:
          out.append(i)
      elif self.oov_token is not None:
        out.append(oov)
    return out

  def sequences_to_texts(self, sequences: Iterable[Sequence[int]]) -> list[str]:
    """Each sequence back to a space-joined string of its (kept) words."""
    num_words = self.num_words
    oov = self.word_index.get(self.oov_token)
    texts = []
    for seq in sequences:
      words = []
      for i in seq:
        word = self.index_word.get(i)
        if word is not None:
          if num_words and i >= num_words:
            if oov is not None:
              words.append(self.index_word[oov])
          else:
            words.append(word)
        elif self.oov_token is not None:
          words.append(self.index_word[oov])
      texts.append(" ".join(words))
    return texts

  # Serialisation.

  def get_config(self) -> dict[str, Any]:
    """The constructor arguments and the fitted state, as plain JSON-able values."""
    return {
        "num_words": self.num_words,
        "filters": self.filters,
        "lower": self.lower,
        "split": self.split,
        "char_level": self.char_level,
        "oov_token": self.oov_token,
        "document_count": self.document_count,
        "word_counts": list(self.word_counts.items()),
        "word_docs": list(self.word_docs.items()),
        "index_docs": list(self.index_docs.items()),
        "word_index": list(self.word_index.items()),
        "index_word": list(self.index_word.items()),
    }

  def to_json(self, **kwargs: Any) -> str:
    """A JSON string that ``Tokenizer.from_json`` turns back into an equal tokenizer."""
    return json.dumps({"format": _JSON_FORMAT, "version": _JSON_VERSION,
                       "config": self.get_config()}, **kwargs)

  @classmethod
  def from_json(cls, json_string: str) -> Tokenizer:
    """The tokenizer that ``to_json`` wrote; a clear ValueError for anything else."""
    try:
      payload = json.loads(json_string)
    except (TypeError, ValueError) as e:
      raise ValueError(f"not a tokenizer JSON string ({e})") from None
    if not isinstance(payload, dict) or payload.get("format") != _JSON_FORMAT:
      raise ValueError(f"not a tokenizer written by {_JSON_FORMAT}.to_json() (expected a "
                       f"JSON object with \"format\": \"{_JSON_FORMAT}\")")
    if payload.get("version") != _JSON_VERSION:
      raise ValueError(f"unsupported {_JSON_FORMAT} JSON version {payload.get('version')!r} "
                       f"(this code reads version {_JSON_VERSION})")
    try:
      config = dict(payload["config"])
      state = {k: config.pop(k) for k in ("word_counts", "word_docs", "index_docs",
                                          "word_index", "index_word")}
      tok = cls(**config)
      tok.word_counts = collections.OrderedDict(map(tuple, state["word_counts"]))
      tok.word_docs = collections.defaultdict(int, map(tuple, state["word_docs"]))
      tok.index_docs = collections.defaultdict(int, map(tuple, state["index_docs"]))
      tok.word_index = dict(map(tuple, state["word_index"]))
      tok.index_word = dict(map(tuple, state["index_word"]))
    except (KeyError, TypeError, ValueError) as e:
      raise ValueError(f"malformed {_JSON_FORMAT} JSON ({type(e).__name__}: {e})") from None
    return tok


def _as_list(texts: Iterable[Any]) -> Sequence[Any]:
  return texts if isinstance(texts, (list, tuple)) else list(texts)


class Numbered(NamedTuple):
  """The tokens of some texts, numbered."""
  words: list[Any]  # the distinct tokens, in first-seen order
  ids: np.ndarray  # (tokens,) int32: each token's index in ``words``, text after text
  lengths: np.ndarray  # (texts,) int64: the number of tokens of each text
  counts: np.ndarray | None = None  # (len(words),) int64: how often each word occurs
  doc_counts: np.ndarray | None = None  # (len(words),) int64: in how many texts


def _encode(token_lists: Iterable[list[Any]]) -> Numbered:
  """Numbers the tokens of all texts in one dict pass."""
  # Text by text, so that each text's token strings are freed at once. setdefault keeps the
  # first position of every token; the dict's keys are the words in first-seen order.
  first: dict[Any, int] = {}
  setdefault = first.setdefault
  positions = itertools.count()
  pos, lengths = [], []
  for tokens in token_lists:
    lengths.append(len(tokens))
    pos.extend(map(setdefault, tokens, positions))  # map stops before taking a position
  pos = np.array(pos, dtype=np.int64)
  words = list(first)
  first_pos = np.fromiter(first.values(), dtype=np.int64, count=len(words))
  dense = np.zeros(len(pos), dtype=np.int32)
  dense[first_pos] = np.arange(len(words), dtype=np.int32)
  return Numbered(words, dense[pos], np.array(lengths, dtype=np.int64))


_BYTE_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(9)], dtype=np.uint64)
_LONG_TOKEN = np.uint64(0xFF << 56)  # the second key word of tokens of over 15 bytes
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9))
_CHUNK = 1 << 18


@contextlib.contextmanager
def _small_pages() -> Iterator[None]:
  """Asks numpy not to back its new arrays with transparent huge pages, for a while.

  The tokenizer's big arrays live for milliseconds, and on this project's machines faulting
  in a fresh huge page costs more than the passes over it (measured: a fit that follows a
  Keras fit in the same process spends several times less kernel time without them). This
  is numpy's NUMPY_MADVISE_HUGEPAGE setting, for this code only; a no-op where numpy has no
  such switch.
  """
  multiarray = getattr(getattr(np, "_core", None), "multiarray", None)
  set_hugepage = getattr(multiarray, "_set_madvise_hugepage", None)
  if set_hugepage is None:
    yield
    return
  previous = set_hugepage(False)
  try:
    yield
  finally:
    set_hugepage(previous)


@_small_pages()
def _encode_texts(texts: Sequence[str], filters: str, lower: bool, split: str,
                  with_doc_counts: bool = False) -> Numbered | None:
  """``_encode`` for str texts split as Keras does, done on all their UTF-8 bytes at once.

  Keras' tokens are the runs of characters between ``split`` characters once each filter
  character is replaced by ``split``. An ASCII character is one byte in UTF-8, and no other
  character's bytes contain it; so the tokens are the runs of bytes between split bytes once
  the ASCII filter bytes are replaced by the split byte (other filters are replaced in the
  str). Every token is then keyed exactly by two integers: its first 8 bytes, and its next 7
  bytes with its length (tokens of over 15 bytes: their number in a dict instead), and
  ``_group`` puts equal keys, and only them, together.

  Returns:
    What ``_encode`` returns, with ``counts`` (and ``doc_counts`` if ``with_doc_counts``), or
    None when ``split`` is not one ASCII character or a text cannot be encoded in UTF-8 (a
    lone surrogate): then ``_encode`` must do it.
  """
  if len(split) != 1 or not split.isascii():
    return None
  sep = ord(split)
  # Each byte is lowered (ASCII letters, if lower) and then filtered, so that str.lower and
  # the other filters are only for the texts that are not all ASCII (lowered, they hold no
  # ASCII capitals); not when lowering would change the split bytes those filters insert.
  fold = lower and split.lower() == split
  ascii_filters = {ord(c) for c in filters if c.isascii()}
  lowered = bytes(range(256)).lower() if fold else bytes(range(256))
  byte_table = bytes(sep if b in ascii_filters else b for b in lowered)
  docs = [t if fold and t.isascii() else t.lower() for t in texts] if lower else texts
  other_filters = {c: split for c in filters if not c.isascii()}
  if other_filters:
    table = str.maketrans(other_filters)
    docs = [t if t.isascii() else t.translate(table) for t in docs]
  try:  # (an all-ASCII text is one byte a character)
    not_ascii = {i: t.encode("utf-8") for i, t in enumerate(docs) if not t.isascii()}
  except UnicodeEncodeError:
    return None
  spans = np.fromiter(map(len, docs), np.int64, len(docs)) + 1  # with the separator
  spans[list(not_ascii)] = [len(e) + 1 for e in not_ascii.values()]
  text_starts = np.cumsum(spans) - spans  # each text's first byte
  # Every text's bytes, each followed by the split byte, and 15 spare split bytes for the
  # 8-byte reads below, written into one buffer text by text (no copy of them all).
  corpus = bytearray(int(spans.sum()) + 15)
  buf = np.frombuffer(corpus, np.uint8)
  buf.fill(sep)
  for i, (t, a) in enumerate(zip(docs, text_starts.tolist())):
    encoded = not_ascii[i] if i in not_ascii else t.encode()
    corpus[a:a + len(encoded)] = encoded.translate(byte_table)
  del docs, not_ascii
  words8 = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=corpus, strides=(1,))
  # Chunks of whole texts (a token never spans two) keep every temporary small: touching
  # fresh memory costs more here than the numpy passes themselves.
  bounds = np.append(text_starts, len(buf))
  cuts = np.unique(np.concatenate([
      [0], bounds[np.searchsorted(bounds, np.arange(0, len(buf), _CHUNK))], [len(buf)]]))
  chunk_starts, chunk_bytes = [], []
  offset_type = np.int32 if len(buf) < 2**31 else np.int64
  for a, b in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
    in_token = np.zeros(b - a + 1, bool)
    np.not_equal(buf[a:b], sep, out=in_token[1:])  # the chunk ends with a split byte
    edges = np.flatnonzero(in_token[1:] != in_token[:-1])
    chunk_starts.append((edges[0::2] + a).astype(offset_type))
    chunk_bytes.append((edges[1::2] - edges[0::2]).astype(offset_type))
  starts = np.concatenate(chunk_starts)  # each token's bytes: buf[start:start + num_bytes]
  num_bytes = np.concatenate(chunk_bytes)
  del chunk_starts, chunk_bytes, in_token, edges
  n = len(starts)
  lengths = np.diff(np.append(np.searchsorted(starts, text_starts), n))
  if not n:
    empty = np.zeros(0, np.int64)
    return Numbered([], np.zeros(0, np.int32), lengths, empty, empty if with_doc_counts else None)

  numbers: dict[bytes, int] = {}  # of the tokens of over 15 bytes

  def keys(at: slice | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _keys(corpus, words8, starts[at], num_bytes[at], numbers)

  order, new = _group(n, keys)
  group_starts = np.flatnonzero(new)  # where each group begins in order
  by_first = order[group_starts]  # each group's first position
  rank = np.argsort(by_first)  # the groups in first-seen order
  firsts = by_first[rank]
  word_of_group = np.empty(len(rank), np.int32)
  word_of_group[rank] = np.arange(len(rank), dtype=np.int32)
  sizes = np.diff(group_starts, append=n)
  ids = np.empty(n, np.int32)
  ids[order] = np.repeat(word_of_group, sizes)
  # Unequal keys whose hashes agree (rare) share a group: the tokens whose key is not their
  # word's first become words of their own.
  first0, first1 = keys(firsts)
  odd = []
  for i in range(0, n, _CHUNK):
    k0, k1 = keys(slice(i, i + _CHUNK))
    word = ids[i:i + _CHUNK]
    odd.append(i + np.flatnonzero((k0 != first0[word]) | (k1 != first1[word])))
  odd = np.concatenate(odd)
  if odd.size:
    ids, firsts = _split_off(ids, firsts, odd, *keys(odd))
  first_starts, word_bytes = starts[firsts], num_bytes[firsts]
  del starts, num_bytes
  if odd.size:
    counts = np.bincount(ids, minlength=len(firsts))
    doc_counts = _doc_freq(ids, lengths, len(firsts)) if with_doc_counts else None
  else:  # each word's tokens are a run of order
    counts = sizes[rank]
    doc_counts = None
    if with_doc_counts:
      # A group's positions increase, so its first in each text follows one in another text.
      # (The smallest type for the text numbers: a smaller table for the scattered reads.)
      text_type = next(t for t in (np.uint16, np.uint32, np.uint64)
                       if len(spans) <= np.iinfo(t).max)
      text_of = np.repeat(np.arange(len(spans), dtype=text_type), lengths)[order]
      first_in_text = new
      first_in_text[1:] |= text_of[1:] != text_of[:-1]
      doc_counts = np.add.reduceat(first_in_text, group_starts, dtype=np.int64)[rank]
  del order, new

  # The distinct tokens' bytes, each followed by the split byte, decoded at once.
  total = int(word_bytes.sum())
  source = np.repeat(first_starts - (np.cumsum(word_bytes) - word_bytes), word_bytes)
  joined = np.full(total + len(firsts), sep, np.uint8)
  joined[np.arange(total) + np.repeat(np.arange(len(firsts)), word_bytes)] = (
      buf[source + np.arange(total)])
  words = joined.tobytes().decode("utf-8").split(split)[:-1]
  return Numbered(words, ids, lengths, counts, doc_counts)


def _keys(corpus: bytearray, words8: np.ndarray, starts: np.ndarray, num_bytes: np.ndarray,
          numbers: dict[bytes, int]) -> tuple[np.ndarray, np.ndarray]:
  """The key of each token (``num_bytes`` bytes at ``starts`` of ``corpus``): two uint64.

  ``words8`` are the 8 bytes at each offset of corpus (little-endian), which ends with at
  least 15 spare bytes; ``numbers`` numbers the tokens of over 15 bytes (it grows).
  """
  k0 = words8[starts]
  k0 &= _BYTE_MASKS[np.minimum(num_bytes, 8)]
  k1 = num_bytes.astype(np.uint64)
  k1 <<= np.uint64(56)
  more = np.flatnonzero(num_bytes > 8)
  k1[more] |= words8[starts[more] + 8] & _BYTE_MASKS[np.minimum(num_bytes[more] - 8, 8)]
  long_tokens = more[num_bytes[more] > 15]
  if long_tokens.size:
    k0[long_tokens] = [numbers.setdefault(bytes(corpus[a:a + m]), len(numbers)) for a, m in
                       zip(starts[long_tokens].tolist(), num_bytes[long_tokens].tolist())]
    k1[long_tokens] = _LONG_TOKEN
  return k0, k1


def _group(n: int, keys: Callable[[slice], tuple[np.ndarray, np.ndarray]]
           ) -> tuple[np.ndarray, np.ndarray]:
  """The positions of ``n`` keys, ``keys(positions)`` giving two (len,) uint64 words each,
  grouped by hash.

  Returns:
    ``order``, (n,) int64: every position once, in groups, each group's increasing;
    ``new``, (n,) bool: where a group begins in ``order``. The groups are those of the high
    bits of a 64-bit hash of the keys: equal keys always share one, but unequal keys can too
    (rarely). The hash sits above the position in one 64-bit word, so one sort of those words
    (not an argsort) groups them.
  """
  low = np.uint64((1 << max(1, (n - 1).bit_length())) - 1)  # the position's bits
  packed = np.empty(n, np.uint64)
  for i in range(0, n, _CHUNK):  # (in chunks: temporaries of _CHUNK items, not n)
    k0, k1 = keys(slice(i, i + _CHUNK))
    chunk = packed[i:i + _CHUNK]
    np.multiply(k1, _MIX[0], out=chunk)
    chunk += k0
    chunk *= _MIX[1]
    chunk &= ~low
    chunk |= np.arange(i, i + len(chunk), dtype=np.uint64)
  packed.sort()
  new = np.ones(n, bool)
  for i in range(1, n, _CHUNK):
    j = min(i + _CHUNK, n)
    np.greater(packed[i:j] ^ packed[i - 1:j - 1], low, out=new[i:j])
  packed &= low
  return packed.view(np.int64), new


def _split_off(ids: np.ndarray, firsts: np.ndarray, odd: np.ndarray, k0: np.ndarray,
               k1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``ids`` and ``firsts`` once the tokens at positions ``odd`` are words of their own.

  ``ids`` (n,) numbers the tokens by the first positions ``firsts`` (increasing) of their
  words; ``odd`` are the positions (increasing) whose key, ``(k0, k1)`` (len(odd),) each, is
  not that of their word's first position. Returns the same for the words that equal keys,
  and only they, make.
  """
  by_key = np.lexsort((k1, k0))  # stable: the positions of a key stay increasing
  odd, k0, k1 = odd[by_key], k0[by_key], k1[by_key]
  odd_new = np.ones(len(odd), bool)
  odd_new[1:] = (k0[1:] != k0[:-1]) | (k1[1:] != k1[:-1])
  ids = ids.copy()
  ids[odd] = len(firsts) + np.cumsum(odd_new) - 1
  firsts = np.concatenate([firsts, odd[odd_new]])
  rank = np.argsort(firsts)
  renumber = np.empty(len(rank), np.int32)
  renumber[rank] = np.arange(len(rank), dtype=np.int32)
  return renumber[ids], firsts[rank]


def _doc_freq(ids: np.ndarray, lengths: np.ndarray, vocab_size: int) -> np.ndarray:
  """In how many documents each id occurs (the documents' ids lie one after another)."""
  dtype = np.uint32 if len(lengths) * vocab_size < 2**32 else np.int64  # sorts faster
  pairs = np.repeat(np.arange(len(lengths), dtype=dtype) * dtype(vocab_size), lengths)
  pairs += ids.astype(dtype)
  pairs.sort()
  new = np.ones(len(pairs), dtype=bool)
  np.not_equal(pairs[1:], pairs[:-1], out=new[1:])
  return np.bincount(pairs[new] % max(vocab_size, 1), minlength=vocab_size)


class _Memo:
  """The numbered tokens of the texts last fitted on, to map those same texts again."""

  def __init__(self, texts: tuple[str, ...], settings: tuple[Any, ...], numbered: Numbered):
    self.texts = texts
    self.settings = settings
    self.numbered = numbered

  def matches(self, texts: Sequence[Any], settings: tuple[Any, ...]) -> bool:
    return (settings == self.settings and len(texts) == len(self.texts)
            and all(map(operator.is_, texts, self.texts)))


@_small_pages()
def _sequences(words: list[Any], ids: np.ndarray, lengths: np.ndarray,
               word_index: dict[Any, Any], num_words: int | None,
               oov: int | None) -> list[list[int]] | None:
  """Keras' sequences of numbered texts; None when word_index holds non-int values."""
  values = list(map(word_index.get, words))
  if not values or not set(map(type, values)) <= {int, type(None)}:
    return None
  # An object array hands out the very int objects of word_index: no new ints to make.
  lut = np.array(values, dtype=object)
  drop = np.equal(lut, None)
  try:
    ints = np.where(drop, 0, lut).astype(np.int64)
  except OverflowError:
    return None
  if (ints < 0).any():
    return None
  if num_words:
    drop |= ints >= num_words
  lut[drop] = oov
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  if oov is None and drop.any():
    kept = ~drop[ids]
    ids = ids[kept]
    offsets = np.concatenate([[0], np.cumsum(kept)])[offsets]
  bounds = offsets.tolist()
  flat = lut[ids]
  with _gc_paused():
    return [flat[a:b].tolist() for a, b in zip(bounds[:-1], bounds[1:])]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
  """Pauses Python's cycle collector, which would walk every live object over and over while
  millions of list items are made (and lists of ints hold no cycles for it to find)."""
  enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if enabled:
      gc.enable()


def _by_count(counts: dict[Any, int]) -> list[Any]:
  """The keys by decreasing count, ties in key order: Keras' stable reverse sort."""
  values = np.array(list(counts.values()))
  if values.dtype.kind not in "iu":  # not plain ints: let Python compare them
    return sorted(counts, key=counts.__getitem__, reverse=True)
  keys = list(counts)
  return list(map(keys.__getitem__, np.argsort(-values, kind="stable").tolist()))


def _add_counts(target: dict[Any, int], words: list[Any], counts: list[int]) -> None:
  """``target[w] += c`` for each pair, adding new words at the end in the given order."""
  if not target:
    target.update(zip(words, counts))
    return
  get = target.get
  for w, c in zip(words, counts):
    target[w] = get(w, 0) + c


def pad_sequences(sequences: Sequence[Sequence[Any]], maxlen: int | None = None,
                  dtype: Any = "int32", padding: str = "pre", truncating: str = "pre",
                  value: Any = 0.0) -> np.ndarray:
  """keras_preprocessing.sequence.pad_sequences: a (num_samples, maxlen) array."""
  if not hasattr(sequences, "__len__"):
    raise ValueError("`sequences` must be iterable.")
  try:
    lengths = [len(x) for x in sequences]
  except TypeError:
    bad = next(x for x in sequences if not hasattr(x, "__len__"))
    raise ValueError("`sequences` must be a list of iterables. Found non-iterable: "
                     + str(bad)) from None
  first = next((x for x in sequences if len(x)), None)
  sample_shape = () if first is None else np.asarray(first).shape[1:]
  if maxlen is None:
    if not lengths:
      raise ValueError("pad_sequences needs maxlen when there are no sequences")
    maxlen = max(lengths)
  is_str_dtype = np.issubdtype(dtype, np.str_)
  if isinstance(value, str) and dtype != object and not is_str_dtype:
    raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
                     "You should set `dtype=object` for variable length strings.")
  x = np.full((len(sequences), maxlen) + sample_shape, value, dtype=dtype)
  if first is None:
    return x
  if truncating not in ("pre", "post"):
    raise ValueError(f'Truncating type "{truncating}" not understood')
  if padding not in ("pre", "post"):
    raise ValueError(f'Padding type "{padding}" not understood')

  if not sample_shape and maxlen > 0 and (np.issubdtype(x.dtype, np.number)
                                           or x.dtype == np.bool_):
    try:  # numpy converts each row as it assigns it
      _fill(x, sequences, lengths, maxlen, padding, truncating, sample_shape=None)
      return x
    except (TypeError, ValueError):
      pass  # items that are not scalars: Keras' row checks below give its exact error
  _fill(x, sequences, lengths, maxlen, padding, truncating, sample_shape)
  return x


def _fill(x: np.ndarray, sequences: Sequence[Sequence[Any]], lengths: list[int], maxlen: int,
          padding: str, truncating: str, sample_shape: tuple[int, ...] | None) -> None:
  """Copies each (truncated) sequence into its row of ``x``; checks shapes unless None."""
  for idx, (s, n) in enumerate(zip(sequences, lengths)):
    if not n:
      continue
    trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
    if sample_shape is not None:
      trunc = np.asarray(trunc, dtype=x.dtype)
      if trunc.shape[1:] != sample_shape:
        raise ValueError(f"Shape of sample {trunc.shape[1:]} of sequence at position {idx} "
                         f"is different from expected shape {sample_shape}")
    if padding == "post":
      x[idx, :len(trunc)] = trunc
    else:
      x[idx, -len(trunc):] = trunc
