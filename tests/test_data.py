"""Tests for rnnbench.data: 20 Newsgroups from the archive (vs scikit-learn), errors, the
unpack cache, the synthetic dataset and the load() interface."""

import codecs
import io
import pathlib
import pickle
import shutil
import tarfile
import urllib.error

import numpy as np
import pytest
import sklearn.datasets
from sklearn.datasets import _base as _sklearn_base
from sklearn.datasets import _twenty_newsgroups
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import MultinomialNB

from rnnbench.configs import default as default_config
from rnnbench import data
from rnnbench.data import newsgroups, synthetic

GROUP_COUNTS = {  # train / test documents per newsgroup, from the release
    "alt.atheism": (480, 319), "comp.graphics": (584, 389),
    "comp.os.ms-windows.misc": (591, 394), "comp.sys.ibm.pc.hardware": (590, 392),
    "comp.sys.mac.hardware": (578, 385), "comp.windows.x": (593, 395),
    "misc.forsale": (585, 390), "rec.autos": (594, 396), "rec.motorcycles": (598, 398),
    "rec.sport.baseball": (597, 397), "rec.sport.hockey": (600, 399),
    "sci.crypt": (595, 396), "sci.electronics": (591, 393), "sci.med": (594, 396),
    "sci.space": (593, 394), "soc.religion.christian": (599, 398),
    "talk.politics.guns": (546, 364), "talk.politics.mideast": (564, 376),
    "talk.politics.misc": (465, 310), "talk.religion.misc": (377, 251),
}
SUBSETS = ("train", "test", "all")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
  monkeypatch.delenv(newsgroups.ARCHIVE_ENV, raising=False)
  monkeypatch.delenv(newsgroups.CACHE_ENV, raising=False)


@pytest.fixture(scope="session")
def news_home(tmp_path_factory) -> pathlib.Path:
  """A data home shared by every real-data test (the archive is unpacked there once)."""
  return tmp_path_factory.getbasetemp() / "news_home"


@pytest.fixture(scope="session")
def news(news_archive, news_home) -> dict:
  return {s: data.fetch_20newsgroups(s, archive=news_archive, data_home=news_home)
          for s in SUBSETS}


@pytest.fixture(scope="session")
def sklearn_news(news, news_home, tmp_path_factory) -> dict:
  """scikit-learn's fetch_20newsgroups, from a scikit-learn cache made of the same files.

  The cache is what sklearn's _download_20newsgroups writes after unpacking the archive
  (with the same tarfile filter='data' extraction): a zlib-compressed pickle of load_files'
  train and test Bunches. It is built here from the folder that rnnbench unpacked, so the
  archive is unpacked only once per test session.
  """
  (unpacked,) = newsgroups.cache_root(news_home).iterdir()
  cache = {
      "train": sklearn.datasets.load_files(unpacked / "20news-bydate-train", encoding="latin1"),
      "test": sklearn.datasets.load_files(unpacked / "20news-bydate-test", encoding="latin1"),
  }
  home = tmp_path_factory.mktemp("sklearn_home")
  cache_path = _sklearn_base._pkl_filepath(home, _twenty_newsgroups.CACHE_NAME)
  with open(cache_path, "wb") as f:
    f.write(codecs.encode(pickle.dumps(cache), "zlib_codec"))
  return {s: sklearn.datasets.fetch_20newsgroups(data_home=home, subset=s,
                                                 download_if_missing=False)
          for s in SUBSETS}


def _make_tar(path: pathlib.Path, files: dict[str, bytes], mode: str = "w:gz") -> pathlib.Path:
  with tarfile.open(path, mode) as tar:
    for name, content in files.items():
      info = tarfile.TarInfo(name)
      info.size = len(content)
      tar.addfile(info, io.BytesIO(content))
  return path


@pytest.fixture
def tiny_archive(tmp_path) -> pathlib.Path:
  """A small archive with the release's layout: 2 groups, numeric file names."""
  files = {}
  for split, names in (("train", ["9", "10", "100"]), ("test", ["2", "11"])):
    for group in ("b.group", "a.group"):
      for name in names:
        files[f"20news-bydate-{split}/{group}/{name}"] = f"{split} {group} {name} \xe9".encode(
            "latin-1")
  return _make_tar(tmp_path / "tiny.tar.gz", files)


def _leftovers(root: pathlib.Path) -> list[str]:
  return sorted(p.name for p in root.iterdir()) if root.exists() else []


# The real archive.


