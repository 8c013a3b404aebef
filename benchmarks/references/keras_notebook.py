"""The notebook itself, as it runs: the reference of ``benchmarks/whole_run.py``.

Its cells in order, in Keras 3 on TensorFlow (the notebook's Keras 2.2 / TF 1 no longer
installs): scikit-learn's ``fetch_20newsgroups()`` (from its downloaded cache in
``--data_home``), ``keras_preprocessing``'s ``Tokenizer(num_words=20000)`` fit +
``texts_to_sequences`` + ``pad_sequences(maxlen=100)``, ``to_categorical``, the Sequential
model with LSTM(50) or GRU(50) (Keras 2's defaults: the hard sigmoid recurrent activation and,
for the GRU, ``reset_after=False``), ``compile(adam)`` and ``fit(epochs=2, batch_size=32,
validation_split=0.1)``. Prints one line ``RESULT {json}`` with the seconds of each cell,
measured from the process' start (imports included)::

    KERAS_BACKEND=tensorflow python benchmarks/references/keras_notebook.py --cell=gru \
        --data_home=DIR
"""

from __future__ import annotations

import time

START = time.perf_counter()

# pylint: disable=g-import-not-at-top,wrong-import-position
import argparse
import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cell", choices=("lstm", "gru"), default="gru")
  parser.add_argument("--data_home", required=True, help="scikit-learn's data home")
  parser.add_argument("--epochs", type=int, default=2)
  args = parser.parse_args()
  marks = {}

  def mark(name: str) -> None:
    marks[name] = time.perf_counter() - START

  import numpy as np
  if not hasattr(np, "unicode_"):  # keras_preprocessing's pad_sequences names it; NumPy 2 dropped it
    np.unicode_ = np.str_
  from sklearn.datasets import fetch_20newsgroups
  import keras
  from keras_preprocessing import sequence, text
  mark("imports")
  np.random.seed(0)
  newsgroups = fetch_20newsgroups(data_home=args.data_home, download_if_missing=False)
  data, labels = newsgroups.data, keras.utils.to_categorical(newsgroups.target, 20)
  mark("fetch")
  tokenizer = text.Tokenizer(num_words=20000)
  tokenizer.fit_on_texts(list(data))
  x = sequence.pad_sequences(tokenizer.texts_to_sequences(data), maxlen=100)
  mark("tokenize")
  hard_sigmoid = lambda v: keras.ops.clip(0.2 * v + 0.5, 0.0, 1.0)  # Keras 2's
  rnn = (keras.layers.LSTM(50, return_sequences=True, recurrent_activation=hard_sigmoid)
         if args.cell == "lstm" else
         keras.layers.GRU(50, return_sequences=True, reset_after=False,
                          recurrent_activation=hard_sigmoid))
  model = keras.Sequential([
      keras.Input((None,), dtype="int32"), keras.layers.Embedding(20000, 128), rnn,
      keras.layers.GlobalMaxPool1D(), keras.layers.Dropout(0.5),
      keras.layers.Dense(50, activation="relu"), keras.layers.Dropout(0.5),
      keras.layers.Dense(20, activation="softmax")])
  model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
  mark("build")
  fit = model.fit(x, labels, epochs=args.epochs, batch_size=32, validation_split=0.1,
                  verbose=2)
  mark("fit")
  print("RESULT " + json.dumps({
      "marks_s": marks, "val_accuracy": float(fit.history["val_accuracy"][-1]),
      "keras": keras.__version__, "backend": keras.backend.backend()}), flush=True)


if __name__ == "__main__":
  main()
