"""Measures 20 Newsgroups document lengths, to choose newsgroups_long's maxlen and truncation.

    RNNBENCH_20NEWS_ARCHIVE=.../20news-bydate.tar.gz python scripts/doc_lengths.py \
        [--out=results/newsgroups_lengths]

Tokenises the train split as the notebook does (Keras' Tokenizer, num_words=20000) and
writes OUT.json and OUT.md: length percentiles (in tokens the model sees), the share of
documents that fit whole in each candidate maxlen, the share of padding steps a batch then
holds, and the TF-IDF + LinearSVC test accuracy on the first vs the last ``maxlen`` tokens
(which end of a long document to keep: ``truncating='post'`` keeps the first ones).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnbench.configs import default  # pylint: disable=wrong-import-position
from rnnbench import baselines  # pylint: disable=wrong-import-position
from rnnbench import data as data_lib  # pylint: disable=wrong-import-position
from rnnbench import tokenizer as tokenizer_lib  # pylint: disable=wrong-import-position

MAXLENS = (100, 250, 500, 1000, 1500, 2000)
SVM_MAXLENS = (100, 1000)


def measure() -> dict:
  config = default.get_config()
  dataset = data_lib.load(config.data, seed=0)
  tok = tokenizer_lib.Tokenizer(num_words=config.data.num_words)
  tok.fit_on_texts(dataset.train_texts)
  train = tok.texts_to_sequences(dataset.train_texts)
  test = tok.texts_to_sequences(dataset.test_texts)
  lengths = np.array([len(s) for s in train])
  out = {
      "num_words": config.data.num_words, "num_train": len(train),
      "length_percentiles": {str(p): float(np.percentile(lengths, p))
                             for p in (10, 25, 50, 75, 90, 95, 99)},
      "mean_length": float(lengths.mean()), "max_length": int(lengths.max()),
      "maxlen": {str(m): {"fits_whole": float(np.mean(lengths <= m)),
                          "padding_share": float(1 - np.minimum(lengths, m).sum() /
                                                 (m * len(lengths)))}
                 for m in MAXLENS},
      "svm_first_vs_last": {},
  }
  as_text = lambda seqs: tok.sequences_to_texts(seqs)
  for m in SVM_MAXLENS:
    row = {}
    for end, cut in (("first", lambda s: s[:m]), ("last", lambda s: s[-m:])):
      row[end] = baselines.fit_score(
          "20newsgroups", as_text([cut(s) for s in train]), dataset.train_labels,
          as_text([cut(s) for s in test]), dataset.test_labels)["test_accuracy"]
    out["svm_first_vs_last"][str(m)] = row
  return out


def markdown(m: dict) -> str:
  p = m["length_percentiles"]
  lines = [f"20 Newsgroups train ({m['num_train']} documents), tokens the model sees "
           f"(num_words={m['num_words']}): median {p['50']:.0f}, p75 {p['75']:.0f}, "
           f"p90 {p['90']:.0f}, p95 {p['95']:.0f}, p99 {p['99']:.0f}, max {m['max_length']}.",
           "", "| maxlen | documents that fit whole | padding share of a batch |", "|---|---|---|"]
  for k, v in m["maxlen"].items():
    lines.append(f"| {k} | {v['fits_whole']:.3f} | {v['padding_share']:.3f} |")
  lines += ["", "TF-IDF + LinearSVC test accuracy on a document's first vs last maxlen tokens:",
            "", "| maxlen | first (truncating='post') | last (truncating='pre') |",
            "|---|---|---|"]
  for k, v in m["svm_first_vs_last"].items():
    lines.append(f"| {k} | {v['first']:.4f} | {v['last']:.4f} |")
  return "\n".join(lines) + "\n"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=str(ROOT / "results" / "newsgroups_lengths"))
  args = parser.parse_args()
  m = measure()
  out = pathlib.Path(args.out)
  out.with_suffix(".json").write_text(json.dumps(m, indent=1) + "\n")
  out.with_suffix(".md").write_text(markdown(m))
  print(markdown(m))


if __name__ == "__main__":
  main()
