"""rnnbench.tokenizer against its oracle, keras_preprocessing 1.1.2."""

import collections
import json

import numpy as np
import pytest
from keras_preprocessing import sequence as keras_sequence
from keras_preprocessing import text as keras_text

from rnnbench import data
from rnnbench import tokenizer as tok

if not hasattr(np, "unicode_"):  # keras_preprocessing's pad_sequences names it; NumPy 2 dropped it
  np.unicode_ = np.str_


@pytest.fixture(scope="session")
def news_home(tmp_path_factory):
  return tmp_path_factory.getbasetemp() / "news_home"  # shared with test_data.py


@pytest.fixture(scope="session")
def train_texts(news_archive, news_home):
  return data.fetch_20newsgroups("train", archive=news_archive, data_home=news_home).data


@pytest.fixture(scope="session")
def test_texts(news_archive, news_home):
  return data.fetch_20newsgroups("test", archive=news_archive, data_home=news_home).data


def assert_same_state(ours: tok.Tokenizer, keras: keras_text.Tokenizer) -> None:
  assert type(ours.word_counts) is collections.OrderedDict
  assert list(ours.word_counts.items()) == list(keras.word_counts.items())
  assert list(ours.word_index.items()) == list(keras.word_index.items())  # incl. tie order
  assert ours.index_word == keras.index_word
  assert dict(ours.word_docs) == dict(keras.word_docs)
  assert dict(ours.index_docs) == dict(keras.index_docs)
  assert ours.document_count == keras.document_count


def fit_both(texts, **kwargs):
  ours, keras = tok.Tokenizer(**kwargs), keras_text.Tokenizer(**kwargs)
  ours.fit_on_texts(texts)
  keras.fit_on_texts(texts)
  assert_same_state(ours, keras)
  return ours, keras


# The real data: the notebook's settings.


def test_newsgroups_train_like_keras(train_texts, test_texts):
  ours, keras = fit_both(train_texts, num_words=20000)
  assert len(ours.word_index) > 100_000
  seqs = ours.texts_to_sequences(train_texts)  # the fast path for the texts just fitted
  keras_seqs = keras.texts_to_sequences(train_texts)
  assert seqs == keras_seqs
  x = tok.pad_sequences(seqs, maxlen=100)
  keras_x = keras_sequence.pad_sequences(keras_seqs, maxlen=100)
  assert x.dtype == keras_x.dtype == np.int32 and x.shape == (11314, 100)
  np.testing.assert_array_equal(x, keras_x)
  assert ours.texts_to_sequences(test_texts[:2000]) == keras.texts_to_sequences(test_texts[:2000])


# Edge cases.

TEXTS = [
    "The cat sat on the mat. The END!",
    "",
    "!!!???...,,,;;;\t\n",
    "\r",
    "carriage\rreturn inside\r\nand at end\r",
    "tabs\tand\t\ttabs",
    "non\xa0breaking\u2009spaces\u3000here and\x0bvertical\x0cfeed \x1c\x1d sep",
    "naïve café ÉCOLE Straße ΣΟΦΟΣ İstanbul ǅ ﬁ",
    "apostrophes don't get split, but hyphen-ated words do",
    "tie tie b b a a c c d",
    "the the the cat cat mat",
    "  leading and trailing spaces  ",
    "CAPS caps Caps",
]


@pytest.mark.parametrize("kwargs", [
    {},
    {"num_words": 5},
    {"num_words": 1},
    {"oov_token": "<oov>"},
    {"oov_token": "<oov>", "num_words": 4},
    {"oov_token": "the", "num_words": 6},  # the oov token is also a word of the texts
    {"char_level": True},
    {"char_level": True, "num_words": 10, "oov_token": "#"},
    {"lower": False},
    {"filters": ""},
    {"filters": "aeiou"},
    {"split": ","},
    {"split": "--", "filters": ".!-"},
    {"split": "\t", "filters": "."},
    {"num_words": 0},
])
def test_edge_cases_like_keras(kwargs):
  ours, keras = fit_both(TEXTS, **kwargs)
  assert ours.texts_to_sequences(TEXTS) == keras.texts_to_sequences(TEXTS)
  unseen = ["the unknown cat", "", "mat mat zebra THE", "naïve"]
  assert ours.texts_to_sequences(unseen) == keras.texts_to_sequences(unseen)
  seqs = ours.texts_to_sequences(TEXTS)
  assert ours.sequences_to_texts(seqs) == keras.sequences_to_texts(seqs)


@pytest.mark.parametrize("space", [chr(c) for c in range(0x3001) if chr(c).isspace()])
def test_every_whitespace_character(space):
  text = f"a{space}b c{space}{space}d {space}"
  ours, keras = fit_both([text, "b"])
  assert ours.texts_to_sequences([text]) == keras.texts_to_sequences([text])


