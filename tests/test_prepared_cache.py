"""The prepared-array cache: a hit equals a fresh build; any change of data, field or code is a
miss; a damaged or mismatched entry is rebuilt, never trusted; the cache never fails a run."""

import logging
import os
import pathlib

import numpy as np
import pytest

from conftest import small_config
from rnnbench import input_pipeline
from rnnbench import prepared_cache
from rnnbench import sweep
from rnnbench import train


def _config(tmp_path, **overrides):
  config = small_config(**overrides)
  config.data.data_home = str(tmp_path / "home")
  return config


def _same(a, b):
  for split in ("train", "val", "test"):
    np.testing.assert_array_equal(getattr(a, split).x, getattr(b, split).x)
    np.testing.assert_array_equal(getattr(a, split).y, getattr(b, split).y)
    assert getattr(a, split).x.dtype == getattr(b, split).x.dtype == np.int32
  assert a.label_names == b.label_names
  assert a.tokenizer_json == b.tokenizer_json
  assert a.tokenizer.get_config() == b.tokenizer.get_config()


def _entries(config):
  return sorted(prepared_cache.root(config).glob("*.npz"))


def test_a_hit_equals_a_fresh_build(tmp_path):
  config = _config(tmp_path)
  first = input_pipeline.prepare(config)
  assert not first.from_cache and len(_entries(config)) == 1
  second = input_pipeline.prepare(config)
  assert second.from_cache
  _same(second, first)
  _same(second, input_pipeline.build(config))
  assert input_pipeline.data_digest(second) == input_pipeline.data_digest(first)


@pytest.mark.parametrize("field,value", [
    ("data.maxlen", 12), ("data.num_words", 100), ("data.padding", "post"),
    ("data.validation_split", 0.2), ("data.max_train_docs", 150), ("data.lower", False),
    ("data.synthetic.doc_len", 30), ("seed", 1)])
def test_every_field_that_changes_the_arrays_is_in_the_key(tmp_path, field, value):
  config, changed = _config(tmp_path), _config(tmp_path)
  sweep.apply_overrides(changed, [f"{field}={value!r}"])
  assert prepared_cache.key(changed) != prepared_cache.key(config)


def test_locations_and_the_switch_are_not_in_the_key(tmp_path):
  config = _config(tmp_path)
  moved = _config(tmp_path)
  moved.data.data_home = str(tmp_path / "elsewhere")
  assert prepared_cache.key(moved) == prepared_cache.key(config)
  config.data.cache = False
  assert prepared_cache.key(config) is None
  input_pipeline.prepare(config)
  assert not prepared_cache.root(config).exists()


def test_the_archive_content_is_the_identity(tmp_path, monkeypatch):
  monkeypatch.delenv("RNNBENCH_20NEWS_ARCHIVE", raising=False)
  config = _config(tmp_path)
  config.data.name = "20newsgroups"
  archive = tmp_path / "20news-bydate.tar.gz"
  config.data.archive = str(archive)
  assert prepared_cache.key(config) is None  # not there: load says so, nothing is cached
  archive.write_bytes(b"one")
  key = prepared_cache.key(config)
  archive.write_bytes(b"two")  # same size, same path
  assert key is not None and prepared_cache.key(config) != key
  archive.write_bytes(b"one")
  seeded = _config(tmp_path)
  seeded.data.name, seeded.data.archive, seeded.seed = "20newsgroups", str(archive), 7
  assert prepared_cache.key(config) == key == prepared_cache.key(seeded)  # order is fixed
  assert prepared_cache.key(_config(tmp_path, **{"data.name": "tfds:imdb_reviews"})) is None


def test_a_data_file_edited_in_place_is_a_miss(tmp_path):
  csv = tmp_path / "train.csv"
  csv.write_text("text,label\nthe cat,a\nthe dog,b\n")
  config = _config(tmp_path)
  config.data.name = "csv"
  config.data.files.train = str(csv)
  config.data.validation_split = 0.5
  first = input_pipeline.prepare(config)
  stat = csv.stat()
  csv.write_text("text,label\nthe cow,a\nthe dog,b\n")  # same size
  os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
  second = input_pipeline.prepare(config)
  assert not second.from_cache and "cow" in second.tokenizer.word_index
  assert "cat" in first.tokenizer.word_index


def test_a_damaged_entry_is_rebuilt(tmp_path, caplog):
  config = _config(tmp_path)
  good = input_pipeline.prepare(config)
  (entry,) = _entries(config)
  raw = bytearray(entry.read_bytes())
  raw[len(raw) // 2] ^= 0xFF  # one flipped byte inside the arrays
  entry.write_bytes(bytes(raw))
  with caplog.at_level(logging.WARNING):
    again = input_pipeline.prepare(config)
  assert not again.from_cache
  assert "cannot be used" in caplog.text and str(entry) in caplog.text
  _same(again, good)
  assert input_pipeline.prepare(config).from_cache  # written again, intact
  entry.write_bytes(entry.read_bytes()[:100])  # truncated
  assert not input_pipeline.prepare(config).from_cache


def test_an_entry_under_another_key_is_not_trusted(tmp_path):
  config = _config(tmp_path)
  input_pipeline.prepare(config)
  other = _config(tmp_path, **{"data.maxlen": 12})
  (entry,) = _entries(config)
  entry.rename(entry.with_name(f"{prepared_cache.key(other)}.npz"))
  got = input_pipeline.prepare(other)
  assert not got.from_cache and got.train.x.shape[1] == 12


def test_an_unwritable_cache_warns_and_the_run_goes_on(tmp_path, caplog):
  home = tmp_path / "home"
  home.write_text("a file, not a folder")
  config = _config(tmp_path)
  with caplog.at_level(logging.WARNING):
    data = input_pipeline.prepare(config)
  assert not data.from_cache and len(data.train) == 180
  assert "cannot write the prepared-array cache" in caplog.text


def test_only_the_newest_entries_are_kept(tmp_path, monkeypatch):
  monkeypatch.setattr(prepared_cache, "MAX_ENTRIES", 2)
  configs = [_config(tmp_path, **{"data.maxlen": m}) for m in (10, 11, 12)]
  for i, config in enumerate(configs):
    input_pipeline.prepare(config)
    for entry in _entries(config):  # distinct mtimes, oldest first
      os.utime(entry, (1000 + i, 1000 + i) if entry.stem == prepared_cache.key(config) else
               (entry.stat().st_atime, entry.stat().st_mtime))
  kept = {p.stem for p in _entries(configs[0])}
  assert kept == {prepared_cache.key(c) for c in configs[1:]}


def test_a_second_run_reads_the_cache_and_resumes_alike(tmp_path, capsys):
  config = _config(tmp_path, **{"train.num_epochs": 1})
  train.train_and_evaluate(config, tmp_path / "a")
  assert "from the cache" not in capsys.readouterr().out
  train.train_and_evaluate(config, tmp_path / "b")
  assert "from the cache" in capsys.readouterr().out
  for name in ("tokenizer.json", "labels.json"):
    assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()


def test_the_real_data_from_the_cache_equals_a_fresh_build(news_archive, tmp_path):
  from rnnbench.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.data.archive = str(news_archive)
  config.data.data_home = str(tmp_path / "home")
  built = input_pipeline.prepare(config)
  hit = input_pipeline.prepare(config)
  assert hit.from_cache and not built.from_cache
  _same(hit, built)
  assert hit.train.x.shape == (10182, 100) and hit.test.x.shape == (7532, 100)
  assert pathlib.Path(prepared_cache.root(config)).is_dir()
