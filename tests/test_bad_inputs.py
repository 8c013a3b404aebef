"""Every bad input is one clear line: bad config values, damaged artefacts, bad flags, and an
untrusted workdir, whose config must not make evaluate read, unpickle or download anything.

The command-line probes run as subprocesses, all at once (``_run_all``), to keep this fast.
"""

from __future__ import annotations

import codecs
import json
import os
import pathlib
import pickle
import shutil
import socket
import subprocess
import sys
import textwrap
import warnings

import ml_collections
import numpy as np
import pytest

import conftest
from conftest import small_config
from rnnbench import evaluate
from rnnbench import input_pipeline
from rnnbench import runs
from rnnbench import train
from rnnbench import validation
from rnnbench.data import newsgroups

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKZ = "20news-bydate_py3.pkz"  # scikit-learn's 20 Newsgroups cache: a zlib-compressed pickle

TINY_RUN = [
    "--config=configs/default.py", "--config.data.name=synthetic",
    "--config.data.synthetic.num_train=120", "--config.data.synthetic.num_test=30",
    "--config.data.synthetic.num_classes=4", "--config.data.synthetic.vocab_size=300",
    "--config.data.synthetic.doc_len=24", "--config.data.num_words=300",
    "--config.data.maxlen=16", "--config.model.cell=gru", "--config.model.embed_dim=8",
    "--config.model.hidden_size=8", "--config.model.dense_size=8",
    "--config.train.batch_size=32", "--config.train.tensorboard=False",
]


def _env(**changes) -> dict[str, str]:
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  for key, value in changes.items():
    if value is None:
      env.pop(key, None)
    else:
      env[key] = str(value)
  return env


