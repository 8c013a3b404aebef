"""Tests for the datasets behind data.name: your own files (csv, jsonl, folder) and
TensorFlow Datasets ('tfds:<name>', prepared offline), and the validation-split interface."""

import io
import json
import pathlib
import sys
import tarfile
from unittest import mock

import numpy as np
import pytest
import sklearn.datasets

from rnnbench.configs import default as default_config
from rnnbench import data
from rnnbench.data import base, newsgroups, tfds_catalog


def files_config(name, train, test="", val="", **files):
  config = default_config.get_config().data
  config.name = name
  config.files.update(train=str(train), test=str(test), val=str(val), **files)
  return config


def write(path: pathlib.Path, content) -> pathlib.Path:
  if isinstance(content, str):
    content = content.encode("utf-8")
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(content)
  return path


def load_error(config) -> str:
  with pytest.raises(data.DataError) as e:
    data.load(config)
  assert e.value.__suppress_context__ or e.value.__context__ is None  # no chained traceback
  return str(e.value)


# CSV.


def test_csv_string_labels(tmp_path):
  train = write(tmp_path / "train.csv", 'id,text,label\n1,"good, really",pos\n'
                '2,"two\nlines",neg\n3,"say ""hi""",pos\n\n4,,neutral\n')
  test = write(tmp_path / "test.csv", "label,text\nneg,meh\npos,great\n")
  got = data.load(files_config("csv", train, test))
  assert got.train_texts == ["good, really", "two\nlines", 'say "hi"', ""]
  assert got.label_names == ["neg", "neutral", "pos"]  # sorted train labels
  assert got.train_labels.tolist() == [2, 0, 2, 1] and got.train_labels.dtype == np.int32
  assert got.test_texts == ["meh", "great"] and got.test_labels.tolist() == [0, 2]
  assert got.val_texts is None and got.val_labels is None


def test_csv_integer_labels_by_value_tab_and_columns(tmp_path):
  rows = "".join(f"{label}\tdoc {i}\textra\n" for i, label in enumerate([10, 9, 2, 9]))
  train = write(tmp_path / "train.tsv", "stars\tbody\tother\n" + rows)
  config = files_config("csv", train, delimiter="\\t", text_column="body", label_column="stars")
  got = data.load(config)
  assert got.label_names == ["2", "9", "10"]
  assert got.train_labels.tolist() == [2, 1, 0, 1]
  assert got.test_texts == [] and got.test_labels.shape == (0,)


def test_csv_bom_and_latin1(tmp_path):
  train = write(tmp_path / "train.csv", "\ufefftext,label\ncaf\xe9,a\n".encode("utf-8"))
  assert data.load(files_config("csv", train)).train_texts == ["caf\xe9"]
  latin = write(tmp_path / "latin.csv", "text,label\ncaf\xe9,a\n".encode("latin-1"))
  assert data.load(files_config("csv", latin, encoding="latin-1")).train_texts == ["caf\xe9"]


def test_csv_long_field(tmp_path):
  long_text = "word " * 40_000  # longer than csv's default 131,072-character field limit
  train = write(tmp_path / "train.csv", f'text,label\n"{long_text}",a\nshort,b\n')
  assert data.load(files_config("csv", train)).train_texts[0] == long_text


# JSON Lines.


def test_jsonl(tmp_path):
  train = write(tmp_path / "train.jsonl", '{"text": "a b", "label": 1, "x": [1]}\n\n'
                '{"label": 0, "text": "caf\\u00e9"}\r\n{"text": "c", "label": 2}\n')
  val = write(tmp_path / "val.jsonl", '{"text": "v", "label": 2}\n')
  got = data.load(files_config("jsonl", train, val=val))
  assert got.train_texts == ["a b", "caf\xe9", "c"]
  assert got.label_names == ["0", "1", "2"] and got.train_labels.tolist() == [1, 0, 2]
  assert got.val_texts == ["v"] and got.val_labels.tolist() == [2]


