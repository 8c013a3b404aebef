"""Baselines beside the cells: TF-IDF + a linear SVM (scikit-learn), on a task's texts.

``tfidf_svm(config)`` trains on the same examples the cells train on (the train split, less
the validation part) and scores the same test split, two ways:

* ``seen``: the tokens the model sees: each padded/truncated row of token ids turned back into
  text (``Tokenizer.sequences_to_texts``), so the SVM has the model's ``maxlen`` window and
  ``num_words`` vocabulary, nothing more.
* ``full`` (``full_text=True``): the raw documents, as the usual 20 Newsgroups reference
  (``sublinear_tf=True, max_df=0.5, stop_words='english'``; ≈ 0.86 on the bydate split).

The generated tasks' tokens (``[MAX``, ``?``, ``k12``) are whitespace-split and case-kept
(``token_pattern=r"\\S+"``, no stop words); a bag of tokens cannot count nesting or order,
which is the point of those tasks.
"""

from __future__ import annotations

import time
from typing import Any

import ml_collections
import numpy as np

GENERATED = ("listops", "recall", "delay")


def vectorizer(data_name: str, ngrams: int = 1):
  """The TF-IDF vectorizer for a dataset: the 20 Newsgroups reference's, or whitespace tokens."""
  from sklearn.feature_extraction.text import TfidfVectorizer  # pylint: disable=g-import-not-at-top
  if data_name in GENERATED:
    return TfidfVectorizer(token_pattern=r"\S+", lowercase=False, ngram_range=(1, ngrams),
                           sublinear_tf=True)
  return TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english",
                         ngram_range=(1, ngrams))


def fit_score(data_name: str, train_texts, train_labels, test_texts, test_labels,
              ngrams: int = 1, seed: int = 0) -> dict[str, Any]:
  """TF-IDF + ``LinearSVC`` fitted on train; accuracy on test, and the seconds it took."""
  from sklearn.svm import LinearSVC  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  vec = vectorizer(data_name, ngrams)
  features = vec.fit_transform(train_texts)
  svm = LinearSVC(random_state=seed).fit(features, train_labels)
  predicted = svm.predict(vec.transform(test_texts))
  return {"test_accuracy": float(np.mean(predicted == np.asarray(test_labels))),
          "num_train": len(train_labels), "num_test": len(test_labels), "ngrams": ngrams,
          "features": len(vec.vocabulary_), "time_s": time.perf_counter() - start}


def tfidf_svm(config: ml_collections.ConfigDict, full_text: bool = False,
              ngrams: int = 1) -> dict[str, Any]:
  """The TF-IDF + LinearSVC baseline of ``config``'s task (see the module docstring)."""
  from rnnbench import data as data_lib  # pylint: disable=g-import-not-at-top
  from rnnbench import input_pipeline  # pylint: disable=g-import-not-at-top
  name = config.data.name
  if full_text:
    dataset = data_lib.load(config.data, seed=config.seed)
    cut = (len(dataset.train_texts) if dataset.val_texts is not None
           else input_pipeline.split_at(len(dataset.train_texts), config.data.validation_split))
    out = fit_score(name, dataset.train_texts[:cut], dataset.train_labels[:cut],
                    dataset.test_texts, dataset.test_labels, ngrams, config.seed)
    return {**out, "input": "full text"}
  prepared = input_pipeline.prepare(config)
  as_text = lambda x: prepared.tokenizer.sequences_to_texts([row[row != 0] for row in x])
  out = fit_score(name, as_text(prepared.train.x), prepared.train.y, as_text(prepared.test.x),
                  prepared.test.y, ngrams, config.seed)
  return {**out, "input": f"the model's tokens (maxlen {config.data.maxlen})"}
