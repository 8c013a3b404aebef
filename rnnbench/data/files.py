"""Your own data: CSV or JSON Lines files, or a folder per class (``data.name`` 'csv',
'jsonl' or 'folder'), configured by ``data.files`` (see configs/default.py).

* csv: a header row, then one document a row; ``text_column`` and ``label_column`` name the
  columns (others are ignored). Fields holding the delimiter or a line break are quoted.
* jsonl: one JSON object a line, with keys ``text_column`` (a string) and ``label_column``
  (a string or an integer). Blank lines are skipped.
* folder: one folder per class holding one text file per document, like the 20 Newsgroups
  release: class folders sorted by name, files sorted within each, then shuffled with a
  fixed seed exactly as ``sklearn.datasets.load_files`` does (so the validation fraction
  taken from the end mixes the classes). Hidden files and folders are skipped.

Rows keep the order of the file. Labels may be strings or integers; the classes are the
train split's distinct labels, sorted (integers, or strings of digits, by value), and each
label's id is its class's position. Test and validation labels must be among them.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from rnnbench.data.base import (DataError, TextClassificationData, content_sha256, encode_labels,
                                sorted_classes)

FORMATS = ("csv", "jsonl", "folder")
_LOAD_FILES_RANDOM_STATE = 0  # sklearn.datasets.load_files' default shuffle


def load(data_config: Any, seed: int = 0) -> TextClassificationData:
  """The train, test (data.files.test, else none) and validation (data.files.val) splits."""
  del seed  # files keep their order; folders are shuffled with load_files' fixed seed
  fmt = data_config.name
  if fmt not in FORMATS:
    raise DataError(f"data.name {fmt!r} is not a file format; use one of {', '.join(FORMATS)}")
  cfg = data_config.files
  if not cfg.train:
    raise DataError(f"data.name={fmt!r} reads your own files, but data.files.train is not set: "
                    f"give the train {'folder' if fmt == 'folder' else 'file'}, e.g. "
                    f"--config.data.files.train={'train/' if fmt == 'folder' else 'train.' + fmt}")
  texts, labels, classes = _read(fmt, "train", cfg)
  if classes is None:
    classes = sorted_classes(labels)
  splits = {"train": (texts, encode_labels(labels, classes, "the train labels"))}
  for split in ("test", "val"):
    if cfg[split]:
      more_texts, more_labels, _ = _read(fmt, split, cfg)
      what = f"the labels of {_where(cfg[split], split)}"
      splits[split] = (more_texts, encode_labels(more_labels, classes, what))
  test_texts, test_labels = splits.get("test", ([], np.zeros(0, np.int32)))
  val_texts, val_labels = splits.get("val", (None, None))
  return TextClassificationData(
      train_texts=texts, train_labels=splits["train"][1], test_texts=test_texts,
      test_labels=test_labels, label_names=[str(c) for c in classes], val_texts=val_texts,
      val_labels=val_labels)


def identity(data_config: Any, seed: int = 0) -> dict[str, Any] | None:
  """What ``load`` reads, for the prepared-array cache: each split's file (or each file of
  its class folders) by content; None (no caching) when one is missing or unreadable."""
  del seed
  out = {}
  try:
    for split in ("train", "test", "val"):
      given = data_config.files[split]
      if not given:
        continue
      path = pathlib.Path(given).expanduser()
      if data_config.name == "folder" and path.is_dir():
        members = sorted(p for p in path.rglob("*") if p.is_file())
        names = repr([str(p.relative_to(path)) for p in members])  # the class folders too
        out[split] = hashlib.sha256((names + content_sha256(*members)).encode()).hexdigest()
      elif data_config.name != "folder" and path.is_file():
        out[split] = content_sha256(path)
      else:
        return None  # load says what is wrong
  except OSError:
    return None
  return out


def _read(fmt: str, split: str, cfg: Any) -> tuple[list[str], list[Any], list[str] | None]:
  """The texts and labels of one split, and its class list for a folder (else None)."""
  path = pathlib.Path(cfg[split]).expanduser()
  where = _where(path, split)
  if fmt == "folder":
    if not path.is_dir():
      raise DataError(f"{where}: {'not a folder' if path.exists() else 'no such folder'}")
    return _read_folder(path, cfg.encoding, split)
  if not path.is_file():
    raise DataError(f"{where}: {'not a file' if path.exists() else 'no such file'}")
  text = _decode(path, cfg.encoding, split)
  if not text.strip():
    raise DataError(f"{where} is empty")
  if fmt == "csv":
    texts, labels = _parse_csv(text, cfg, where)
  else:
    texts, labels = _parse_jsonl(text, cfg, where)
  if not texts:
    raise DataError(f"{where} has a header but no rows")
  return texts, labels, None


def _where(path: Any, split: str) -> str:
  return f"{path} (data.files.{split})"


def _decode(path: pathlib.Path, encoding: str, split: str) -> str:
  """The file's text; a DataError that names the line of the first undecodable byte."""
  where = _where(path, split)
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise DataError(f"{where}: cannot read it: {e.strerror or e}") from None
  try:
    text = raw.decode(encoding)
  except LookupError:
    raise DataError(f"data.files.encoding={encoding!r} is not an encoding Python knows") from None
  except UnicodeDecodeError as e:
    line = raw.count(b"\n", 0, e.start) + 1
    raise DataError(
        f"{where}, line {line} (byte {e.start}): not valid {encoding} "
        f"({e.reason}); set data.files.encoding to the file's encoding (latin-1 reads any "
        f"bytes)") from None
  return text.removeprefix("\ufeff")  # a byte order mark is not part of the first field