def test_sizes_names_and_first_targets(news):
  assert len(news["train"].data) == len(news["train"].target) == 11314
  assert len(news["test"].data) == len(news["test"].target) == 7532
  assert len(news["all"].data) == 18846
  for subset in SUBSETS:
    assert news[subset].target_names == sorted(GROUP_COUNTS)
  assert news["train"].target[:10].tolist() == [7, 4, 4, 1, 14, 16, 13, 3, 2, 4]
  assert all(isinstance(t, str) for t in news["train"].data)


def test_group_counts(news):
  names = news["train"].target_names
  for i, split in enumerate(("train", "test")):
    counts = np.bincount(news[split].target, minlength=20)
    assert dict(zip(names, counts.tolist())) == {g: c[i] for g, c in GROUP_COUNTS.items()}


@pytest.mark.parametrize("subset", SUBSETS)
def test_same_as_sklearn(news, sklearn_news, subset):
  ours, theirs = news[subset], sklearn_news[subset]
  assert ours.target_names == list(theirs.target_names)
  np.testing.assert_array_equal(ours.target, theirs.target)
  assert ours.data == list(theirs.data)


def test_load_20newsgroups(news_archive, news_home, news):
  config = default_config.get_config().data
  config.archive = str(news_archive)
  config.data_home = str(news_home)
  full = data.load(config)
  assert full.train_texts == news["train"].data and full.test_texts == news["test"].data
  assert full.train_labels.dtype == np.int32 and full.test_labels.dtype == np.int32
  np.testing.assert_array_equal(full.train_labels, news["train"].target)
  assert full.label_names == news["train"].target_names and full.num_classes == 20

  config.max_train_docs = 100
  config.max_test_docs = 7
  head = data.load(config)
  assert head.train_texts == full.train_texts[:100] and head.test_texts == full.test_texts[:7]
  np.testing.assert_array_equal(head.train_labels, full.train_labels[:100])
  np.testing.assert_array_equal(head.test_labels, full.test_labels[:7])


def test_env_archive(news_archive, news_home, news, monkeypatch):
  monkeypatch.setenv(newsgroups.ARCHIVE_ENV, str(news_archive))
  test = data.fetch_20newsgroups("test", data_home=news_home)
  assert test.data == news["test"].data


# Errors: one clear DataError each, and no cache left behind.


def _assert_clear(error: pytest.ExceptionInfo, *phrases: str) -> None:
  message = str(error.value)
  for phrase in phrases:
    assert phrase in message, message
  # No chained traceback from deep inside tarfile or urllib.
  assert error.value.__cause__ is None
  assert error.value.__context__ is None or error.value.__suppress_context__


def test_missing_archive(tmp_path):
  missing = tmp_path / "nowhere" / "20news-bydate.tar.gz"
  with pytest.raises(data.DataError) as e:
    data.fetch_20newsgroups(archive=missing, data_home=tmp_path)
  _assert_clear(e, str(missing), "not found", "RNNBENCH_20NEWS_ARCHIVE", "data.archive")


def test_missing_env_archive(tmp_path, monkeypatch):
  monkeypatch.setenv(newsgroups.ARCHIVE_ENV, str(tmp_path / "gone.tar.gz"))
  with pytest.raises(data.DataError) as e:
    data.fetch_20newsgroups(data_home=tmp_path)
  _assert_clear(e, "gone.tar.gz", "$RNNBENCH_20NEWS_ARCHIVE")


def test_archive_is_a_folder(tmp_path):
  with pytest.raises(data.DataError, match="not found"):
    data.fetch_20newsgroups(archive=tmp_path, data_home=tmp_path / "home")


@pytest.mark.parametrize("content", [b"", b"plain text, not an archive\n" * 50,
                                     b"\x1f\x8b\x08\x00garbage after a gzip magic"])
def test_not_an_archive(tmp_path, content):
  bad = tmp_path / "20news-bydate.tar.gz"
  bad.write_bytes(content)
  with pytest.raises(data.DataError) as e:
    data.fetch_20newsgroups(archive=bad, data_home=tmp_path / "home")
  _assert_clear(e, "cannot unpack", str(bad), "RNNBENCH_20NEWS_ARCHIVE")
  assert _leftovers(newsgroups.cache_root(tmp_path / "home")) == []


def test_truncated_archive(news_archive, tmp_path):
  cut = tmp_path / "cut.tar.gz"
  cut.write_bytes(news_archive.read_bytes()[:300_000])
  with pytest.raises(data.DataError) as e:
    data.fetch_20newsgroups(archive=cut, data_home=tmp_path / "home")
  _assert_clear(e, "cannot unpack", "cut.tar.gz")
  assert _leftovers(newsgroups.cache_root(tmp_path / "home")) == []


