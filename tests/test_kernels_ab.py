"""benchmarks/kernels_ab.py: a tiny real A/B (this checkout's kernels against a copy of its own
source built as the second library): the B step calls the other library's targets (the script
checks the compiled text), and the JSON and page carry the ratio, its halves and the command."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

from rnnbench import cpu_kernels

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import kernels_ab  # pylint: disable=wrong-import-position


@pytest.mark.skipif(not cpu_kernels.runs_here(), reason="the CPU kernels do not run here")
def test_tiny_ab_against_own_source(tmp_path):
  out_json, out_md = tmp_path / "ab.json", tmp_path / "ab.md"
  assert kernels_ab.main(["--source", str(cpu_kernels.SOURCE), "--cells", "lstm",
                          "--tokens", "zipf", "--steps", "4", "--warmup", "1",
                          "--json", str(out_json), "--markdown", str(out_md)]) == 0
  report = json.loads(out_json.read_text())
  (r,) = report["results"]
  assert (r["cell"], r["tokens"], r["steps"]) == ("lstm", "zipf", 4)
  assert r["a_median_ms"] > 0 and r["b_median_ms"] > 0
  assert r["b_over_a"] == pytest.approx(r["b_median_ms"] / r["a_median_ms"])
  assert len(r["b_over_a_halves"]) == 2
  page = out_md.read_text()
  row = f"| lstm | zipf | {r['a_median_ms']:.2f} | {r['b_median_ms']:.2f} | {r['b_over_a']:.3f} |"
  assert row in page
  assert "python benchmarks/kernels_ab.py --source" in page


def test_unknown_revision_is_one_clear_error(tmp_path):
  with pytest.raises(SystemExit, match="--against no-such-rev"):
    kernels_ab.other_source(type("A", (), {"source": None, "against": "no-such-rev"})(), tmp_path)