def test_empty_and_filter_only_texts():
  ours, keras = fit_both(["", "!!!", "\t\n"])
  assert ours.word_index == {} and ours.document_count == 3
  assert ours.texts_to_sequences(["", "a"]) == keras.texts_to_sequences(["", "a"]) == [[], []]
  ours, keras = fit_both([])
  assert ours.texts_to_sequences([]) == []


def test_token_lists_generators_and_repeated_fits():
  ours, keras = tok.Tokenizer(num_words=6), keras_text.Tokenizer(num_words=6)
  batches = [TEXTS[:5], [["Token", "LIST", "token", ""], "mixed in"], TEXTS[5:]]
  for batch in batches:
    ours.fit_on_texts(iter(batch))
    keras.fit_on_texts(iter(batch))
    assert_same_state(ours, keras)
  every = [t for b in batches for t in b]
  assert ours.texts_to_sequences(iter(every)) == keras.texts_to_sequences(iter(every))


def test_fitted_texts_changed_in_place():
  texts = list(TEXTS)
  ours, keras = fit_both(texts)
  texts[0] = "mat mat on"  # the same list object, new content
  assert ours.texts_to_sequences(texts) == keras.texts_to_sequences(texts)
  ours.lower = keras.lower = False  # settings changed after fitting
  assert ours.texts_to_sequences(texts) == keras.texts_to_sequences(texts)


def test_state_changed_after_fit():
  ours, keras = fit_both(TEXTS)
  for t in (ours, keras):
    t.num_words = 4
  assert ours.texts_to_sequences(TEXTS) == keras.texts_to_sequences(TEXTS)
  for t in (ours, keras):
    t.word_index = dict(t.word_index, cat=0)
    del t.word_index["mat"]
  assert ours.texts_to_sequences(TEXTS) == keras.texts_to_sequences(TEXTS)
  for t in (ours, keras):
    t.oov_token = "never-fitted"  # set, but not in word_index: Keras appends None
  assert ours.texts_to_sequences(TEXTS) == keras.texts_to_sequences(TEXTS)


@pytest.mark.parametrize("value", [-3, 0, 2.0, "x", True, np.int64(2), 2**70])
def test_odd_word_index_values_like_keras(value):
  ours, keras = fit_both(TEXTS)
  for t in (ours, keras):
    t.word_index = dict(t.word_index, cat=value)
  assert ours.texts_to_sequences(TEXTS) == keras.texts_to_sequences(TEXTS)
  if not isinstance(value, str):
    for t in (ours, keras):
      t.num_words = 4
    assert ours.texts_to_sequences(TEXTS) == keras.texts_to_sequences(TEXTS)


def test_unfitted_with_oov_token():
  ours, keras = tok.Tokenizer(oov_token="x"), keras_text.Tokenizer(oov_token="x")
  assert ours.texts_to_sequences(["a b"]) == keras.texts_to_sequences(["a b"]) == [[None, None]]


def test_fit_on_sequences():
  ours, keras = fit_both(TEXTS)
  seqs = [[1, 2, 2], [3], []]
  ours.fit_on_sequences(seqs)
  keras.fit_on_sequences(seqs)
  assert_same_state(ours, keras)


def test_fit_on_texts_after_fit_on_sequences():
  ours, keras = tok.Tokenizer(num_words=5), keras_text.Tokenizer(num_words=5)
  for t in (ours, keras):
    t.fit_on_sequences([[1, 2, 2], [40]])  # index_docs entries before the first text fit
    t.fit_on_texts(TEXTS)
  assert_same_state(ours, keras)
  assert list(ours.index_docs)[:2] == list(keras.index_docs)[:2] == [1, 2]  # kept in place


def test_text_to_word_sequence():
  for text in TEXTS:
    assert tok.text_to_word_sequence(text) == keras_text.text_to_word_sequence(text)


# JSON.


def test_json_round_trip():
  ours, _ = fit_both(TEXTS, num_words=7, oov_token="<oov>")
  again = tok.Tokenizer.from_json(ours.to_json())
  assert json.loads(again.to_json()) == json.loads(ours.to_json())
  for name in ("num_words", "filters", "lower", "split", "char_level", "oov_token",
               "document_count"):
    assert getattr(again, name) == getattr(ours, name)
  assert list(again.word_counts.items()) == list(ours.word_counts.items())
  assert list(again.word_index.items()) == list(ours.word_index.items())
  assert again.index_word == ours.index_word and again.index_docs == ours.index_docs
  assert again.word_docs == ours.word_docs
  assert again.texts_to_sequences(TEXTS) == ours.texts_to_sequences(TEXTS)
  ours.fit_on_texts(["more words", "the"])  # a restored tokenizer keeps fitting the same way
  again.fit_on_texts(["more words", "the"])
  assert list(again.word_index.items()) == list(ours.word_index.items())
  assert again.word_docs == ours.word_docs


