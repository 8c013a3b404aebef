"""The input pipeline: the notebook's validation split, padded batches, the epoch order, encode."""

import numpy as np

from conftest import small_config
from rnnbench import data as data_lib
from rnnbench import input_pipeline
from rnnbench import tokenizer as tokenizer_lib


def test_validation_split_takes_the_last_fraction():
  assert input_pipeline.split_at(11314, 0.1) == 10182  # Keras: int(n * (1 - v))
  config = small_config()
  data = input_pipeline.prepare(config)
  full = input_pipeline.prepare(small_config(**{"data.validation_split": 0.0}))
  np.testing.assert_array_equal(data.val.x, full.train.x[180:])
  np.testing.assert_array_equal(data.train.y, full.train.y[:180])


def test_batches_pad_the_last_one():
  arrays = input_pipeline.Arrays(x=np.arange(10 * 3).reshape(10, 3), y=np.arange(10))
  got = list(input_pipeline.batches(arrays, 4, order=np.arange(10)[::-1]))
  assert [b[0].shape for b in got] == [(4, 3)] * 3
  assert got[-1][2].tolist() == [1, 1, 0, 0]
  assert np.concatenate([b[1][b[2] > 0] for b in got]).tolist() == list(range(10))[::-1]
  # A shorter order (a resumed epoch) yields only its own batches.
  assert len(list(input_pipeline.batches(arrays, 4, order=np.arange(3)))) == 1


def test_epoch_order_reshuffles_every_epoch():
  a, b = input_pipeline.epoch_order(0, 1, 100), input_pipeline.epoch_order(0, 2, 100)
  assert sorted(a) == list(range(100)) and not np.array_equal(a, b)
  np.testing.assert_array_equal(a, input_pipeline.epoch_order(0, 1, 100))


def test_encode_is_keras_pad_sequences_of_the_tokenizer():
  config = small_config(**{"data.maxlen": 4, "data.padding": "post", "data.truncating": "pre"})
  tok = tokenizer_lib.Tokenizer(num_words=10)
  tok.fit_on_texts(["a b c d e", "a b"])
  got = input_pipeline.encode(tok, ["a b c d e", "b"], config.data)
  want = tokenizer_lib.pad_sequences(tok.texts_to_sequences(["a b c d e", "b"]), maxlen=4,
                                     padding="post", truncating="pre")
  assert got.dtype == np.int32 and got.shape == (2, 4)
  np.testing.assert_array_equal(got, want)


def test_validation_texts_are_the_split_prepare_validates_on():
  config = small_config()
  dataset = data_lib.load(config.data, seed=config.seed)
  data = input_pipeline.prepare(config)
  texts, labels = input_pipeline.validation_texts(dataset, config.data.validation_split)
  val = input_pipeline.encode_split(data.tokenizer, texts, labels, config.data)
  np.testing.assert_array_equal(val.x, data.val.x)
  np.testing.assert_array_equal(val.y, data.val.y)
