"""Shared test setup: the repo root on sys.path (for ``configs``) and the real-data archive."""

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from configs import default  # pylint: disable=g-import-not-at-top,wrong-import-position

_DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "20news-bydate.tar.gz"


@pytest.fixture(scope="session", autouse=True)
def _own_cache(tmp_path_factory):
  """The tests' own $RNNBENCH_CACHE (unpacked archives, prepared arrays), unless one is set:
  a test never reads, or leaves, entries in the user's ~/.cache/rnnbench."""
  if os.environ.get("RNNBENCH_CACHE"):
    yield
    return
  os.environ["RNNBENCH_CACHE"] = str(tmp_path_factory.mktemp("rnnbench-cache"))
  try:
    yield
  finally:
    os.environ.pop("RNNBENCH_CACHE", None)


@pytest.fixture(scope="session")
def news_archive() -> pathlib.Path:
  """The real 20news-bydate archive (``find_news_archive``)."""
  return find_news_archive()


def find_news_archive() -> pathlib.Path:
  """The real 20news-bydate archive: $RNNBENCH_20NEWS_ARCHIVE, else ../shared/data.

  Without it the test is skipped (a fresh clone), except under CI (``CI=true``), where a
  missing archive fails the test.
  """
  path = pathlib.Path(os.environ.get("RNNBENCH_20NEWS_ARCHIVE") or _DEFAULT_ARCHIVE)
  if not path.is_file():
    message = (f"the 20news-bydate archive is needed for this test and is not at {path}; "
               "set RNNBENCH_20NEWS_ARCHIVE to its path")
    if in_ci():
      pytest.fail(message + " (CI is set: real-data tests must run)")
    pytest.skip(message)
  return path


def in_ci() -> bool:
  """Whether $CI says this is a CI run (true, 1, yes)."""
  return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def small_config(**overrides):
  config = default.get_config()
  config.data.name = "synthetic"
  config.data.synthetic.update(num_train=200, num_test=40, num_classes=4, vocab_size=300,
                               doc_len=24)
  config.data.num_words = 300
  config.data.maxlen = 16
  config.model.update(cell="gru", embed_dim=16, hidden_size=8, dense_size=8, dropout=0.1)
  config.train.update(num_epochs=3, batch_size=32, eval_batch_size=64, progress=False,
                      learning_rate=1e-2)
  for key, value in overrides.items():
    section, field = key.split(".")
    config[section][field] = value
  return config


def default_config_with(options):
  """The notebook's config (configs/default.py) with ``{"section.field": value}`` set."""
  config = default.get_config()
  for key, value in options.items():
    section, field = key.split(".")
    config[section][field] = value
  return config


def assert_same_training(want, got, want_metrics, got_metrics):
  """Two train states' params and Adam moments, and their metric sums, equal to float32
  rounding (relative to each leaf's largest magnitude)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  leaves = lambda s: jax.tree_util.tree_flatten_with_path((s.params, s.opt_state.mu,
                                                           s.opt_state.nu))[0]
  for (path, a), (_, b) in zip(leaves(want), leaves(got)):
    a, b = np.asarray(a), np.asarray(b)
    assert np.max(np.abs(a - b)) <= 2e-5 * (np.max(np.abs(a)) + 1e-30), \
        jax.tree_util.keystr(path)
  for k in want_metrics:
    np.testing.assert_allclose(got_metrics[k], want_metrics[k], rtol=1e-5)
