"""Using a trained run: loading it, predict and evaluate, and their errors."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import small_config
from rnnbench import evaluate
from rnnbench import runs
from rnnbench import train

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  summary = train.train_and_evaluate(small_config(**{"train.num_epochs": 1}), workdir)
  return workdir, summary


def test_evaluate_reproduces_the_runs_test_metrics(trained):
  workdir, summary = trained
  result = evaluate.evaluate_run(runs.load_run(workdir), "test")
  assert result["count"] == summary["test_count"]
  assert result["loss"] == pytest.approx(summary["test_loss"], abs=1e-6)
  assert result["accuracy"] == summary["test_accuracy"]
  val = evaluate.evaluate_run(runs.load_run(workdir), "val")
  assert val["loss"] == pytest.approx(summary["val_loss"], abs=1e-6)


def test_probabilities_and_top_k(trained):
  run = runs.load_run(trained[0])
  probs = run.probabilities(["bafa kela", "", "x y z"])
  assert probs.shape == (3, 4)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
  best = runs.top_k(probs, run.label_names, 2)
  assert [len(b) for b in best] == [2, 2, 2]
  assert best[0][0] == (run.label_names[int(probs[0].argmax())], pytest.approx(probs[0].max()))


def test_checkpoint_is_used_without_params_file(trained, tmp_path):
  workdir, _ = trained
  import shutil  # pylint: disable=g-import-not-at-top
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy)
  (copy / "params.msgpack").unlink()
  texts = ["bafa kela lomo", "sisa"]
  np.testing.assert_array_equal(runs.load_run(copy).probabilities(texts),
                                runs.load_run(workdir).probabilities(texts))


@pytest.mark.parametrize("name,content,match", [
    ("params.msgpack", b"not msgpack at all", "not the parameters"),
    ("tokenizer.json", b'{"hello": 1}', "not a tokenizer"),
    ("config.json", b"{", "not JSON"),
])
def test_foreign_files_are_clear_errors(trained, tmp_path, name, content, match):
  import shutil  # pylint: disable=g-import-not-at-top
  copy = tmp_path / "copy"
  shutil.copytree(trained[0], copy)
  (copy / name).write_bytes(content)
  with pytest.raises(runs.RunError, match=match):
    runs.load_run(copy)


def test_missing_workdir_is_a_clear_error(tmp_path):
  with pytest.raises(runs.RunError, match="no config.json"):
    runs.load_run(tmp_path)


def test_predict_cli(trained, tmp_path):
  texts = tmp_path / "texts.txt"
  texts.write_text("bafa kela\nsisa lomo\n")
  proc = subprocess.run([sys.executable, "-m", "rnnbench.predict", f"--workdir={trained[0]}",
                         f"--input={texts}", "--top_k=2", "--json", "one more"],
                        capture_output=True, text=True, cwd=ROOT, timeout=300)
  assert proc.returncode == 0, proc.stderr
  lines = [json.loads(l) for l in proc.stdout.splitlines()]
  assert [l["text"] for l in lines] == ["one more", "bafa kela", "sisa lomo"]
  assert all(len(l["top_k"]) == 2 for l in lines)
