"""benchmarks/gpu_suite.py --smoke on this machine: every implementation runs and is recorded."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _suite():
  spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_smoke_runs_every_impl_and_scan(tmp_path):
  pytest.importorskip("torch", reason="torch is not installed (the references extra)")
  suite = _suite()
  report = suite.main(["--smoke", "--out", str(tmp_path), "--dtypes", "float32",
                       "--variants", "lstm", "--linear_cells", "mingru"])
  saved = json.loads((tmp_path / "gpu_suite_smoke.json").read_text())
  assert saved["smoke"] and saved["results"] == json.loads(json.dumps(report["results"]))
  ok = {(r["section"], r.get("impl") or r.get("scan"), r["mode"])
        for r in saved["results"] if r["status"] == "ok"}
  want_impls = ["torch-cpu", "nn_scan", "fused"] + (["pallas"] if "pallas" in suite.impls()
                                                   else [])
  for mode in suite.MODES:
    for impl in want_impls:
      assert ("rnn", impl, mode) in ok, (impl, mode, saved["results"])
    for scan in ("sequential", "parallel", "pallas"):
      assert ("linear", scan, mode) in ok, (scan, mode)
  for r in saved["results"]:
    if r["framework"] == "rnnbench" and r["status"] == "ok":
      assert r["step_time_s"]["median"] > 0 and r["compile_s"] > 0 and r["xla_memory"]
    if r["section"] == "rnn" and r["framework"] == "rnnbench":  # same weights as torch's
      assert r["max_abs_vs_torch"] is not None and r["max_abs_vs_torch"] <= 1e-5, r
    if r.get("scan") == "pallas" or r.get("impl") == "pallas":  # interpreted off GPU
      assert r["kernels"]["interpreted"] and r["kernels"]["triton"] == 0, r["kernels"]
  markdown = (tmp_path / "gpu_suite_smoke.md").read_text()
  assert "| linear | mingru | 3 | 5 | 8 | float32 | pallas | pallas (interpret) |" in markdown
  assert saved["environment"]["torch"] and saved["environment"]["backend"] == "cpu"


def test_targets_and_budget():
  """Target ratios come from the run's medians; cases past the budget are recorded skipped."""
  suite = _suite()

  def rec(section, variant, impl, ms, shape=("large", 256, 1000, 256), framework="rnnbench",
          key="impl"):
    name, b, t, h = shape
    return {"section": section, "variant": variant, "shape": name, "batch_size": b,
            "seq_len": t, "hidden_size": h, "dtype": "float32", "mode": "train", key: impl,
            "framework": framework, "status": "ok", "step_time_s": {"median": ms / 1e3}}

  results = [rec("rnn", "gru", "cudnn", 10.0, framework="torch"),
             rec("rnn", "gru_keras22", "pallas", 11.0),
             rec("linear", "mingru", "sequential", 30.0, key="scan"),
             rec("linear", "mingru", "pallas", 5.0, key="scan")]
  rows = {r["target"]: (r["goal"], r["value"]) for r in suite.targets(results)}
  assert rows["gru_keras22 float32 large H256: pallas / cuDNN"] == ("<= 1.2", pytest.approx(1.1))
  assert rows["mingru float32 T1000 H256: sequential / pallas"] == (">= 3", pytest.approx(6.0))
  skipped = suite._skipped("jax", dict(section="linear", name="lru", knob={"scan": "pallas"},
                                       shape=suite.SHAPES[1], dtype="bfloat16"), "past budget")
  assert [r["mode"] for r in skipped] == list(suite.MODES)
  assert all(r["status"] == "skipped" and r["scan"] == "pallas" for r in skipped)