def _parse_csv(text: str, cfg: Any, where: str) -> tuple[list[str], list[str]]:
  delimiter = {"\\t": "\t", "tab": "\t"}.get(cfg.delimiter, cfg.delimiter)
  if len(delimiter) != 1:
    raise DataError(f"data.files.delimiter must be one character (or '\\t'), got "
                    f"{cfg.delimiter!r}")
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
  texts, labels = [], []
  with _no_field_size_limit():
    try:
      header = next(reader)
      columns = _column_indices(header, cfg, where, delimiter)
      for row in reader:
        if not row:
          continue  # a blank line
        if len(row) != len(header):
          raise DataError(
              f"{where}, line {reader.line_num}: {len(row)} fields, but the header has "
              f"{len(header)}; quote fields that hold the delimiter {delimiter!r} or a line "
              f"break")
        text, label = row[columns[0]], row[columns[1]]
        if not label:
          raise DataError(f"{where}, line {reader.line_num}: the label "
                          f"({cfg.label_column!r}) is empty")
        texts.append(text)
        labels.append(label)
    except csv.Error as e:
      raise DataError(f"{where}, line {reader.line_num}: not valid CSV ({e})") from None
  return texts, labels


def _column_indices(header: list[str], cfg: Any, where: str, delimiter: str) -> tuple[int, int]:
  for field in ("text_column", "label_column"):
    if cfg[field] not in header:
      hint = ""
      if len(header) == 1:
        hint = (f" (one column only: is data.files.delimiter={delimiter!r} the file's "
                f"delimiter?)")
      raise DataError(f"{where} has no column {cfg[field]!r} (data.files.{field}); its "
                      f"columns are: {', '.join(map(repr, header))}{hint}")
  return header.index(cfg.text_column), header.index(cfg.label_column)


@contextlib.contextmanager
def _no_field_size_limit() -> Iterator[None]:
  """Lifts csv's 131,072-character field limit (long documents are fine) for a while."""
  old = csv.field_size_limit(2**31 - 1)
  try:
    yield
  finally:
    csv.field_size_limit(old)


def _parse_jsonl(text: str, cfg: Any, where: str) -> tuple[list[str], list[Any]]:
  texts, labels = [], []
  for number, line in enumerate(text.split("\n"), start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise DataError(f"{where}, line {number}: not JSON ({e.msg}, column {e.colno})") from None
    if not isinstance(record, dict):
      raise DataError(f"{where}, line {number}: a JSON {type(record).__name__}, not an object "
                      "({...})")
    for field in ("text_column", "label_column"):
      if cfg[field] not in record:
        raise DataError(f"{where}, line {number}: no key {cfg[field]!r} (data.files.{field}); "
                        f"its keys are: {', '.join(map(repr, record))}")
    text, label = record[cfg.text_column], record[cfg.label_column]
    if not isinstance(text, str):
      raise DataError(f"{where}, line {number}: the text ({cfg.text_column!r}) is "
                      f"{json.dumps(text)[:40]}, not a string")
    if type(label) not in (int, str) or label == "":
      raise DataError(f"{where}, line {number}: the label ({cfg.label_column!r}) is "
                      f"{json.dumps(label)[:40]}, not a string or an integer")
    texts.append(text)
    labels.append(label)
  return texts, labels


def _read_folder(folder: pathlib.Path, encoding: str,
                 split: str) -> tuple[list[str], list[str], list[str]]:
  """``sklearn.datasets.load_files(folder)``'s documents, in its order (hidden files aside)."""
  where = _where(folder, split)
  try:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and _visible(p))
    paths, labels = [], []
    for name in classes:
      files = sorted(p.name for p in (folder / name).iterdir() if p.is_file() and _visible(p))
      paths += [folder / name / f for f in files]
      labels += [name] * len(files)
  except OSError as e:
    raise DataError(f"{where}: cannot list {e.filename}: {e.strerror or e}") from None
  if not classes:
    raise DataError(f"{where} has no class folders: it should hold one folder per class "
                    f"(e.g. {folder / 'pos'}, {folder / 'neg'}), each with one text file per "
                    "document")
  if not paths:
    raise DataError(f"{where}: its class folders ({', '.join(classes[:10])}) hold no files")
  order = np.random.RandomState(_LOAD_FILES_RANDOM_STATE).permutation(len(paths)).tolist()
  texts = [_decode(paths[i], encoding, split) for i in order]
  return texts, [labels[i] for i in order], classes


def _visible(path: pathlib.Path) -> bool:
  return not path.name.startswith(".")