@pytest.mark.parametrize("mode", ["w:gz", "w"])
def test_tar_without_the_folders(tmp_path, mode):
  other = _make_tar(tmp_path / "other.tar", {"README": b"hi", "20news-bydate-train/x/1": b"a"},
                    mode)
  with pytest.raises(data.DataError) as e:
    data.fetch_20newsgroups(archive=other, data_home=tmp_path / "home")
  _assert_clear(e, "not the 20news-bydate release", "20news-bydate-test")
  assert _leftovers(newsgroups.cache_root(tmp_path / "home")) == []


def test_unsafe_member_is_refused(tmp_path):
  evil = _make_tar(tmp_path / "evil.tar.gz", {"20news-bydate-train/g/1": b"a",
                                              "20news-bydate-test/g/1": b"b",
                                              "../escaped": b"boom"})
  home = tmp_path / "deep" / "home"
  with pytest.raises(data.DataError, match="cannot unpack"):
    data.fetch_20newsgroups(archive=evil, data_home=home)
  assert not list(tmp_path.rglob("escaped"))
  assert _leftovers(newsgroups.cache_root(home)) == []


def test_no_archive_and_no_network(tmp_path, monkeypatch):
  calls = []

  def offline(**kwargs):
    calls.append(kwargs)
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

  monkeypatch.setattr(sklearn.datasets, "fetch_20newsgroups", offline)
  with pytest.raises(data.DataError) as e:
    data.fetch_20newsgroups("test", data_home=tmp_path)
  _assert_clear(e, "no local archive", "URLError", "RNNBENCH_20NEWS_ARCHIVE", str(tmp_path))
  assert calls == [{"subset": "test", "data_home": tmp_path}]


def test_sklearn_fallback(tmp_path, monkeypatch):
  bunch = sklearn.utils.Bunch(data=["a", "b"], target=np.array([1, 0]),
                              target_names=["x", "y"])
  monkeypatch.setattr(sklearn.datasets, "fetch_20newsgroups", lambda **kwargs: bunch)
  got = data.fetch_20newsgroups("train", data_home=tmp_path)
  assert got.data == ["a", "b"] and got.target.tolist() == [1, 0]
  assert got.target_names == ["x", "y"]


def test_bad_subset():
  with pytest.raises(ValueError, match="subset"):
    data.fetch_20newsgroups("validation")


# The unpack cache.


def test_tiny_archive_in_load_files_order(tiny_archive, tmp_path):
  home = tmp_path / "home"
  got = data.fetch_20newsgroups("train", archive=tiny_archive, data_home=home)
  [root] = newsgroups.cache_root(home).iterdir()
  files = sklearn.datasets.load_files(root / newsgroups.TRAIN_FOLDER, encoding="latin1")
  order = np.arange(6)
  np.random.RandomState(42).shuffle(order)
  assert got.data == [files.data[i] for i in order]
  assert got.target.tolist() == files.target[order].tolist()
  assert got.target_names == ["a.group", "b.group"]
  assert "\xe9" in got.data[0]


def test_cache_is_reused(tiny_archive, tmp_path, monkeypatch):
  home = tmp_path / "home"
  first = data.fetch_20newsgroups("all", archive=tiny_archive, data_home=home)
  (key,) = _leftovers(newsgroups.cache_root(home))

  def no_unpacking(*args, **kwargs):
    raise AssertionError("the archive was unpacked again")

  monkeypatch.setattr(newsgroups.tarfile, "open", no_unpacking)
  again = data.fetch_20newsgroups("all", archive=tiny_archive, data_home=home)
  assert again.data == first.data
  assert _leftovers(newsgroups.cache_root(home)) == [key]


def test_cache_env_and_content_key(tiny_archive, tmp_path, monkeypatch):
  monkeypatch.setenv(newsgroups.CACHE_ENV, str(tmp_path / "cache"))
  monkeypatch.setenv(newsgroups.ARCHIVE_ENV, str(tiny_archive))
  data.fetch_20newsgroups("test")
  moved = tmp_path / "moved.tar.gz"
  shutil.copyfile(tiny_archive, moved)
  data.fetch_20newsgroups("test", archive=moved)  # same content: same cache entry
  assert len(_leftovers(tmp_path / "cache" / "20news-bydate")) == 1


def test_interrupted_unpacking_leaves_no_cache(tiny_archive, tmp_path, monkeypatch):
  home = tmp_path / "home"
  root = newsgroups.cache_root(home)
  real_extractall = tarfile.TarFile.extractall

  def interrupted(self, path=".", members=None, **kwargs):
    real_extractall(self, path, members=self.getmembers()[:3], **kwargs)
    raise KeyboardInterrupt

  monkeypatch.setattr(tarfile.TarFile, "extractall", interrupted)
  with pytest.raises(KeyboardInterrupt):
    data.fetch_20newsgroups(archive=tiny_archive, data_home=home)
  assert _leftovers(root) == []
  monkeypatch.undo()

  # A run killed outright leaves its temporary folder; it must not be mistaken for a cache.
  stale = root / (newsgroups._file_sha256(tiny_archive)[:16] + ".crashed.partial")
  (stale / newsgroups.TRAIN_FOLDER / "a.group").mkdir(parents=True)
  got = data.fetch_20newsgroups(archive=tiny_archive, data_home=home)
  assert len(got.data) == 6


