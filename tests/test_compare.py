"""``rnnbench.compare`` end to end on a tiny subset of ``--quick``: one task, two cells, two
seeds; the report's numbers come from the runs' own files; finished runs are skipped and an
interrupted one resumes."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys

import pytest

from rnnbench import compare
from rnnbench import sweep
from rnnbench import train

CELLS = ["none", "mingru"]
TINY = ["data.recall.num_train=160", "data.recall.num_test=40", "train.num_epochs=2",
        "train.batch_size=16", "train.log_every_steps=3"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
  root = tmp_path_factory.mktemp("compare")
  real = train.train_and_evaluate
  interrupted = []

  def first_run_stops(config, workdir):  # the first run gets SIGINT at step 4
    if not interrupted:
      interrupted.append(workdir)
      hook = lambda step: step == 4 and os.kill(os.getpid(), signal.SIGINT)
      with pytest.raises(train.TrainingInterrupted):
        real(config, workdir, step_hook=hook)
    return real(config, workdir)

  train.train_and_evaluate = first_run_stops
  try:
    rep = compare.run_compare(CELLS, ["recall"], [0, 1], root, size="quick", timing_steps=2,
                              overrides=TINY)
  finally:
    train.train_and_evaluate = real
  return root, rep, interrupted[0]


def test_every_run_and_the_report(compared):
  root, rep, _ = compared
  assert json.loads((root / "report.json").read_text())["tasks"].keys() == {"recall"}
  task = rep["tasks"]["recall"]
  for cell in CELLS:
    accs = []
    for seed in (0, 1):
      workdir = root / "recall" / cell / f"seed{seed}"
      config = json.loads((workdir / "config.json").read_text())
      assert (config["model"]["cell"], config["seed"]) == (cell, seed)
      assert config["model"]["hidden_size"] == task["cells"][cell]["hidden_size"]
      accs.append(json.loads((workdir / "summary.json").read_text())["test_accuracy"])
    assert task["cells"][cell]["test_accuracy"] == sweep.interval(accs)
    assert task["cells"][cell]["params_rnn"] <= task["budget"]
    assert task["cells"][cell]["step_time"]["median_ms"] > 0
    assert task["cells"][cell]["step_time"]["seq_len"] == 14
  assert 0 <= task["baselines"]["tfidf_svm"]["test_accuracy"] <= 1
  best = max(CELLS, key=lambda c: task["cells"][c]["test_accuracy"]["mean"])
  assert task["winner"]["cell"] == best
  md = (root / "report.md").read_text()
  assert "## recall" in md and "| none |" in md and "| mingru |" in md
  assert f"Winner: **{best}**" in md and "tfidf_svm" in md
  for plot in ("accuracy.png", "step_time.png"):
    assert (root / plot).stat().st_size > 1000


def test_interrupted_run_resumed(compared):
  _, _, workdir = compared
  steps = [json.loads(l)["step"] for l in (workdir / "steps.jsonl").read_text().splitlines()]
  history = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert len(history) == 2 and steps == sorted(set(steps))  # no step logged twice
  assert json.loads((workdir / "summary.json").read_text())["epochs"] == 2


def test_finished_runs_are_skipped(compared, monkeypatch):
  root, rep, _ = compared
  trained = []
  real = train.train_and_evaluate
  monkeypatch.setattr(train, "train_and_evaluate",
                      lambda config, workdir: trained.append(workdir) or real(config, workdir))
  monkeypatch.setattr(compare, "time_train_step", lambda *a: pytest.fail("timed again"))
  again = compare.run_compare(CELLS, ["recall"], [0, 1], root, size="quick", overrides=TINY)
  assert len(trained) == 4
  assert again["tasks"]["recall"]["cells"] == rep["tasks"]["recall"]["cells"]


def test_published_numbers_are_shown_with_their_source(compared):
  _, rep, _ = compared
  rep = copy.deepcopy(rep)
  rep["tasks"]["listops"] = dict(rep["tasks"]["recall"], published=compare.PUBLISHED["listops"])
  md = compare.markdown(rep)
  assert "Transformer 36.4, S4 59.6, LRU 60.2" in md and "Orvieto et al. 2023" in md


def test_bad_names_are_one_line_errors(tmp_path):
  with pytest.raises(ValueError, match="unknown task 'listop'"):
    compare.run_compare(["gru"], ["listop"], [0], tmp_path)
  with pytest.raises(ValueError, match="unknown cell 'grue'"):
    compare.run_compare(["grue"], ["recall"], [0], tmp_path)
  with pytest.raises(ValueError, match="unknown cell option"):
    compare.parse_cell("gru+residual")
  proc = subprocess.run([sys.executable, "-m", "rnnbench.compare", "--tasks=listop",
                         f"--root={tmp_path}"], capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines() == [
      f"error: unknown task 'listop'; known: {', '.join(compare.TASKS)} "
      f"(each a file in {compare.TASKS_DIR})"]
