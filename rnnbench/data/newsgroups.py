"""20 Newsgroups (the 20news-bydate release) in exactly scikit-learn's order.

``fetch_20newsgroups`` reads a local copy of ``20news-bydate.tar.gz`` (the ``archive``
argument, else ``$RNNBENCH_20NEWS_ARCHIVE``) with no network: the archive is unpacked once
into a cache folder keyed by its content hash, then read the way
``sklearn.datasets.fetch_20newsgroups`` reads it: latin-1, in ``load_files`` order (sorted,
then shuffled with its ``random_state=0``), then for 'all' train before test, then shuffled
with ``random_state=42``. With no archive, scikit-learn's own fetcher is used (it downloads
into ``data_home`` / ``$SCIKIT_LEARN_DATA`` when it has to).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import tarfile
import tempfile
import warnings
import zlib
from typing import Any

import numpy as np

from rnnbench.data.base import (CACHE_ENV, DataError, TextClassificationData, TextDataset,
                                cache_home, content_sha256, from_subsets)

ARCHIVE_ENV = "RNNBENCH_20NEWS_ARCHIVE"
TRAIN_FOLDER = "20news-bydate-train"
TEST_FOLDER = "20news-bydate-test"
SUBSETS = ("train", "test", "all")
_CACHE_SUBDIR = "20news-bydate"
_RANDOM_STATE = 42  # fetch_20newsgroups' default
_LOAD_FILES_RANDOM_STATE = 0  # load_files' default, used when sklearn builds its cache
_HOW_TO_FIX = (f"To fix it, set ${ARCHIVE_ENV} (or --config.data.archive) to the path of a "
               "copy of the 20news-bydate.tar.gz release, or run once with network access so "
               "that scikit-learn can download it.")


def fetch_20newsgroups(subset: str = "train", *, archive: str | os.PathLike[str] | None = None,
                       data_home: str | os.PathLike[str] | None = None) -> TextDataset:
  """The texts, labels and label names of ``sklearn.datasets.fetch_20newsgroups(subset)``.

  Args:
    subset: 'train', 'test' or 'all' (train then test, shuffled together).
    archive: a local 20news-bydate.tar.gz; None or '': ``$RNNBENCH_20NEWS_ARCHIVE``, and if
      that is unset too, scikit-learn's fetcher.
    data_home: where the unpacked archive is cached (default ``$RNNBENCH_CACHE``, else
      ``~/.cache/rnnbench``), and scikit-learn's data home.

  Raises:
    DataError: the archive is missing or is not the release, or (with no archive) scikit-learn
      could not load or download the data.
  """
  if subset not in SUBSETS:
    raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
  source = "given as the archive argument / data.archive"
  if not archive:
    archive = os.environ.get(ARCHIVE_ENV) or None
    source = f"from ${ARCHIVE_ENV}"
  if archive:
    root = unpack_archive(archive, cache_root(data_home), source=source)
    return _read_subset(root, subset)
  return _fetch_with_sklearn(subset, data_home)


def load(data_config: Any, seed: int = 0) -> TextClassificationData:
  """The train and test subsets named by ``data_config`` (fields archive, data_home)."""
  del seed  # the order is scikit-learn's fixed one
  archive = getattr(data_config, "archive", "") or None
  data_home = getattr(data_config, "data_home", "") or None
  return from_subsets(fetch_20newsgroups("train", archive=archive, data_home=data_home),
                      fetch_20newsgroups("test", archive=archive, data_home=data_home))


def identity(data_config: Any, seed: int = 0) -> dict[str, Any] | None:
  """What ``load`` reads, for the prepared-array cache: the archive's (or scikit-learn's
  cached pickle's) content hash; None (no caching) when neither is there yet."""
  del seed
  archive = getattr(data_config, "archive", "") or os.environ.get(ARCHIVE_ENV)
  if archive:
    path = pathlib.Path(archive).expanduser()
    return {"archive_sha256": content_sha256(path)} if path.is_file() else None
  # scikit-learn's cache (sklearn.datasets.get_data_home, without importing scikit-learn).
  home = (getattr(data_config, "data_home", "") or os.environ.get("SCIKIT_LEARN_DATA")
          or "~/scikit_learn_data")
  pickle = pathlib.Path(home).expanduser() / "20news-bydate_py3.pkz"
  return {"sklearn_pkz_sha256": content_sha256(pickle)} if pickle.is_file() else None


def cache_root(data_home: str | os.PathLike[str] | None = None) -> pathlib.Path:
  """The folder that holds unpacked archives, one subfolder per archive content hash."""
  return cache_home(data_home) / _CACHE_SUBDIR