def test_damaged_cache_is_rebuilt(tiny_archive, tmp_path):
  home = tmp_path / "home"
  data.fetch_20newsgroups(archive=tiny_archive, data_home=home)
  (entry,) = newsgroups.cache_root(home).iterdir()
  shutil.rmtree(entry / newsgroups.TEST_FOLDER)
  assert len(data.fetch_20newsgroups("test", archive=tiny_archive, data_home=home).data) == 4


# The synthetic dataset.


def test_synthetic_is_deterministic():
  a = data.make_synthetic("train", num_train=50, num_test=10, seed=3)
  b = data.make_synthetic("train", num_train=50, num_test=10, seed=3)
  c = data.make_synthetic("train", num_train=50, num_test=10, seed=4)
  assert a.data == b.data and a.target.tolist() == b.target.tolist()
  assert a.data != c.data
  # Each subset has its own stream: the test documents do not depend on num_train.
  t1 = data.make_synthetic("test", num_train=50, num_test=10, seed=3)
  t2 = data.make_synthetic("test", num_train=7, num_test=10, seed=3)
  assert t1.data == t2.data
  both = data.make_synthetic("all", num_train=50, num_test=10, seed=3)
  assert both.data == a.data + t1.data


def test_synthetic_shape_and_signal():
  kwargs = dict(num_train=400, num_test=100, num_classes=4, vocab_size=300, doc_len=40, seed=0)
  train = data.make_synthetic("train", **kwargs)
  assert len(train.data) == 400 and train.target_names == ["class00", "class01", "class02",
                                                           "class03"]
  assert set(train.target.tolist()) == {0, 1, 2, 3}
  lengths = [len(t.split(" ")) for t in train.data]
  assert min(lengths) >= 20 and max(lengths) <= 40
  signal = synthetic.indicative_words(4, 300, seed=0)
  own = [sum(w in signal[y] for w in t.split(" ")) for t, y in zip(train.data, train.target)]
  other = [sum(w in signal[(y + 1) % 4] for w in t.split(" "))
           for t, y in zip(train.data, train.target)]
  assert np.mean(own) > 2 * np.mean(other) + 1


def test_synthetic_is_learnable():
  config = default_config.get_config().data
  config.name = "synthetic"
  config.synthetic.num_train = 1000
  config.synthetic.num_test = 300
  got = data.load(config, seed=1)
  assert len(got.train_texts) == 1000 and len(got.test_texts) == 300
  assert got.train_labels.dtype == np.int32 and got.num_classes == 20
  vectorizer = CountVectorizer()
  model = MultinomialNB().fit(vectorizer.fit_transform(got.train_texts), got.train_labels)
  accuracy = (model.predict(vectorizer.transform(got.test_texts)) == got.test_labels).mean()
  assert accuracy > 0.9
  assert data.load(config, seed=1).train_texts == got.train_texts
  assert data.load(config, seed=2).train_texts != got.train_texts


@pytest.mark.parametrize("kwargs", [dict(num_classes=1), dict(vocab_size=10),
                                    dict(doc_len=0), dict(num_train=-1)])
def test_synthetic_bad_sizes(kwargs):
  with pytest.raises(ValueError):
    data.make_synthetic(**kwargs)


# load().


def test_load_unknown_name():
  config = default_config.get_config().data
  config.name = "imdb"
  with pytest.raises(data.DataError,
                     match="unknown data.name 'imdb'; known: 20newsgroups, csv, delay, folder, "
                     "jsonl, listops, recall, synthetic, tfds:<name>"):
    data.load(config)


def test_load_negative_max_docs():
  config = default_config.get_config().data
  config.name = "synthetic"
  config.max_test_docs = -1
  with pytest.raises(data.DataError, match="max_test_docs"):
    data.load(config)


def test_load_max_docs_synthetic():
  config = default_config.get_config().data
  config.name = "synthetic"
  config.synthetic.num_train = 30
  config.max_train_docs = 5
  config.max_test_docs = 1000  # more than there are: all of them
  got = data.load(config)
  assert len(got.train_texts) == 5 and len(got.train_labels) == 5
  assert len(got.test_texts) == config.synthetic.num_test
