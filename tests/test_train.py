"""End-to-end training: files, counts, determinism, NaN stop, checkpoints and resume."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import serialization

from conftest import small_config
from rnnbench.configs import default
from rnnbench import cells
from rnnbench import checkpoint
from rnnbench import input_pipeline
from rnnbench import optim
from rnnbench import train

ROOT = pathlib.Path(__file__).resolve().parents[1]


def history(workdir):
  return [json.loads(line) for line in (pathlib.Path(workdir) / "metrics.jsonl").open()]


def comparable(records):
  """The metrics of a run, without its timings."""
  return [{k: v for k, v in r.items() if not k.endswith(("_time_s", "_time_ms"))}
          for r in records]


def params(workdir):
  return serialization.msgpack_restore((pathlib.Path(workdir) / "params.msgpack").read_bytes())


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("synthetic")
  return workdir, train.train_and_evaluate(small_config(), workdir)


def test_writes_every_artefact(synthetic_run):
  workdir, summary = synthetic_run
  for name in ("config.json", "metrics.jsonl", "summary.json", "tokenizer.json", "labels.json",
               "params.msgpack"):
    assert (workdir / name).is_file(), name
  assert json.loads((workdir / "config.json").read_text())["model"]["cell"] == "gru"
  records = history(workdir)
  assert [r["epoch"] for r in records] == [1, 2, 3]
  for r in records:
    assert {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s",
            "step_time_ms"} <= set(r)
  assert json.loads((workdir / "summary.json").read_text()) == json.loads(json.dumps(summary))
  assert summary["params"]["total"] == sum(
      int(np.prod(np.shape(p))) for p in _leaves(params(workdir)))


def _leaves(tree):
  for value in tree.values():
    yield from (_leaves(value) if isinstance(value, dict) else [value])


def test_counts_every_example_once(synthetic_run):
  workdir, summary = synthetic_run
  # 200 documents, validation_split 0.1 -> the last 20 validate; 180 = 5 x 32 + 20 train.
  assert (summary["num_train"], summary["num_val"], summary["num_test"]) == (180, 20, 40)
  assert all(r["train_count"] == 180 for r in history(workdir))
  assert summary["test_count"] == 40


def test_loss_falls(synthetic_run):
  workdir, summary = synthetic_run
  records = history(workdir)
  assert records[-1]["loss"] < records[0]["loss"]
  assert records[-1]["val_loss"] < records[0]["val_loss"]
  assert summary["test_accuracy"] > 1 / 4


def test_same_seed_same_metrics(synthetic_run, tmp_path):
  workdir, summary = synthetic_run
  again = train.train_and_evaluate(small_config(), tmp_path)
  assert comparable(history(tmp_path)) == comparable(history(workdir))
  assert again["test_loss"] == summary["test_loss"]


def test_nan_loss_stops_training(tmp_path):
  config = small_config(**{"train.learning_rate": 1e30, "train.num_epochs": 2})
  with pytest.raises(train.NonFiniteLossError, match=r"epoch 1, step \d+ of 6"):
    train.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / "params.msgpack").exists()


def test_interrupted_run_resumes_to_identical_metrics(synthetic_run, tmp_path):
  reference, _ = synthetic_run

  def stop_at_step_9(step):  # epoch 2, batch 3 of 6
    if step == 9:
      os.kill(os.getpid(), signal.SIGTERM)

  with pytest.raises(train.TrainingInterrupted, match="epoch 2, batch 3 of 6"):
    train.train_and_evaluate(small_config(), tmp_path, step_hook=stop_at_step_9)
  assert checkpoint.Checkpointer(tmp_path / "checkpoints").latest_step() == 9
  train.train_and_evaluate(small_config(), tmp_path)
  assert comparable(history(tmp_path)) == comparable(history(reference))
  for a, b in zip(_leaves(params(tmp_path)), _leaves(params(reference))):
    np.testing.assert_array_equal(a, b)


def test_every_n_steps_checkpoints_keep_the_newest(tmp_path):
  config = small_config(**{"train.checkpoint_every_steps": 4, "train.keep_checkpoints": 2,
                           "train.num_epochs": 2})
  train.train_and_evaluate(config, tmp_path)
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [8, 12]  # saved at 4, 6 (epoch end), 8, 12 (epoch end); the newest 2 kept


def test_finished_run_is_not_trained_again(synthetic_run, capsys):
  workdir, summary = synthetic_run
  assert train.train_and_evaluate(small_config(), workdir) == json.loads(json.dumps(summary))
  assert "finished run" in capsys.readouterr().out


def test_incompatible_checkpoint_is_an_error(synthetic_run):
  workdir, _ = synthetic_run
  with pytest.raises(checkpoint.CheckpointError, match="model.cell: checkpoint has 'gru', "
                     "config has 'lstm'"):
    train.train_and_evaluate(small_config(**{"model.cell": "lstm"}), workdir)
  with pytest.raises(checkpoint.CheckpointError, match="model.hidden_size"):
    train.train_and_evaluate(small_config(**{"model.hidden_size": 9}), workdir)


def test_corrupt_checkpoint_is_an_error_and_overwrite_starts_afresh(tmp_path):
  config = small_config(**{"train.num_epochs": 1})
  train.train_and_evaluate(config, tmp_path)
  config.train.num_epochs = 2  # continue training from the checkpoint ...
  step_dir = tmp_path / "checkpoints" / "6"
  for f in step_dir.rglob("*"):
    if f.is_file() and f.parent.name == "meta":
      f.write_bytes(b"\x00 not json")  # ... which is now corrupt
  with pytest.raises(checkpoint.CheckpointError, match="cannot be read.*overwrite=True"):
    train.train_and_evaluate(config, tmp_path)
  config.train.overwrite = True
  summary = train.train_and_evaluate(config, tmp_path)
  assert summary["epochs"] == 2 and len(history(tmp_path)) == 2


def test_results_without_checkpoint_are_not_overwritten(tmp_path):
  (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')
  with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
    train.train_and_evaluate(small_config(), tmp_path)
  assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


def test_real_data_slice(news_archive, tmp_path):
  config = default.get_config()
  config.data.archive = str(news_archive)
  config.data.update(max_train_docs=300, max_test_docs=100)
  config.model.update(embed_dim=16, hidden_size=8, dense_size=8)
  config.train.update(num_epochs=1, progress=False)
  summary = train.train_and_evaluate(config, tmp_path)
  assert (summary["num_train"], summary["num_val"], summary["num_test"]) == (270, 30, 100)
  assert history(tmp_path)[0]["train_count"] == 270
  assert json.loads((tmp_path / "labels.json").read_text())[0] == "alt.atheism"
  assert np.isfinite(summary["test_loss"])


def run_py(*args):
  return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], capture_output=True,
                        text=True, cwd=ROOT, timeout=300)


def test_cli_names_a_misspelled_field():
  proc = run_py("--config=configs/gru.py", "--config.train.num_epoch=1")
  assert proc.returncode != 0
  assert "no config field 'num_epoch'; did you mean 'num_epochs'?" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_cli_reports_an_unknown_cell_without_traceback(tmp_path):
  proc = run_py("--config=configs/default.py", "--config.model.cell=nope",
                "--config.data.name=synthetic", f"--workdir={tmp_path}")
  assert proc.returncode != 0
  assert "unknown cell 'nope'; registered cells:" in proc.stderr
  assert "Traceback" not in proc.stderr


def _event_scalars(directory):
  """{tag: [(step, value)]} from the TensorBoard event files in ``directory``."""
  import struct  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  scalars = {}
  for path in sorted(pathlib.Path(directory).glob("events.out.tfevents.*")):
    data = path.read_bytes()
    while data:
      (length,) = struct.unpack("<Q", data[:8])
      event = event_pb2.Event.FromString(data[12:12 + length])
      data = data[12 + length + 4:]
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


def test_tensorboard_events(synthetic_run):
  workdir, _ = synthetic_run
  scalars = _event_scalars(workdir / "tensorboard")
  records = history(workdir)
  assert [s for s, _ in scalars["epoch/val_accuracy"]] == [1, 2, 3]
  for (_, value), record in zip(scalars["epoch/val_loss"], records):
    assert value == pytest.approx(record["val_loss"], rel=1e-6)
  assert len(scalars["train_step/loss"]) == sum(1 for _ in (workdir / "steps.jsonl").open())


def test_named_validation_split_from_files(tmp_path):
  rows = lambda n, offset: "text,label\n" + "".join(
      f"{'good great' if i % 2 else 'bad awful'} words {i},{'pos' if i % 2 else 'neg'}\n"
      for i in range(offset, offset + n))
  for name, n, offset in (("train", 40, 0), ("val", 10, 100), ("test", 12, 200)):
    (tmp_path / f"{name}.csv").write_text(rows(n, offset))
  config = small_config(**{"data.name": "csv", "data.validation_split": 0.5})
  config.data.files.update(train=str(tmp_path / "train.csv"), val=str(tmp_path / "val.csv"),
                           test=str(tmp_path / "test.csv"))
  data = input_pipeline.prepare(config)
  # The named split validates; all of train trains (validation_split is not applied).
  assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 12)
  assert data.label_names == ["neg", "pos"]
  summary = train.train_and_evaluate(config, tmp_path / "run")
  assert (summary["num_train"], summary["num_val"], summary["test_count"]) == (40, 10, 12)


@pytest.mark.parametrize("cell", cells.names())
def test_mixed_precision_computes_in_bfloat16_on_float32_params(cell):
  x = np.random.default_rng(0).integers(1, 300, (8, 16)).astype(np.int32)
  batch = (x, (np.arange(8) % 4).astype(np.int32), np.ones(8, np.float32))
  loss_fn = optim.make_loss("keras")
  losses = {}
  for dtype in ("float32", "bfloat16"):
    config = small_config(**{"model.cell": cell, "train.dtype": dtype})
    state = train.create_train_state(config, 4, jax.random.PRNGKey(0))
    jaxpr = str(jax.make_jaxpr(lambda p: state.apply_fn({"params": p}, x))(state.params))
    assert ("bf16" in jaxpr) == (dtype == "bfloat16")
    state, metrics = train.train_step(state, batch, train.zero_metrics(), loss_fn=loss_fn)
    assert all(p.dtype == np.float32 for p in jax.tree.leaves(state.params))
    losses[dtype] = float(metrics["loss"]) / 8
  assert losses["bfloat16"] == pytest.approx(losses["float32"], abs=2e-2)


def test_unknown_dtype_is_an_error():
  with pytest.raises(ValueError, match="unknown train.dtype 'fp8'"):
    train.create_train_state(small_config(**{"train.dtype": "fp8"}), 4, jax.random.PRNGKey(0))


def test_tensorboard_without_importing_torch(tmp_path):
  """tensorboardX is imported with torch hidden (seconds of a run's start-up), then torch
  imports as usual; the events are written all the same."""
  pytest.importorskip("tensorboardX")
  pytest.importorskip("torch")
  code = ("import sys, pathlib\n"
          "from rnnbench import metric_log\n"
          f"log = metric_log.MetricLog(pathlib.Path({str(tmp_path)!r}), tensorboard=True)\n"
          "log.step(1, {'loss': 0.5, 'accuracy': 0.25})\n"
          "log.close()\n"
          "assert log._tb is not None and 'torch' not in sys.modules, sorted(sys.modules)\n"
          "import torch\n"
          "print('torch', torch.ones(2).sum().item())\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        cwd=pathlib.Path(__file__).resolve().parents[1], timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert "torch 2.0" in proc.stdout
  assert _event_scalars(tmp_path / "tensorboard")["train_step/loss"] == [(1, 0.5)]