def unpack_archive(archive: str | os.PathLike[str], root: pathlib.Path,
                   source: str = "given as the archive argument") -> pathlib.Path:
  """The folder holding the archive's train and test folders, unpacking it the first time.

  It unpacks into a temporary folder next to the cache, checks it, then renames it into
  place, so an interrupted or failed run never leaves a cache that a later run would trust.
  """
  path = pathlib.Path(archive).expanduser()
  if not path.is_file():
    raise DataError(f"20 Newsgroups archive not found: {path} ({source}). {_HOW_TO_FIX}")
  try:
    key = _file_sha256(path)[:16]
  except OSError as e:
    raise DataError(f"cannot read the 20 Newsgroups archive {path} ({source}): {e}. "
                    f"{_HOW_TO_FIX}") from None
  final = root / key
  if _is_complete(final):
    return final
  try:
    root.mkdir(parents=True, exist_ok=True)
    if final.exists() and not _is_complete(final):  # damaged by hand: start again
      shutil.rmtree(final)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.", suffix=".partial", dir=root))
  except OSError as e:
    raise DataError(f"cannot create the cache folder {root} for the 20 Newsgroups archive: {e}. "
                    f"Set data.data_home or ${CACHE_ENV} to a writable folder.") from None
  try:
    try:
      with tarfile.open(path, "r:*") as tar:
        tar.extractall(tmp, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
      reason = str(e).splitlines()[0] if str(e) else ""
      raise DataError(
          f"cannot unpack {path} ({source}) into {root}: {type(e).__name__}: {reason}. It "
          f"should be the 20news-bydate.tar.gz release (a gzip-compressed tar archive). "
          f"{_HOW_TO_FIX}") from None
    missing = [f for f in (TRAIN_FOLDER, TEST_FOLDER) if not _has_subfolders(tmp / f)]
    if missing:
      raise DataError(
          f"{path} ({source}) is a tar archive but not the 20news-bydate release: it has "
          f"no {' or '.join(missing)} folder of newsgroups at its top level. {_HOW_TO_FIX}")
    try:
      os.replace(tmp, final)
    except OSError as e:
      if not _is_complete(final):  # else another process has just put the same data there
        raise DataError(f"cannot move the unpacked archive into {final}: {e}") from None
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return final


def _file_sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _has_subfolders(folder: pathlib.Path) -> bool:
  return folder.is_dir() and any(p.is_dir() for p in folder.iterdir())


def _is_complete(folder: pathlib.Path) -> bool:
  return (folder / TRAIN_FOLDER).is_dir() and (folder / TEST_FOLDER).is_dir()


def _load_folder(folder: pathlib.Path) -> tuple[list[str], list[int], list[str]]:
  """What ``sklearn.datasets.load_files(folder, encoding='latin1')`` reads, in its order.

  That is: class folders sorted, files sorted within each, then shuffled with load_files'
  default ``random_state=0``.
  """
  names = sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n)))
  paths, labels = [], []
  for label, name in enumerate(names):
    group = os.path.join(folder, name)
    files = sorted(os.listdir(group))
    paths += [os.path.join(group, f) for f in files]
    labels += [label] * len(files)
  order = _shuffled(len(paths), _LOAD_FILES_RANDOM_STATE)
  texts = []
  for i in order:
    with open(paths[i], "rb") as f:
      texts.append(f.read().decode("latin-1"))
  return texts, [labels[i] for i in order], names


def _read_subset(root: pathlib.Path, subset: str) -> TextDataset:
  """One subset in fetch_20newsgroups' order: for 'all' train then test; then shuffled."""
  texts, labels, names = [], [], []
  folders = {"train": [TRAIN_FOLDER], "test": [TEST_FOLDER]}.get(subset,
                                                                  [TRAIN_FOLDER, TEST_FOLDER])
  try:
    for folder in folders:
      more_texts, more_labels, names = _load_folder(root / folder)
      texts += more_texts
      labels += more_labels
  except OSError as e:
    raise DataError(f"cannot read the unpacked 20 Newsgroups cache in {root}: {e}. Delete that "
                    "folder and run again to unpack the archive anew.") from None
  order = _shuffled(len(texts), _RANDOM_STATE)
  return TextDataset(data=[texts[i] for i in order],
                     target=np.asarray(labels, dtype=np.int64)[order], target_names=names)


def _shuffled(n: int, random_state: int) -> np.ndarray:
  """``range(n)`` shuffled as scikit-learn's ``check_random_state(random_state)`` does it."""
  order = np.arange(n)
  np.random.RandomState(random_state).shuffle(order)
  return order


def _fetch_with_sklearn(subset: str, data_home: str | os.PathLike[str] | None) -> TextDataset:
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  # Its warnings (a retried download) are held back: if it fails, the one error says why.
  with warnings.catch_warnings(record=True) as held:
    warnings.simplefilter("always")
    try:
      bunch = datasets.fetch_20newsgroups(subset=subset, data_home=data_home or None)
    except (OSError, tarfile.TarError, EOFError, zlib.error) as e:
      where = data_home or os.environ.get("SCIKIT_LEARN_DATA") or "~/scikit_learn_data"
      raise DataError(
          f"20 Newsgroups: no local archive was given (the archive argument / data.archive and "
          f"${ARCHIVE_ENV} are unset), and scikit-learn could not load or download it into "
          f"{where}: {type(e).__name__}: {e}. {_HOW_TO_FIX}") from None
  for w in held:  # it worked: show them
    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
  return TextDataset(data=list(bunch.data), target=np.asarray(bunch.target),
                     target_names=list(bunch.target_names))