def _run_all(commands: dict[str, list[str]], env: dict[str, str] | None = None
             ) -> dict[str, subprocess.CompletedProcess]:
  """Runs every ``python <args>`` at once; their results by name."""
  procs = {name: subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env or _env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for name, args in commands.items()}
  out = {}
  for name, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=600)
    out[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
  return out


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
  """The one stderr line of a failed command; asserts it names every needle."""
  assert proc.returncode != 0, proc.stdout[-2000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr[-3000:]
  for needle in needles:
    assert needle in lines[0], lines[0]
  return lines[0]


# -- the whole config, validated up front ------------------------------------------------------

BAD_VALUES = [
    ("train.batch_size", 0), ("train.batch_size", -1), ("train.eval_batch_size", 0),
    ("data.num_words", 0), ("data.num_words", 1), ("model.hidden_size", 0),
    ("model.embed_dim", 0), ("model.dense_size", 0), ("data.maxlen", 0),
    ("train.keep_checkpoints", 0), ("model.dropout", 1.5), ("model.dropout", -0.1),
    ("train.checkpoint_every_steps", -1), ("train.num_epochs", 0), ("model.num_layers", 0),
    ("data.validation_split", 1.0), ("train.learning_rate", 0.0), ("data.padding", "middle"),
    ("data.truncating", "both"), ("model.pooling", "sum"), ("model.cell", "rnn"),
    ("train.optimizer", "sgd"), ("train.loss", "mse"), ("train.dtype", "float64"),
    ("model.recurrent_activation", "swish"), ("model.impl", "cudnn"),
    ("model.scan", "tree"), ("model.unroll", 0), ("train.log_every_steps", -1),
    ("data.max_train_docs", -5), ("data.synthetic.num_classes", 1), ("seed", -1),
    ("train.num_devices", -1), ("model.bidirectional", "yes"), ("train.batch_size", 2.5),
    ("model.hidden_size", True), ("data.name", "imagenet"), ("data.name", "tfds:"),
    ("model.r_min", 1.5),
]


def _set(config, field, value):
  *parents, leaf = field.split(".")
  node = config
  for part in parents:
    node = node[part]
  with node.ignore_type():
    node[leaf] = value


@pytest.mark.parametrize("field,value", BAD_VALUES)
def test_every_bad_value_is_one_line_naming_field_and_fix(field, value):
  config = small_config()
  _set(config, field, value)
  with pytest.raises(validation.ConfigError) as e:
    validation.validate(config)
  message = str(e.value)
  assert "\n" not in message
  assert f"config.{field}={value!r}" in message
  assert f"--config.{field}=" in message  # the fix


def test_good_configs_pass():
  from configs import default, gru, lstm  # pylint: disable=g-import-not-at-top
  for module in (default, gru, lstm):
    validation.validate(module.get_config())
  validation.validate(small_config())
  config = small_config()
  _set(config, "model.unroll", "auto")
  validation.validate(config)


def test_validation_comes_before_any_data_or_file(tmp_path, monkeypatch):
  config = small_config(**{"train.batch_size": 0})
  read = []
  monkeypatch.setattr(input_pipeline, "prepare", lambda c: read.append(c))
  with pytest.raises(validation.ConfigError, match="train.batch_size"):
    train.train_and_evaluate(config, tmp_path / "run")
  assert not read and not (tmp_path / "run").exists()


def test_batch_far_above_the_dataset_is_one_batch_of_it(tmp_path):
  """batch_size 100000 on 180 rows trains as one batch of 180, as Keras does (no padding)."""
  big = train.train_and_evaluate(
      small_config(**{"train.batch_size": 100_000, "train.eval_batch_size": 10**9,
                      "train.num_epochs": 1}), tmp_path / "big")
  exact = train.train_and_evaluate(
      small_config(**{"train.batch_size": 180, "train.eval_batch_size": 40,
                      "train.num_epochs": 1}), tmp_path / "exact")
  assert big["num_train"] == 180
  for key in ("loss", "val_loss", "test_loss", "test_accuracy"):
    assert big[key] == exact[key], key


# -- a real run through run.py, and the command-line probes on it ------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[pathlib.Path, subprocess.CompletedProcess]:
  """A tiny run trained by run.py with stdout and stderr redirected (not terminals)."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  proc = subprocess.run([sys.executable, "run.py", *TINY_RUN, "--config.train.num_epochs=2",
                         f"--workdir={workdir}"], cwd=ROOT, env=_env(), capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir, proc


def test_redirected_output_has_one_keras_line_per_epoch_and_no_bar_frames(trained):
  _, proc = trained
  assert "\r" not in proc.stdout and "\r" not in proc.stderr
  epoch_lines = [l for l in proc.stdout.splitlines() if "ms/step" in l]
  assert len(epoch_lines) == 2, proc.stdout
  assert all(l.startswith("108/108 [====") and "val_accuracy" in l for l in epoch_lines)
  assert "Unable to initialize backend" not in proc.stderr


FAKE_TPU = textwrap.dedent("""
    from absl import app
    import jax
    from jax._src import xla_bridge
    from rnnbench import cli

    def no_tpu():
      raise RuntimeError("TPU initialization failed: no TPU on this machine")

    xla_bridge.register_backend_factory("tpu", no_tpu, priority=400, fail_quietly=True)
    app.run(lambda argv: print(jax.default_backend()), flags_parser=cli.parse_flags)
""")


@pytest.fixture(scope="module")
def probes(trained, tmp_path_factory):
  """Every command-line probe, run at once; their results by name, and the temp folder."""
  workdir, _ = trained
  tmp = tmp_path_factory.mktemp("probes")
  damaged = tmp / "damaged"
  shutil.copytree(workdir, damaged)
  (damaged / "labels.json").write_bytes(b"\xff\xfe[]")
  script = tmp / "fake_tpu.py"
  script.write_text(FAKE_TPU)
  predict = ["-m", "rnnbench.predict", f"--workdir={workdir}"]
  commands = {
      "batch_size": ["run.py", *TINY_RUN, "--config.train.batch_size=0",
                     f"--workdir={tmp / 'a' / 'run'}"],
      "data_error": ["run.py", *TINY_RUN, "--config.data.name=csv",
                     f"--workdir={tmp / 'new' / 'run'}"],
      "sweep": ["-m", "rnnbench.sweep", "--configs=configs/gru.py", "--seeds=0",
                f"--root={tmp / 'sweep'}", "--config.train.num_epochs=0"],
      "bench": ["-m", "rnnbench.bench", "--config=configs/default.py",
                "--bench.cells=no_such_cell", "--bench.modes=train", "--bench.steps=1",
                "--bench.warmup=0", "--bench.batch_sizes=2", "--bench.seq_lens=4",
                "--bench.hidden_sizes=4"],
      "predict_missing": ["-m", "rnnbench.predict", f"--workdir={tmp / 'nowhere'}", "hi"],
      "top_k": [*predict, "--top_k=0", "hi"],
      "predict_damaged": ["-m", "rnnbench.predict", f"--workdir={damaged}", "hi"],
      "evaluate_flag": ["-m", "rnnbench.evaluate", f"--workdir={workdir}",
                        "--config.model.cell=lstm"],
      "tpu_quiet": [str(script)],
      "tpu_verbose": [str(script), "--verbosity=1"],
  }
  return _run_all(commands, _env(JAX_PLATFORMS=None)), tmp


@pytest.mark.parametrize("name,needles", [
    ("batch_size", ["config.train.batch_size=0", "--config.train.batch_size="]),
    ("data_error", ["data.files.train is not set", "--config.data.files.train="]),
    ("sweep", ["configs/gru.py", "config.train.num_epochs=0", "--config.train.num_epochs="]),
    ("predict_missing", ["nowhere does not exist"]),
    ("top_k", ["--top_k=0", ">= 1"]),
    ("predict_damaged", ["labels.json is not UTF-8"]),
    ("evaluate_flag", ["'model'", "set only where the data is", "--config.data.archive"]),
])
def test_command_line_probe_is_one_line(probes, name, needles):
  _one_line_error(probes[0][name], *needles)


def test_bad_config_writes_nothing_and_a_failed_run_leaves_no_folder(probes):
  _, tmp = probes
  for made in ("a", "new", "sweep"):
    assert not (tmp / made).exists(), made


def test_bench_fails_when_every_case_failed(probes):
  proc = probes[0]["bench"]
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: all 1 benchmark cases failed (see the errors above)")
  assert "unknown cell 'no_such_cell'" in proc.stdout


def test_no_backend_search_lines_unless_asked(probes):
  quiet, verbose = probes[0]["tpu_quiet"], probes[0]["tpu_verbose"]
  assert quiet.returncode == 0 and verbose.returncode == 0, quiet.stderr + verbose.stderr
  assert quiet.stdout.strip() == "cpu"
  assert "Unable to initialize backend 'tpu'" not in quiet.stderr
  assert "Unable to initialize backend 'tpu'" in verbose.stderr  # the test can see it


@pytest.mark.parametrize("make,needle", [
    (lambda tmp: tmp, "not a file"),
    (lambda tmp: tmp / "none.txt", "none.txt: no such file"),
    (lambda tmp: _write(tmp / "latin1.txt", "caf\xe9\n".encode("latin-1")),
     "latin1.txt: not UTF-8 text (byte 3)"),
])
def test_predict_input_errors(tmp_path, make, needle):
  path = make(tmp_path)
  with pytest.raises(runs.RunError) as e:
    runs.read_texts(str(path))
  assert str(e.value).startswith(f"--input={path}") and needle in str(e.value)
  assert "\n" not in str(e.value)


def _write(path: pathlib.Path, content: bytes) -> pathlib.Path:
  path.write_bytes(content)
  return path


# -- damaged artefacts -------------------------------------------------------------------------

def _edit_config(workdir, **changes):
  config = json.loads((workdir / "config.json").read_text())
  for key, value in changes.items():
    section, field = key.split(".")
    config[section][field] = value
  return json.dumps(config).encode()


DAMAGED = [
    ("config.json", b"\xff\xfe{}", "config.json is not UTF-8"),
    ("config.json", b"{", "config.json is not JSON"),
    ("config.json", b"[1, 2]", "config.json is not a run config"),
    ("config.json", lambda w: _edit_config(w, **{"model.hidden_size": 0}),
     "config.model.hidden_size=0 must be an integer >= 1"),
    ("config.json", lambda w: _edit_config(w, **{"model.cell": "nope"}), "config.model.cell='nope'"),
    ("config.json", lambda w: _edit_config(w, **{"model.hidden_size": 12}),
     "params.msgpack does not match config.json"),
    ("config.json", lambda w: _edit_config(w, **{"data.num_words": 500}),
     "tokenizer.json keeps num_words=300"),
    ("labels.json", b"\xff[]", "labels.json is not UTF-8"),
    ("labels.json", b'{"a": 1}', "labels.json is not a list of at least two class names"),
    ("labels.json", b'["a", 2]', "labels.json is not a list"),
    ("labels.json", b'["a", "b", "c", "d", "e"]', "params.msgpack does not match"),
    ("tokenizer.json", b"\xfe\xff", "tokenizer.json is not UTF-8"),
    ("tokenizer.json", b"[]", "tokenizer.json: not a tokenizer"),
    ("params.msgpack", b"garbage", "params.msgpack is not the parameters"),
    ("labels.json", "folder", "no labels.json (the class names; a folder, not a file)"),
    ("config.json", None, "no config.json (the config; missing)"),
]


@pytest.mark.parametrize("name,content,match", DAMAGED)
def test_damaged_artefact_is_one_line_naming_the_file(trained, tmp_path, name, content, match):
  copy = tmp_path / "copy"
  shutil.copytree(trained[0], copy)
  target = copy / name
  if content is None:
    target.unlink()
  elif content == "folder":
    target.unlink()
    target.mkdir()
  else:
    target.write_bytes(content(copy) if callable(content) else content)
  with pytest.raises(runs.RunError) as e:
    runs.load_run(copy)
  assert "\n" not in str(e.value)
  assert match in str(e.value)


def test_checkpoint_problems_are_one_line_without_run_py_flags(trained, tmp_path):
  copy = tmp_path / "copy"
  shutil.copytree(trained[0], copy)
  (copy / "params.msgpack").unlink()
  (copy / "config.json").write_bytes(_edit_config(copy, **{"train.learning_rate": 0.5}))
  with pytest.raises(runs.RunError) as e:
    runs.load_run(copy)  # the checkpoint's fingerprint differs from the edited config
  assert "\n" not in str(e.value) and "checkpoint cannot be used" in str(e.value)
  assert "--config" not in str(e.value)
  shutil.rmtree(copy / "checkpoints")
  with pytest.raises(runs.RunError, match="neither params.msgpack nor a checkpoint"):
    runs.load_run(copy)
  assert not (copy / "checkpoints").exists()  # reading a workdir writes nothing into it


def test_workdir_missing_or_a_file(tmp_path):
  with pytest.raises(runs.RunError, match="does not exist"):
    runs.load_run(tmp_path / "gone")
  (tmp_path / "file").write_text("x")
  with pytest.raises(runs.RunError, match="is not a folder"):
    runs.load_run(tmp_path / "file")


# -- the trust model: a workdir's config names no data location --------------------------------

class _Payload:
  """Unpickling it writes ``marker``: what a crafted scikit-learn cache could do."""

  def __init__(self, marker: pathlib.Path):
    self.marker = str(marker)

  def __reduce__(self):
    return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _write_pkz(path: pathlib.Path, obj) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(codecs.encode(pickle.dumps(obj), "zlib_codec"))


def _benign_cache(label_names: list[str]) -> dict:
  from sklearn.utils import Bunch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)

  def subset(n):
    target = rng.integers(0, len(label_names), n)
    return Bunch(data=[f"bafa kela {i}" for i in range(n)], target=target,
                 target_names=list(label_names),
                 filenames=np.array([f"doc{i}" for i in range(n)]))

  return {"train": subset(30), "test": subset(12)}


@pytest.fixture
def malicious(trained, tmp_path):
  """A copy of the run whose config.json points every data location at crafted files."""
  copy = tmp_path / "evil_run"
  shutil.copytree(trained[0], copy)
  evil = tmp_path / "evil_home"
  marker = tmp_path / "PWNED"
  _write_pkz(evil / PKZ, _Payload(marker))
  secret = tmp_path / "secret.csv"
  secret.write_text("text,label\nTOP-SECRET-CONTENT,1\n")
  config = json.loads((copy / "config.json").read_text())
  config["data"].update(name="20newsgroups", archive="", data_home=str(evil))
  config["data"]["tfds"].update(data_dir=str(evil), download=True)
  config["data"]["files"].update(train=str(secret), test=str(secret), val=str(secret))
  config["dist"] = {"initialize": True, "coordinator": "evil.example:1234",
                    "num_processes": 2, "process_id": 0}
  (copy / "config.json").write_text(json.dumps(config))
  return copy, evil, marker, secret


def test_the_crafted_pickle_is_live(tmp_path):
  """The payload does write its marker when unpickled, so the tests below would see it."""
  marker = tmp_path / "live"
  _write_pkz(tmp_path / PKZ, _Payload(marker))
  pickle.loads(codecs.decode((tmp_path / PKZ).read_bytes(), "zlib_codec"))
  assert marker.read_text() == "pwned"


def test_evaluate_never_unpickles_the_workdirs_data_home(malicious, tmp_path):
  """evaluate on it, with no archive: the data comes from $SCIKIT_LEARN_DATA, not the workdir."""
  copy, _, marker, _ = malicious
  home = tmp_path / "my_sklearn_data"  # the user's own scikit-learn data home (trusted)
  labels = json.loads((copy / "labels.json").read_text())
  _write_pkz(home / PKZ, _benign_cache(labels))
  results = _run_all({
      "evaluate": ["-m", "rnnbench.evaluate", f"--workdir={copy}"],
      "predict": ["-m", "rnnbench.predict", f"--workdir={copy}", "--json", "bafa kela"],
  }, _env(RNNBENCH_20NEWS_ARCHIVE=None, SCIKIT_LEARN_DATA=home, HOME=tmp_path,
          RNNBENCH_CACHE=tmp_path / "cache"))
  assert not marker.exists()
  for proc in results.values():
    assert proc.returncode == 0, proc.stderr[-3000:]
  scored = json.loads(results["evaluate"].stdout.splitlines()[-1])
  assert scored["split"] == "test" and scored["count"] == 12
  assert not (tmp_path / "evil_home" / "20news_home").exists()


def test_loaded_config_keeps_model_and_preprocessing_only(malicious, trained):
  copy, _, _, _ = malicious
  config = runs.load_run(copy).config
  original = json.loads((trained[0] / "config.json").read_text())
  for field, value in runs.LOCATION_FIELDS.items():
    *parents, leaf = field.split(".")
    node = config
    for part in parents:
      node = node[part]
    assert node[leaf] == value, field
  assert "dist" not in config
  assert config.model.to_dict() == original["model"]
  assert config.data.maxlen == original["data"]["maxlen"]


def test_files_named_by_the_workdir_are_not_read(malicious):
  copy, _, _, secret = malicious
  run = runs.load_run(copy)
  run.config.data.name = "csv"
  with pytest.raises(Exception) as e:
    evaluate.evaluate_run(run)
  assert "TOP-SECRET" not in str(e.value) and str(secret) not in str(e.value)
  assert "--config.data.files.train=" in str(e.value)  # a flag evaluate has
  run.config.data.files.update(train=str(secret), test=str(secret))  # the user's own choice
  assert evaluate.evaluate_run(run)["count"] == 1


def test_locations_come_from_the_command_line(trained):
  run = runs.load_run(trained[0])
  given = runs.data_locations()
  given.data.archive = "/data/20news-bydate.tar.gz"
  given.data.tfds.download = True
  runs.apply_locations(run.config, given)
  assert run.config.data.archive == "/data/20news-bydate.tar.gz"
  assert run.config.data.tfds.download is True
  assert isinstance(given, ml_collections.ConfigDict)


# -- a new user's path -------------------------------------------------------------------------

def test_tfds_offline_fails_at_once(tmp_path, monkeypatch):
  pytest.importorskip("tensorflow_datasets")
  from rnnbench import data  # pylint: disable=g-import-not-at-top

  def offline(*args, **kwargs):
    raise socket.gaierror(-2, "Name or service not known")

  for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
              "all_proxy"):
    monkeypatch.delenv(var, raising=False)
  monkeypatch.setattr(socket, "getaddrinfo", offline)
  config = small_config()
  config.data.name = "tfds:imdb_reviews"
  config.data.tfds.data_dir = str(tmp_path)
  with pytest.raises(data.DataError) as e:
    data.load(config.data)
  message = str(e.value)
  assert "no network to download it" in message and "--config.data.tfds.data_dir=" in message
  assert "\n" not in message


def test_sklearn_warnings_do_not_precede_its_error(tmp_path, monkeypatch):
  import sklearn.datasets  # pylint: disable=g-import-not-at-top

  def retrying(**kwargs):
    warnings.warn("Retry downloading from url: https://ndownloader.figshare.com/files/5975967")
    raise OSError("no network")

  monkeypatch.setattr(sklearn.datasets, "fetch_20newsgroups", retrying)
  monkeypatch.delenv("RNNBENCH_20NEWS_ARCHIVE", raising=False)  # CI sets it: take sklearn's path
  with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    with pytest.raises(newsgroups.DataError, match="no network"):
      newsgroups.fetch_20newsgroups("train", data_home=tmp_path)
  assert not seen


def test_real_data_tests_skip_on_a_fresh_clone_but_fail_under_ci(tmp_path, monkeypatch):
  monkeypatch.setenv("RNNBENCH_20NEWS_ARCHIVE", str(tmp_path / "missing.tar.gz"))
  monkeypatch.delenv("CI", raising=False)
  with pytest.raises(pytest.skip.Exception, match="missing.tar.gz"):
    conftest.find_news_archive()
  monkeypatch.setenv("CI", "true")
  with pytest.raises(pytest.fail.Exception, match="CI is set"):
    conftest.find_news_archive()
