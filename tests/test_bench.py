"""rnnbench.bench on tiny shapes: the report's schema and consistency, failures, compare, CLI.

No timing thresholds: only that the figures exist, are positive and agree with each other.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import default
from rnnbench import bench
from rnnbench import cells
from rnnbench import models

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "references"))
import common  # pylint: disable=wrong-import-position

TOP_KEYS = {"schema_version", "tool", "created_utc", "command", "environment", "config",
            "bench", "results"}
RECORD_KEYS = {"cell", "batch_size", "seq_len", "hidden_size", "mode", "status", "error",
               "embed_dim", "steps", "warmup", "compile_s", "first_step_s", "step_time_s",
               "step_times_s", "sequences_per_s", "tokens_per_s", "flops", "flop_per_s",
               "peak_memory", "xla_memory", "params", "notes"}
ENV_KEYS = {"jax", "jaxlib", "flax", "optax", "backend", "device_kind", "device_count",
            "cpu_model", "cpu_count", "env", "git"}


def tiny_config(cell="lstm"):
  config = default.get_config()
  config.model.cell = cell
  config.model.embed_dim = 8
  config.model.hidden_size = 4
  config.model.dense_size = 6
  config.data.num_words = 50
  config.data.maxlen = 5
  config.train.batch_size = 2
  return config


def tiny_bench(**overrides):
  b = bench.default_bench_config()
  b.steps, b.warmup, b.num_classes = 3, 1, 3
  b.update(overrides)
  return b


@pytest.fixture(scope="module")
def full_report():
  """Every mode of one tiny lstm case, and a case that fails."""
  return bench.run_cases(tiny_config(), tiny_bench(cells="lstm,no_such_cell"), progress=None)


@pytest.fixture
def report(full_report):
  """The successful part of ``full_report``."""
  return {**full_report, "results": [r for r in full_report["results"] if r["cell"] == "lstm"]}


def test_report_schema(full_report):
  assert TOP_KEYS <= set(full_report)
  assert full_report["schema_version"] == bench.SCHEMA_VERSION
  assert full_report["tool"] == "rnnbench"
  assert ENV_KEYS <= set(full_report["environment"])
  assert full_report["bench"]["modes"] == list(bench.MODES)
  assert [(r["cell"], r["mode"]) for r in full_report["results"]] == [
      (c, m) for c in ("lstm", "no_such_cell") for m in bench.MODES]
  json.loads(json.dumps(full_report))  # serialisable as is
  for r in full_report["results"]:
    assert set(r) == RECORD_KEYS
    assert r["status"] == ("ok" if r["cell"] == "lstm" else "error"), r["error"]


def test_failing_case_is_reported_not_raised(full_report):
  for r in full_report["results"]:
    if r["cell"] == "no_such_cell":
      assert "unknown cell 'no_such_cell'" in r["error"]
      assert r["step_time_s"] is None and r["sequences_per_s"] is None
  table = bench.format_table(full_report)
  assert "ERROR" in table and "unknown cell 'no_such_cell'" in table


def test_figures_positive_and_consistent(report):
  for r in report["results"]:
    s, b, t = r["step_time_s"], r["batch_size"], r["seq_len"]
    assert len(r["step_times_s"]) == r["steps"] == 3
    assert 0 < s["min"] <= s["p10"] <= s["median"] <= s["p90"] <= s["max"]
    assert s["median"] == pytest.approx(np.median(r["step_times_s"]))
    assert 0 < r["compile_s"] <= r["first_step_s"]
    assert r["sequences_per_s"] == pytest.approx(b / s["median"])
    assert r["tokens_per_s"] == pytest.approx(r["sequences_per_s"] * t)
    for kind in ("xla", "analytic"):
      assert r["flop_per_s"][kind] == pytest.approx(r["flops"][kind] / s["median"])
    assert r["peak_memory"]["bytes"] > 0
    assert r["params"]["total"] == sum(v for k, v in r["params"].items() if k != "total")
    if r["mode"] != "optimizer":
      assert r["flops"]["xla"] > 0 and r["flops"]["analytic"] > 0
    assert set(r["xla_memory"]) >= {"argument_bytes", "temp_bytes"}


def test_analytic_flops_per_mode(report):
  by_mode = {r["mode"]: r["flops"]["analytic"] for r in report["results"]}
  b, t, d, h, dense, classes, g = 2, 5, 8, 4, 6, 3, 4
  forward = 2 * b * t * (d * g * h + h * g * h) + 2 * b * (h * dense + dense * classes)
  assert by_mode == {"forward": forward, "forward_backward": 3 * forward,
                     "train": 3 * forward, "optimizer": 0}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_references_count_the_same_flops(cell):
  config = tiny_config(cell)
  shapes = models.param_shapes(config, num_classes=3)
  assert bench.analytic_forward_flops(shapes, 2, 5) == common.analytic_forward_flops(config, 3)


def test_references_draw_the_same_batch():
  x, y, w = bench.synthetic_batch(4, 7, 50, 3, seed=1)
  rx, ry = common.synthetic_batch(4, 7, 50, 3, seed=1)
  np.testing.assert_array_equal(x, rx)
  np.testing.assert_array_equal(y, ry)
  assert x.dtype == np.int32 and x.min() >= 1 and x.max() < 50 and y.max() < 3
  np.testing.assert_array_equal(w, np.ones(4, np.float32))


def test_bad_settings_raise():
  with pytest.raises(ValueError, match="bench.modes"):
    bench.run_cases(tiny_config(), tiny_bench(modes="train,sideways"), progress=None)
  with pytest.raises(ValueError, match="bench.seq_lens"):
    bench.run_cases(tiny_config(), tiny_bench(seq_lens="5,x"), progress=None)


def test_compare(report):
  rows = bench.compare(report, report)
  assert len(rows) == len(report["results"])
  assert all(r["ratio"] == pytest.approx(1.0) and not r["note"] for r in rows)
  old = {**report, "results": report["results"][1:]}
  rows = bench.compare(report, old)
  assert rows[0]["ratio"] is None and rows[0]["note"] == "not in old run"
  assert "not in old run" in bench.format_comparison(rows)
  assert bench.compare_warnings(report, report) == []


def test_plot(report, tmp_path):
  pytest.importorskip("matplotlib")
  more = [{**r, "batch_size": 3, "seq_len": t} for r in report["results"] for t in (5, 9)]
  bench.plot({**report, "results": report["results"] + more}, tmp_path / "bench.png")
  assert (tmp_path / "bench.png").stat().st_size > 0


@pytest.mark.parametrize("cell", cells.names())
def test_every_registered_cell_runs(cell):
  rep = bench.run_cases(tiny_config(cell), tiny_bench(steps=2, warmup=0, modes="train"),
                        progress=None)
  (r,) = rep["results"]
  assert r["status"] == "ok", r["error"]
  assert r["cell"] == cell and r["step_time_s"]["median"] > 0


def test_cli(report, tmp_path):
  old = tmp_path / "old.json"
  bench.write_json(old, report)
  out = tmp_path / "new.json"
  cmd = [sys.executable, "-m", "rnnbench.bench", "--config=configs/default.py",
         "--config.model.embed_dim=8", "--config.model.dense_size=6",
         "--config.data.num_words=50", "--bench.num_classes=3", "--bench.cells=lstm",
         "--bench.batch_sizes=2", "--bench.seq_lens=5", "--bench.hidden_sizes=4",
         "--bench.modes=train", "--bench.steps=2", "--bench.warmup=0",
         f"--bench.json={out}", f"--bench.compare={old}"]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "[1/1] lstm b=2 t=5 h=4" in proc.stdout
  assert "comparison with the saved run" in proc.stdout
  new = json.loads(out.read_text())
  assert new["schema_version"] == bench.SCHEMA_VERSION
  assert new["results"][0]["status"] == "ok"
  (row,) = new["comparison"]["rows"]
  assert row["ratio"] > 0 and row["mode"] == "train"
