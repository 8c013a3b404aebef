"""rnnbench.bench and rnnbench.runinfo on tiny shapes: the report's schema and consistency,
failures, compare, CLI.

No timing thresholds: only that the figures exist, are positive and agree with each other.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from rnnbench.configs import default
from rnnbench import cpu_kernels
from rnnbench import cells
from rnnbench import models
from rnnbench import runinfo
from rnnbench.bench import plots
from rnnbench.bench import report as report_lib
from rnnbench.bench import runner
from rnnbench.bench import scaling

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "references"))
import common  # pylint: disable=wrong-import-position

TOP_KEYS = {"schema_version", "tool", "created_utc", "command", "environment", "config",
            "bench", "results", "seq_len_fits", "scaling"}
RECORD_KEYS = {"cell", "batch_size", "seq_len", "hidden_size", "mode", "status", "error",
               "embed_dim", "steps", "warmup", "compile_s", "first_step_s", "step_time_s",
               "step_times_s", "sequences_per_s", "tokens_per_s", "flops", "flop_per_s",
               "peak_memory", "xla_memory", "params", "impl", "notes"}
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
  b = runner.default_bench_config()
  b.steps, b.warmup, b.num_classes = 3, 1, 3
  b.update(overrides)
  return b


@pytest.fixture(scope="module")
def full_report():
  """Every mode of one tiny lstm case, and a case that fails."""
  return runner.run_cases(tiny_config(), tiny_bench(cells="lstm,no_such_cell"), progress=None)


@pytest.fixture
def report(full_report):
  """The successful part of ``full_report``."""
  return {**full_report, "results": [r for r in full_report["results"] if r["cell"] == "lstm"]}


def test_report_schema(full_report):
  assert TOP_KEYS <= set(full_report)
  assert full_report["schema_version"] == report_lib.SCHEMA_VERSION
  assert full_report["tool"] == "rnnbench"
  assert ENV_KEYS <= set(full_report["environment"])
  assert full_report["bench"]["modes"] == list(runner.MODES)
  assert [(r["cell"], r["mode"]) for r in full_report["results"]] == [
      (c, m) for c in ("lstm", "no_such_cell") for m in runner.MODES]
  assert full_report["scaling"] is None and full_report["seq_len_fits"] == []
  assert full_report["bench"]["devices"] == []
  json.loads(json.dumps(full_report))  # serialisable as is
  for r in full_report["results"]:
    assert set(r) == RECORD_KEYS
    assert r["status"] == ("ok" if r["cell"] == "lstm" else "error"), r["error"]


def test_records_say_which_implementation_ran(full_report):
  lstm = [r for r in full_report["results"] if r["cell"] == "lstm"]
  # impl="auto" on a one-device CPU host: the C++ kernels where they build
  assert {r["impl"] for r in lstm} == {"cpu" if cpu_kernels.available() else "fused"}
  m = tiny_config("mingru").model
  assert runner.implementation(m, "float32") == "sequential"
  m.scan = "pallas"
  assert runner.implementation(m, "float32") == "pallas_interpret"
  m = tiny_config("lstm").model
  m.impl = "nn_scan"
  assert runner.implementation(m, "float32") == "nn_scan"
  m.impl = "pallas"
  assert runner.implementation(m, "float32") == "pallas_interpret"


def test_failing_case_is_reported_not_raised(full_report):
  for r in full_report["results"]:
    if r["cell"] == "no_such_cell":
      assert "unknown cell 'no_such_cell'" in r["error"]
      assert r["step_time_s"] is None and r["sequences_per_s"] is None
  table = report_lib.format_table(full_report)
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
  assert runner.analytic_forward_flops(shapes, 2, 5) == common.analytic_forward_flops(config, 3)


def test_references_draw_the_same_batch():
  x, y, w = runinfo.synthetic_batch(4, 7, 50, 3, seed=1)
  rx, ry = common.synthetic_batch(4, 7, 50, 3, seed=1)
  np.testing.assert_array_equal(x, rx)
  np.testing.assert_array_equal(y, ry)
  assert x.dtype == np.int32 and x.min() >= 1 and x.max() < 50 and y.max() < 3
  np.testing.assert_array_equal(w, np.ones(4, np.float32))
  # The same stream, as numpy draws it directly.
  rng = np.random.default_rng(1)
  np.testing.assert_array_equal(x, rng.integers(1, 50, size=(4, 7)))
  np.testing.assert_array_equal(y, rng.integers(0, 3, size=(4,)))


def test_zipf_tokens_are_text_like_and_shared():
  """tokens="zipf": every tool draws the same ids, with p(k) ~ 1/k: a notebook-sized batch
  has about as many distinct ids as a 20 Newsgroups batch (~1,200 of 3,200), where uniform
  ids are nearly all distinct; an unknown distribution is one clear error."""
  x, _, _ = runinfo.synthetic_batch(32, 100, 20000, 20, seed=0, tokens="zipf")
  rx, _ = common.synthetic_batch(32, 100, 20000, 20, seed=0, tokens="zipf")
  np.testing.assert_array_equal(x, rx)
  assert x.min() >= 1 and x.max() < 20000
  assert 1000 < len(np.unique(x)) < 1500
  assert np.mean(x == 1) > 2 * np.mean(x == 5) > 0  # p(1) = 5 p(5)
  uniform, _, _ = runinfo.synthetic_batch(32, 100, 20000, 20, seed=0)
  assert len(np.unique(uniform)) > 2800
  with pytest.raises(ValueError, match="unknown tokens 'text'"):
    runinfo.synthetic_batch(4, 7, 50, 3, tokens="text")
  bench = runner.default_bench_config()
  bench.tokens = "text"
  with pytest.raises(ValueError, match="--bench.tokens='text'"):
    runner.make_cases(tiny_config("lstm"), bench)


def test_padded_batch_is_the_batch_then_weight_0_rows():
  x, y, w = runinfo.synthetic_batch(4, 7, 50, 3, seed=1)
  px, py, pw = runinfo.synthetic_batch(4, 7, 50, 3, seed=1, padded_size=6)
  np.testing.assert_array_equal(px[:4], x)
  np.testing.assert_array_equal(py[:4], y)
  assert not px[4:].any() and not py[4:].any() and pw.tolist() == [1, 1, 1, 1, 0, 0]
  with pytest.raises(ValueError, match="padded_size 3 < batch_size 4"):
    runinfo.synthetic_batch(4, 7, 50, 3, padded_size=3)


def test_runinfo_and_the_references_common_import_no_jax():
  """benchmarks/references/ must not start JAX (or any framework) in a reference process."""
  code = ("import sys; import rnnbench.runinfo; sys.path.insert(0, 'benchmarks/references'); "
          "import argparse, common; rnnbench.runinfo.environment(); common.load_config("
          "argparse.Namespace(config='configs/gru.py', cell='', batch_size=0, seq_len=0, "
          "hidden_size=0)); "
          "print(sorted(m for m in ('jax', 'jaxlib', 'flax', 'optax', 'torch', 'tensorflow', "
          "'keras') if m in sys.modules))")
  proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == "[]"


def test_environment_fields():
  env = runinfo.jax_environment()
  assert ENV_KEYS <= set(env)
  # summary.json's fields (rnnbench.train.environment) are all there too.
  assert {"sklearn", "process_count", "cpu", "numpy", "python"} <= set(env)
  assert set(runinfo.environment(torch="9.9")) == set(runinfo.environment()) | {"torch"}


def test_bad_settings_raise():
  with pytest.raises(ValueError, match="bench.modes"):
    runner.run_cases(tiny_config(), tiny_bench(modes="train,sideways"), progress=None)
  with pytest.raises(ValueError, match="bench.seq_lens"):
    runner.run_cases(tiny_config(), tiny_bench(seq_lens="5,x"), progress=None)


def test_compare(report):
  rows = report_lib.compare(report, report)
  assert len(rows) == len(report["results"])
  assert all(r["ratio"] == pytest.approx(1.0) and not r["note"] for r in rows)
  old = {**report, "results": report["results"][1:]}
  rows = report_lib.compare(report, old)
  assert rows[0]["ratio"] is None and rows[0]["note"] == "not in old run"
  assert "not in old run" in report_lib.format_comparison(rows)
  assert report_lib.compare_warnings(report, report) == []


def test_compare_reads_schema_1(report):
  assert report_lib.compare_warnings(report, {**report, "schema_version": 1}) == []
  assert report_lib.compare_warnings(report, {**report, "schema_version": 0})


def timed(record, median, **overrides):
  """``record`` with every step time ``median`` (and the figures that follow from it)."""
  return {**record, **overrides,
          "step_time_s": {k: median for k in ("median", "p10", "p90", "mean", "min", "max")},
          "sequences_per_s": (overrides.get("batch_size") or record["batch_size"]) / median}


def test_seq_len_fits(report):
  (train,) = [r for r in report["results"] if r["mode"] == "train"]
  rows = [timed(train, 0.002 + 1e-4 * t, seq_len=t) for t in (10, 20, 40)]
  rows += [timed(train, 1.0, seq_len=t, batch_size=7) for t in (10, 20)]  # two T: no fit
  (fit,) = report_lib.seq_len_fits(rows)
  assert fit["slope_s"] == pytest.approx(1e-4) and fit["intercept_s"] == pytest.approx(0.002)
  assert fit["r2"] == pytest.approx(1.0) and fit["seq_lens"] == [10, 20, 40]
  assert (fit["cell"], fit["batch_size"], fit["mode"]) == ("lstm", 2, "train")
  assert "0.1 ms per time step" in report_lib.format_fits([fit])


def scaling_records(counts=(1, 2, 8), weak=False):
  """Made-up ``runner.run_scaling`` records: the step time halves with each doubling."""
  rows = []
  for n in counts:
    b = 6 * (n if weak else 1)
    rows.append({"cell": "gru", "batch_size": b, "seq_len": 5, "hidden_size": 8,
                 "num_devices": n, "status": "ok", "error": None, "weak_scaling": weak,
                 "step_time_s": {k: 0.01 / n for k in ("median", "p10", "p90")},
                 "sequences_per_s": b * n / 0.01, "speedup": n, "efficiency": 1.0})
  return rows


def test_compare_scaling(report):
  new = {**report, "results": [], "scaling": scaling_records()}
  old = {**new, "scaling": scaling_records((1, 2))}
  rows = report_lib.compare(new, old, "scaling")
  assert [(r["num_devices"], r["ratio"], r["note"]) for r in rows] == [
      (1, 1.0, ""), (2, 1.0, ""), (8, None, "not in old run")]
  assert "devices" in report_lib.format_comparison(rows, section="scaling")
  assert report_lib.compare(new, report, "scaling")[0]["note"] == "not in old run"
  assert "nothing to match" in report_lib.compare_warnings(new, report)[0]


def test_plot(report, tmp_path):
  pytest.importorskip("matplotlib")
  more = [{**r, "batch_size": 3, "seq_len": t} for r in report["results"] for t in (5, 9)]
  plots.plot({**report, "results": report["results"] + more}, tmp_path / "bench.png")
  assert (tmp_path / "bench.png").stat().st_size > 0
  (train,) = [r for r in report["results"] if r["mode"] == "train"]
  seq = [timed(train, 1e-3 * t, seq_len=t) for t in (10, 20, 40)]  # with a fit line
  plots.plot({**report, "results": seq}, tmp_path / "seq.png")
  batch = [timed(train, 1e-3, batch_size=b) for b in (2, 4, 8)]  # the batch panel alone
  plots.plot({**report, "results": batch}, tmp_path / "batch.png")
  for weak in (False, True):
    plots.plot({**report, "results": [], "scaling": scaling_records(weak=weak)},
               tmp_path / f"devices_{weak}.png")
  for name in ("seq", "batch", "devices_False", "devices_True"):
    assert (tmp_path / f"{name}.png").stat().st_size > 0


def test_parse_devices():
  assert runner.parse_devices("") == []
  assert runner.parse_devices("1") == [1]
  assert runner.parse_devices("all") == scaling.default_device_counts()
  with pytest.raises(ValueError, match="bench.devices"):
    runner.parse_devices(str(jax.device_count() + 1))
  with pytest.raises(ValueError, match="bench.devices"):
    runner.parse_devices("1,two")


def test_weak_scaling_in_process():
  rep = runner.run_cases(tiny_config("gru"), tiny_bench(devices="1", weak_scaling=True, steps=2),
                        progress=None)
  assert rep["results"] == [] and rep["bench"]["modes"] == ["train"]
  (r,) = rep["scaling"]
  assert r["status"] == "ok", r["error"]
  assert (r["num_devices"], r["batch_size"], r["weak_scaling"], r["hidden_size"]) == (
      1, 2, True, 4)
  assert "weak scaling: b=2 per device" in report_lib.format_scaling_tables(rep)


@pytest.mark.parametrize("cell", cells.names())
def test_every_registered_cell_runs(cell):
  rep = runner.run_cases(tiny_config(cell), tiny_bench(steps=2, warmup=0, modes="train"),
                        progress=None)
  (r,) = rep["results"]
  assert r["status"] == "ok", r["error"]
  assert r["cell"] == cell and r["step_time_s"]["median"] > 0


def test_cli(report, tmp_path):
  old = tmp_path / "old.json"
  runinfo.write_json(old, report)
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
  assert new["schema_version"] == report_lib.SCHEMA_VERSION
  assert new["results"][0]["status"] == "ok"
  (row,) = new["comparison"]["rows"]
  assert row["ratio"] > 0 and row["mode"] == "train"


def test_cli_devices_on_8_simulated_devices(tmp_path):
  """--bench.devices in a fresh interpreter: the device count is fixed when JAX starts."""
  out = tmp_path / "devices.json"
  cmd = [sys.executable, "-m", "rnnbench.bench", "--config=configs/gru.py",
         "--config.model.hidden_size=8", "--config.model.embed_dim=8",
         "--config.model.dense_size=6", "--config.data.num_words=50",
         "--config.data.maxlen=5", "--config.train.batch_size=6", "--bench.num_classes=3",
         "--bench.devices=1,2,8", "--bench.steps=2", "--bench.warmup=1", f"--bench.json={out}"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "gru t=5 h=8, strong scaling: b=6 in all" in proc.stdout and "efficiency" in proc.stdout
  rep = json.loads(out.read_text())
  assert rep["schema_version"] == report_lib.SCHEMA_VERSION
  assert rep["environment"]["device_count"] == 8
  assert rep["bench"]["devices"] == [1, 2, 8] and rep["results"] == []
  records = rep["scaling"]
  assert [r["num_devices"] for r in records] == [1, 2, 8]
  for r, padded in zip(records, (6, 6, 8)):
    assert r["status"] == "ok", r["error"]
    assert (r["cell"], r["batch_size"], r["seq_len"], r["hidden_size"]) == ("gru", 6, 5, 8)
    assert r["padded_batch_size"] == padded
    assert r["per_device_batch_size"] == padded // r["num_devices"]
    assert r["weak_scaling"] is False and len(r["step_times_s"]) == r["steps"] == 2
    s = r["step_time_s"]
    assert 0 < s["min"] <= s["median"] <= s["max"] and r["compile_s"] > 0
    assert r["sequences_per_s"] == pytest.approx(6 / s["median"])
    assert r["tokens_per_s"] == pytest.approx(5 * r["sequences_per_s"])
    assert r["speedup"] == pytest.approx(r["sequences_per_s"] / records[0]["sequences_per_s"])
    assert r["efficiency"] == pytest.approx(r["speedup"] / r["num_devices"])


def test_references_share_the_schema_version():
  assert common.SCHEMA_VERSION == report_lib.SCHEMA_VERSION


def test_side_by_side_summary_and_markdown():
  sys.path.insert(0, str(ROOT / "benchmarks"))
  import side_by_side  # pylint: disable=g-import-not-at-top
  runs = [{"tool": tool, "cell": "gru", "median_s": m, "p10_s": m / 2, "first_step_s": 1.0,
           "error": None, "notes": ["a note"] if tool == "torch-eager" else [],
           "report": {"environment": {"torch" if tool == "torch-eager" else "jax": "9.9"}}}
          for tool, m in (("rnnbench", 0.01), ("torch-eager", 0.03), ("rnnbench", 0.02))]
  rows = side_by_side.summarize(runs, ["rnnbench", "torch-eager"], ["gru"])
  assert [r["ratio_to_rnnbench"] for r in rows] == pytest.approx([1.0, 2.0])
  out = {"environment": runinfo.environment(), "load_average": {"start": [1, 2, 3], "end": None},
         "created_utc": "now", "wall_s": 60.0, "tools": ["rnnbench", "torch-eager"],
         "skipped": [], "settings": {"json": "x.json"}, "command": ["side_by_side.py"],
         "runs": runs}
  text = side_by_side.markdown(out, rows, "header")
  assert "| gru | torch-eager | 30.00 | 30.00-30.00 | 2.00 |" in text
  assert "jax 9.9, torch 9.9" in text and "- a note" in text and "Caveat" in text