@pytest.mark.parametrize("payload", [
    "not json",
    "[1, 2]",
    json.dumps({"format": "something.else", "version": 1, "config": {}}),
    json.dumps({"format": "rnnbench.Tokenizer", "version": 99, "config": {}}),
    json.dumps({"format": "rnnbench.Tokenizer", "version": 1, "config": {"num_words": 3}}),
    json.dumps({"format": "rnnbench.Tokenizer", "version": 1, "config": []}),
])
def test_from_json_rejects_others(payload):
  with pytest.raises(ValueError, match="rnnbench.Tokenizer|tokenizer JSON"):
    tok.Tokenizer.from_json(payload)


def test_from_json_rejects_keras_json():
  keras = keras_text.Tokenizer()
  keras.fit_on_texts(TEXTS)
  with pytest.raises(ValueError, match="rnnbench.Tokenizer"):
    tok.Tokenizer.from_json(keras.to_json())


# pad_sequences.

SEQS = [[1, 2, 3, 4, 5, 6], [], [7], [8, 9, 10], list(range(11, 30))]


@pytest.mark.parametrize("maxlen", [None, 1, 3, 6, 50])
@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_pad_like_keras(maxlen, padding, truncating):
  kwargs = dict(maxlen=maxlen, padding=padding, truncating=truncating)
  got = tok.pad_sequences(SEQS, **kwargs)
  want = keras_sequence.pad_sequences(SEQS, **kwargs)
  assert got.dtype == want.dtype and got.shape == want.shape
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("sequences, kwargs", [
    (SEQS, dict(maxlen=4, dtype="float32", value=-1.5)),
    (SEQS, dict(maxlen=4, dtype="int64", value=-1)),
    (SEQS, dict(maxlen=4, dtype="bool")),
    ([[1.7, -2.2], [3.9]], dict(maxlen=3)),  # floats cast to the int dtype, as Keras does
    ([np.array([1, 2, 3]), np.array([], dtype=int), (4, 5)], dict(maxlen=2)),
    (np.arange(12).reshape(3, 4), dict(maxlen=3, padding="post")),
    ([[], []], dict()),
    ([], dict(maxlen=10)),
    ([[1, 2, 3]], dict(maxlen=0, truncating="post")),
    ([[[1, 2], [3, 4]], [[5, 6]], []], dict(maxlen=3)),  # items that are vectors
    ([["a", "bb"], ["c"]], dict(maxlen=3, dtype=object, value="")),
    ([["a", "bb"], ["c"]], dict(maxlen=3, dtype="<U2", value="-")),
])
def test_pad_more_like_keras(sequences, kwargs):
  got = tok.pad_sequences(sequences, **kwargs)
  want = keras_sequence.pad_sequences(sequences, **kwargs)
  assert got.dtype == want.dtype and got.shape == want.shape
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("sequences, kwargs", [
    ([], dict()),  # no maxlen and nothing to measure
    ([[1], 2], dict()),
    (SEQS, dict(padding="middle")),
    (SEQS, dict(truncating="middle")),
    (SEQS, dict(value="x")),
    ([[1, 2, 3]], dict(maxlen=0)),
    ([[1, 2], [[3, 4]]], dict(maxlen=2)),
])
def test_pad_errors_like_keras(sequences, kwargs):
  with pytest.raises(ValueError):
    keras_sequence.pad_sequences(sequences, **kwargs)
  with pytest.raises(ValueError):
    tok.pad_sequences(sequences, **kwargs)


def test_pad_maxlen_longer_than_every_sequence():
  got = tok.pad_sequences([[1], [2, 3]], maxlen=5, padding="post")
  np.testing.assert_array_equal(got, [[1, 0, 0, 0, 0], [2, 3, 0, 0, 0]])


@pytest.mark.parametrize("seed", range(3))
def test_random_texts_like_keras(seed):
  rng = np.random.default_rng(seed)
  alphabet = list("aAbBcC  .,!-'\t\n\r\xa0\x0c\u2003éÉßΣς") + ["ab", "Ab", "ba"]
  texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 40))) for _ in range(300)]
  for kwargs in ({}, {"num_words": 4}, {"num_words": 6, "oov_token": "?"}):
    ours, keras = fit_both(texts[:200], **kwargs)
    assert ours.texts_to_sequences(texts[:200]) == keras.texts_to_sequences(texts[:200])
    assert ours.texts_to_sequences(texts[200:]) == keras.texts_to_sequences(texts[200:])


# The byte-level numbering of str texts (_encode_texts) and its fallbacks.

