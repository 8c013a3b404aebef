"""Sweeps over configs x seeds: runs, skipping finished ones, and the across-seed report."""

import json
import math
import pathlib

import pytest

from rnnbench import sweep
from rnnbench import train

CONFIGS = [str(pathlib.Path(__file__).resolve().parents[1] / "configs" / f"{c}.py")
           for c in ("lstm", "gru")]

SMALL = ["data.name='synthetic'", "data.num_words=300", "data.maxlen=16",
         "data.synthetic.num_train=120", "data.synthetic.num_test=30",
         "data.synthetic.num_classes=4", "data.synthetic.vocab_size=300",
         "data.synthetic.doc_len=24", "model.embed_dim=8", "model.hidden_size=4",
         "model.dense_size=4", "train.num_epochs=2", "train.log_every_steps=2"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
  root = tmp_path_factory.mktemp("sweep")
  rep = sweep.run_sweep(CONFIGS, [0, 1], root, SMALL)
  return root, rep


def test_every_run_has_its_own_workdir(swept):
  root, _ = swept
  for name in ("lstm", "gru"):
    for seed in (0, 1):
      config = json.loads((root / name / f"seed{seed}" / "config.json").read_text())
      assert (config["model"]["cell"], config["seed"]) == (name, seed)
      assert config["model"]["hidden_size"] == 4


def test_report_aggregates_across_seeds(swept):
  root, rep = swept
  assert json.loads((root / "report.json").read_text())["configs"].keys() == {"lstm", "gru"}
  for name, c in rep["configs"].items():
    vals = [json.loads((root / name / f"seed{s}" / "metrics.jsonl").read_text().splitlines()[0])
            ["val_accuracy"] for s in (0, 1)]
    first = c["epochs"][0]["val_accuracy"]
    assert first["n"] == 2 and first["mean"] == pytest.approx(sum(vals) / 2)
    assert first["ci95_low"] <= first["mean"] <= first["ci95_high"]
    assert len(c["epochs"]) == 2
  assert rep["difference"]["of"] == "gru - lstm"
  md = (root / "report.md").read_text()
  assert "| lstm | 2 | 1 |" in md and "| gru | 2 | 2 |" in md
  assert (root / "curves.png").stat().st_size > 1000


def test_finished_runs_are_skipped(swept, monkeypatch):
  root, rep = swept
  trained = []
  real = train.train_and_evaluate
  monkeypatch.setattr(train, "train_and_evaluate",
                      lambda config, workdir: trained.append(workdir) or real(config, workdir))
  again = sweep.run_sweep(CONFIGS, [0, 1], root, SMALL)
  assert len(trained) == 4  # called, but each returns the finished run's summary
  assert again["configs"] == rep["configs"]
  for workdir in trained:
    assert len(list((workdir / "checkpoints").iterdir())) >= 1


def test_interval_matches_t_distribution():
  s = sweep.interval([1.0, 2.0, 3.0])
  assert s["mean"] == 2.0 and s["std"] == 1.0
  assert s["ci95_high"] - 2.0 == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
  d = sweep.difference([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
  assert d["diff"] == 1.0 and d["ci95_low"] < 0 < d["ci95_high"] and 0 < d["p_value"] < 1


def test_overrides_are_checked():
  from rnnbench.configs import default  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  sweep.apply_overrides(config, ["train.num_epochs=3", "model.cell=gru"])
  assert (config.train.num_epochs, config.model.cell) == (3, "gru")
  with pytest.raises(ValueError, match="no config field 'train.num_epoch'"):
    sweep.apply_overrides(config, ["train.num_epoch=3"])
  with pytest.raises(ValueError, match="FIELD=VALUE"):
    sweep.apply_overrides(config, ["train.num_epochs"])