def test_jsonl_string_labels(tmp_path):
  train = write(tmp_path / "train.jsonl", '{"text": "a", "label": "sports"}\n'
                '{"text": "b", "label": "arts"}\n')
  got = data.load(files_config("jsonl", train))
  assert got.label_names == ["arts", "sports"] and got.train_labels.tolist() == [1, 0]


# A folder per class.


def make_folders(root: pathlib.Path, classes: dict[str, int], encoding="utf-8") -> pathlib.Path:
  for name, n in classes.items():
    (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
      (root / name / f"{i:03d}.txt").write_bytes(f"{name} doc {i} caf\xe9\n".encode(encoding))
  return root


def test_folder_in_load_files_order(tmp_path):
  train = make_folders(tmp_path / "train", {"b": 4, "a": 3, "c": 0}, encoding="latin-1")
  write(train / "a" / ".hidden", b"\xff")
  (train / ".git").mkdir()
  test = make_folders(tmp_path / "test", {"a": 2, "b": 1}, encoding="latin-1")
  got = data.load(files_config("folder", train, test, encoding="latin-1"))
  (train / "a" / ".hidden").unlink()
  (train / ".git").rmdir()
  want = sklearn.datasets.load_files(train, encoding="latin-1")  # shuffles, random_state=0
  assert got.train_texts == want.data and got.train_labels.tolist() == want.target.tolist()
  assert got.label_names == list(want.target_names) == ["a", "b", "c"]
  assert sorted(got.test_texts) == ["a doc 0 caf\xe9\n", "a doc 1 caf\xe9\n", "b doc 0 caf\xe9\n"]
  assert sorted(got.test_labels.tolist()) == [0, 0, 1]


def test_folder_on_the_real_release(news_archive, tmp_path_factory):
  home = tmp_path_factory.getbasetemp() / "news_home"  # shared with test_data.py
  root = newsgroups.unpack_archive(news_archive, newsgroups.cache_root(home))
  train = root / newsgroups.TRAIN_FOLDER
  got = data.load(files_config("folder", train, root / newsgroups.TEST_FOLDER,
                               encoding="latin-1"))
  want = sklearn.datasets.load_files(train, encoding="latin-1")
  assert got.train_texts == want.data and got.train_labels.tolist() == want.target.tolist()
  assert got.label_names == list(want.target_names) and len(got.test_texts) == 7532
  message = load_error(files_config("folder", train))  # it is not UTF-8
  assert "line" in message and "utf-8" in message and "latin-1" in message


# Errors: one clear DataError each.


def test_train_not_set():
  message = load_error(files_config("csv", ""))
  assert "data.files.train is not set" in message


@pytest.mark.parametrize("name", ["csv", "jsonl", "folder"])
def test_missing_train(tmp_path, name):
  message = load_error(files_config(name, tmp_path / "nowhere"))
  assert str(tmp_path / "nowhere") in message and "data.files.train" in message
  assert "no such" in message


def test_missing_test_and_wrong_kind(tmp_path):
  train = write(tmp_path / "train.csv", "text,label\na,b\n")
  assert "(data.files.test): no such file" in load_error(
      files_config("csv", train, tmp_path / "test.csv"))
  assert "not a file" in load_error(files_config("csv", tmp_path))
  assert "not a folder" in load_error(files_config("folder", train))


@pytest.mark.parametrize("content, phrases", [
    (b"", ["is empty"]),
    (b"\n \n", ["is empty"]),
    (b"text,label\n", ["has a header but no rows"]),
    (b"body,label\na,b\n", ["no column 'text'", "data.files.text_column",
                            "its columns are: 'body', 'label'"]),
    (b"text;label\na;b\n", ["no column 'text'", "'text;label'", "delimiter"]),
    (b"text,label\na,b\nc,d,e\n", ["line 3", "3 fields", "header has 2"]),
    (b"text,label\na,b\nc\n", ["line 3", "1 fields"]),
    (b"text,label\na,\n", ["line 2", "label ('label') is empty"]),
    (b'text,label\n"a,b\n', ["line 2", "not valid CSV", "unexpected end of data"]),
    (b'text,label\n"a" b,c\n', ["line 2", "not valid CSV"]),
    (b"text,label\nok,a\nok,b\ncaf\xe9,c\n", ["line 4", "utf-8", "data.files.encoding"]),
])
def test_csv_errors(tmp_path, content, phrases):
  train = write(tmp_path / "train.csv", content)
  message = load_error(files_config("csv", train))
  for phrase in phrases:
    assert phrase in message, message
  assert str(train) in message


@pytest.mark.parametrize("files, phrases", [
    (dict(delimiter="::"), ["delimiter must be one character"]),
    (dict(encoding="no-such-codec"), ["'no-such-codec' is not an encoding"]),
])
def test_bad_settings(tmp_path, files, phrases):
  train = write(tmp_path / "train.csv", "text,label\na,b\n")
  message = load_error(files_config("csv", train, **files))
  for phrase in phrases:
    assert phrase in message, message


@pytest.mark.parametrize("content, phrases", [
    ('{"text": "a", "label": 1}\n{"text": "b", "label": 2\n', ["line 2", "not JSON"]),
    ('["a", 1]\n', ["line 1", "a JSON list, not an object"]),
    ('{"text": "a", "label": 1}\n{"body": "b", "label": 2}\n',
     ["line 2", "no key 'text'", "its keys are: 'body', 'label'"]),
    ('{"text": null, "label": 1}\n', ["line 1", "the text ('text') is null, not a string"]),
    ('{"text": "a", "label": 1.0}\n', ["label ('label') is 1.0, not a string or an integer"]),
    ('{"text": "a", "label": true}\n', ["label ('label') is true"]),
    ('{"text": "a", "label": 1}\n{"text": "b", "label": "x"}\n',
     ["mix integers and strings", "'x'"]),
    (b'{"text": "a", "label": 1}\n{"text": "\xff", "label": 1}\n', ["line 2", "utf-8"]),
])
def test_jsonl_errors(tmp_path, content, phrases):
  train = write(tmp_path / "train.jsonl", content)
  message = load_error(files_config("jsonl", train))
  for phrase in phrases:
    assert phrase in message, message


def test_labels_not_in_train(tmp_path):
  train = write(tmp_path / "train.csv", "text,label\na,pos\nb,neg\n")
  test = write(tmp_path / "test.csv", "text,label\na,pos\nb,neutral\nc,mixed\nd,neutral\n")
  message = load_error(files_config("csv", train, test))
  assert "'mixed', 'neutral'" in message and "data.files.test" in message
  assert "'neg', 'pos'" in message
  message = load_error(files_config("csv", train, val=test))
  assert "data.files.val" in message


def test_folder_errors(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  assert "has no class folders" in load_error(files_config("folder", empty))
  (empty / "a").mkdir()
  assert "hold no files" in load_error(files_config("folder", empty))

  train = make_folders(tmp_path / "train", {"a": 2, "b": 2})
  write(train / "b" / "bad.txt", b"line one\nline two \xe9t\xe9\n")
  message = load_error(files_config("folder", train))
  assert str(train / "b" / "bad.txt") in message and "line 2" in message
  assert "utf-8" in message and "latin-1" in message

  (train / "b" / "bad.txt").unlink()
  test = make_folders(tmp_path / "test", {"a": 1, "z": 1})
  assert "'z'" in load_error(files_config("folder", train, test))


# TensorFlow Datasets, with no network: the real imdb_reviews builder prepares a small
# archive in the release's format (only its download is replaced), and mock_data fakes the
# examples of other catalog datasets from their feature specs.


def tfds_config(name, data_dir, **tfds_fields):
  config = default_config.get_config().data
  config.name = name
  config.tfds.update(data_dir=str(data_dir), **tfds_fields)
  return config


@pytest.fixture(scope="module")
def tfds():
  import tensorflow_datasets  # pylint: disable=g-import-not-at-top  # the test extra has it
  return tensorflow_datasets


@pytest.fixture(scope="module")
def imdb_dir(tfds, tmp_path_factory):
  """imdb_reviews prepared from a 16-review aclImdb_v1.tar.gz, as it would be downloaded."""
  root = tmp_path_factory.mktemp("tfds")
  archive = root / "aclImdb_v1.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    for split in ("train", "test"):
      for label in ("neg", "pos", "unsup"):
        for i in range(4 if label != "unsup" else 1):
          review = f"{split} {label} review {i}: caf\xe9 <br />ok".encode("utf-8")
          info = tarfile.TarInfo(f"aclImdb/{split}/{label}/{i}_7.txt")
          info.size = len(review)
          tar.addfile(info, io.BytesIO(review))
  with mock.patch.object(tfds.download.DownloadManager, "download", return_value=archive):
    tfds.builder("imdb_reviews", data_dir=root).download_and_prepare()
  return root


def test_tfds_imdb_reviews(imdb_dir):
  config = tfds_config("tfds:imdb_reviews", imdb_dir, download=False)
  got = data.load(config)
  assert got.label_names == ["neg", "pos"]
  assert sorted(got.train_texts) == sorted(
      f"train {label} review {i}: caf\xe9 <br />ok" for label in ("neg", "pos")
      for i in range(4))
  for texts, labels in ((got.train_texts, got.train_labels), (got.test_texts, got.test_labels)):
    assert labels.dtype == np.int32 and len(texts) == len(labels) == 8
    assert [t.split()[1] for t in texts] == [got.label_names[y] for y in labels]
  assert got.val_texts is None
  assert data.load(config).train_texts == got.train_texts  # the files' order, every time


def test_tfds_val_split_and_max_docs(imdb_dir):
  config = tfds_config("tfds:imdb_reviews/plain_text:1.0.0", imdb_dir, download=True,
                       train_split="train[:50%]", test_split="", val_split="test")
  config.max_val_docs = 3
  got = data.load(config)
  assert len(got.train_texts) == 4 and got.test_texts == [] and len(got.test_labels) == 0
  assert len(got.val_texts) == len(got.val_labels) == 3
  assert all(t.startswith("test ") for t in got.val_texts)


def test_tfds_errors(imdb_dir, tfds, tmp_path):
  def message(config):
    return load_error(config)

  assert "no feature 'review'" in message(tfds_config("tfds:imdb_reviews", imdb_dir,
                                                      text_key="review"))
  no_stars = message(tfds_config("tfds:imdb_reviews", imdb_dir, label_key="stars"))
  assert "its features are: " in no_stars and "'label'" in no_stars and "'text'" in no_stars
  bad_split = message(tfds_config("tfds:imdb_reviews", imdb_dir, test_split="validation"))
  assert "cannot read split 'validation'" in bad_split and "'unsupervised'" in bad_split
  unlabelled = message(tfds_config("tfds:imdb_reviews", imdb_dir, train_split="unsupervised"))
  assert "outside its 2 classes" in unlabelled
  typo = message(tfds_config("tfds:imdb_reviewz", imdb_dir))
  assert "no dataset 'imdb_reviewz'" in typo and "imdb_reviews" in typo.split("not found")[1]
  assert "names no dataset" in message(tfds_config("tfds:", imdb_dir))

  absent = message(tfds_config("tfds:imdb_reviews", tmp_path, download=False))
  assert "not downloaded" in absent and str(tmp_path) in absent
  assert "data.tfds.data_dir" in absent

  offline = ConnectionError("Failed to resolve 'ai.stanford.edu'")
  with mock.patch.object(tfds.download.DownloadManager, "download", side_effect=offline), \
      mock.patch.object(tfds_catalog, "_check_online"):  # the download is mocked: no probe
    failed = message(tfds_config("tfds:imdb_reviews", tmp_path))
  assert "could not download" in failed and "ConnectionError" in failed
  assert "ai.stanford.edu" in failed and "data.tfds.data_dir" in failed


@pytest.mark.parametrize("name, text_key, classes", [
    ("ag_news_subset", "description", ["World", "Sports", "Business", "Sci/Tech"]),
    ("yelp_polarity_reviews", "text", None),
])
def test_tfds_mock_catalog(tfds, tmp_path, name, text_key, classes):
  config = tfds_config(f"tfds:{name}", tmp_path, text_key=text_key)
  with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE), \
      mock.patch.object(tfds_catalog, "_check_online"):  # no download: no network probe
    got = data.load(config)
    want = tfds.builder(name).info.features["label"].names
  assert got.label_names == want == (classes or want)
  assert len(got.train_texts) == len(got.test_texts) == 5
  assert all(isinstance(t, str) for t in got.train_texts)
  assert all(0 <= y < len(want) for y in got.train_labels)


def test_tfds_not_installed(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import fails
  message = load_error(tfds_config("tfds:imdb_reviews", ""))
  assert "pip install -e '.[tfds]'" in message and "tensorflow-datasets" in message


# The interface.


def test_registry_and_unknown_name():
  assert sorted(data.LOADERS) == ["20newsgroups", "csv", "delay", "folder", "jsonl", "listops",
                                  "recall", "synthetic", "tfds:"]
  config = default_config.get_config().data
  config.name = "parquet"
  assert "csv, delay, folder, jsonl, listops, recall, synthetic, tfds:<name>" in load_error(config)
  config.name = "csv:x"
  assert "unknown data.name 'csv:x'" in load_error(config)


def test_head_and_val_fields():
  texts = [f"t{i}" for i in range(6)]
  labels = np.arange(6, dtype=np.int32) % 2
  full = base.TextClassificationData(texts, labels, texts[:2], labels[:2], ["a", "b"],
                                     val_texts=texts[:4], val_labels=labels[:4])
  cut = full.head(max_train=3, max_test=1, max_val=2)
  assert cut.train_texts == texts[:3] and cut.test_texts == texts[:1]
  assert cut.val_texts == texts[:2] and cut.val_labels.tolist() == [0, 1]
  assert full.head().val_texts == texts[:4]
  plain = base.TextClassificationData(texts, labels, [], labels[:0], ["a", "b"])
  assert plain.head(max_val=1).val_texts is None
  with pytest.raises(ValueError, match="both"):
    base.TextClassificationData(texts, labels, [], labels[:0], ["a", "b"], val_texts=texts)
  with pytest.raises(ValueError, match="validation"):
    base.TextClassificationData(texts, labels, [], labels[:0], ["a", "b"], val_texts=texts,
                                val_labels=labels[:2])


def test_max_val_docs_negative(tmp_path):
  train = write(tmp_path / "train.csv", "text,label\na,b\n")
  config = files_config("csv", train)
  config.max_val_docs = -1
  assert "max_val_docs" in load_error(config)


def test_sorted_classes():
  assert base.sorted_classes(["10", "9", " 2", "-1"]) == ["-1", " 2", "9", "10"]
  assert base.sorted_classes([3, 1, 2]) == [1, 2, 3]
  assert base.sorted_classes(["b", "10", "a"]) == ["10", "a", "b"]
  with pytest.raises(data.DataError, match="mix"):
    base.sorted_classes([1, "a"])


def test_jsonl_round_trip(tmp_path):
  """A jsonl file written from another dataset loads back to the same texts and labels."""
  source = data.load(_synthetic_config())
  path = tmp_path / "train.jsonl"
  path.write_text("".join(json.dumps({"text": t, "label": source.label_names[y]}) + "\n"
                          for t, y in zip(source.train_texts, source.train_labels)))
  got = data.load(files_config("jsonl", path))
  assert got.train_texts == source.train_texts
  assert got.train_labels.tolist() == source.train_labels.tolist()


def _synthetic_config():
  config = default_config.get_config().data
  config.name = "synthetic"
  config.synthetic.update(num_train=60, num_test=5, num_classes=3, vocab_size=50, doc_len=8)
  return config
