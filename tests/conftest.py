"""Shared test setup: the repo root on sys.path (for ``configs``) and the real-data archive."""

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

_DEFAULT_ARCHIVE = ROOT.parent / "shared" / "data" / "20news-bydate.tar.gz"


@pytest.fixture(scope="session")
def news_archive() -> pathlib.Path:
  """The real 20news-bydate archive: $RNNBENCH_20NEWS_ARCHIVE, else ../shared/data."""
  path = pathlib.Path(os.environ.get("RNNBENCH_20NEWS_ARCHIVE") or _DEFAULT_ARCHIVE)
  if not path.is_file():
    pytest.fail(f"the 20news-bydate archive is needed for this test and is not at {path}; "
                "set RNNBENCH_20NEWS_ARCHIVE to its path")
  return path