LONG_TEXTS = [
    "a ab abc abcdefg abcdefgh abcdefghi abcdefghijklmno abcdefghijklmnop " * 2,
    "abcdefghijklmnopqrstuvwxyz0123456789 abcdefghijklmnopqrstuvwxyz0123456789x",
    "ééééééééé ééééééééé ééé€€€€€ 日本語のテキストです 日本語のテキストです \x00\x00 \x01",
    "ﬁﬁﬁﬁﬁﬁﬁﬁ İİİİİİİİ ǅǅǅ tail",
    "",
]


@pytest.mark.parametrize("kwargs", [
    {},
    {"lower": False},
    {"filters": "aé日", "split": "b"},  # non-ASCII filters; split is a letter
    {"split": "é"},  # a split that is not one ASCII character: the general path
    {"num_words": 5, "oov_token": "<?>"},
])
def test_byte_numbering_like_keras(kwargs):
  texts = LONG_TEXTS + TEXTS
  ours, keras = fit_both(texts, **kwargs)
  assert ours.texts_to_sequences(texts) == keras.texts_to_sequences(texts)
  other = [t.upper() + " zzzzzzzzzzzzzzzzzzz" for t in texts]  # not the fitted objects
  assert ours.texts_to_sequences(other) == keras.texts_to_sequences(other)


@pytest.mark.parametrize("kwargs", [
    {"filters": "AEIOU"},  # Keras lowers first: capital filters never match
    {"filters": "aeiou", "split": "T"},
    {"filters": "A", "lower": False},
    {"filters": "\u00c9\u00e9", "split": "E"},
])
def test_case_and_filters_in_the_byte_pass(kwargs):
  texts = ["The CAT sat ON the Mat", "\u00c9T\u00c9 \u00e9t\u00e9", "AEIOU aeiou tTt",
           "\u0130stanbul \u03a3\u0391\u03a3 \u01c5emal \u212a"]
  ours, keras = fit_both(texts, **kwargs)
  assert ours.texts_to_sequences(texts) == keras.texts_to_sequences(texts)
  other = [t.swapcase() for t in texts]
  assert ours.texts_to_sequences(other) == keras.texts_to_sequences(other)


def test_lone_surrogate_falls_back():
  texts = ["ok \ud800 fine", "ok"]
  assert tok._encode_texts(texts, tok.DEFAULT_FILTERS, True, " ") is None
  ours, keras = fit_both(texts)
  assert ours.texts_to_sequences(texts) == keras.texts_to_sequences(texts)


def test_hash_collisions_and_table_growth(monkeypatch):
  rng = np.random.default_rng(0)
  words = ["".join(rng.choice(list("abcdé"), size=rng.integers(1, 20))) for _ in range(3000)]
  texts = [" ".join(rng.choice(words, size=40)) for _ in range(100)]  # > 512 distinct keys
  ours, keras = fit_both(texts)
  assert ours.texts_to_sequences(texts) == keras.texts_to_sequences(texts)
  # Every key in the same first slot: long probe chains.
  monkeypatch.setattr(tok, "_MIX", (np.uint64(0), np.uint64(0)))
  ours, keras = fit_both(texts[:10])
  assert ours.texts_to_sequences(texts[:10]) == keras.texts_to_sequences(texts[:10])


def test_some_hash_collisions(monkeypatch):
  # A hash of the first 8 bytes only: "abcdefgh" and "abcdefghi" (and others) share groups.
  monkeypatch.setattr(tok, "_MIX", (np.uint64(0), np.uint64(1)))
  texts = LONG_TEXTS + TEXTS + ["abcdefghij abcdefgh", "abcdefghi abcdefgh x abcdefghijk"]
  for kwargs in ({}, {"num_words": 4}):
    ours, keras = fit_both(texts, **kwargs)
    assert ours.texts_to_sequences(texts) == keras.texts_to_sequences(texts)
    other = texts[::-1]  # not the fitted objects: numbered again
    assert ours.texts_to_sequences(other) == keras.texts_to_sequences(other)


@pytest.mark.skipif(not hasattr(getattr(np, "_core", None), "multiarray"), reason="numpy 1")
def test_hugepage_setting_is_restored():
  set_hugepage = np._core.multiarray._set_madvise_hugepage
  original = set_hugepage(True)
  try:
    for enabled in (True, False):
      set_hugepage(enabled)
      ours, _ = fit_both(TEXTS)
      ours.texts_to_sequences(TEXTS)
      ours.texts_to_sequences(TEXTS[::-1])
      assert set_hugepage(enabled) is enabled
  finally:
    set_hugepage(original)


def test_gc_state_is_restored():
  import gc  # pylint: disable=g-import-not-at-top
  ours, _ = fit_both(TEXTS)
  assert gc.isenabled()
  ours.texts_to_sequences(TEXTS)
  assert gc.isenabled()
  gc.disable()
  try:
    ours.texts_to_sequences(TEXTS)
    assert not gc.isenabled()
  finally:
    gc.enable()
