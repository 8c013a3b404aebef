"""``python -m rnnbench.bench``: the benchmark's command line (docs/benchmark.md)."""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import ml_collections

from rnnbench import runinfo
from rnnbench import validation
from rnnbench.bench import plots
from rnnbench.bench import report as report_lib
from rnnbench.bench import runner


def main(argv: Sequence[str], config: ml_collections.ConfigDict,
         bench: ml_collections.ConfigDict) -> dict[str, Any]:
  """Runs the benchmark, prints the table (and comparison), writes the JSON and the plot."""
  from absl import app  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if bench.plot:
    plots.require_matplotlib()
  old = None
  if bench.compare:
    try:
      old = json.loads(pathlib.Path(bench.compare).read_text())
    except (OSError, ValueError) as e:
      raise app.UsageError(f"--bench.compare: cannot read {bench.compare}: {e}") from None
  try:
    validation.validate(config)
    report = runner.run_cases(config, bench)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  section = "scaling" if report["scaling"] is not None else "results"
  print(report_lib.format_scaling_tables(report) if section == "scaling"
        else report_lib.format_table(report))
  if report["seq_len_fits"]:
    print(report_lib.format_fits(report["seq_len_fits"]))
  if old is not None:
    rows = report_lib.compare(report, old, section)
    warnings = report_lib.compare_warnings(report, old)
    report["comparison"] = {"against": str(bench.compare), "section": section,
                            "warnings": warnings, "rows": rows}
    print(report_lib.format_comparison(rows, warnings, section))
  if bench.json:
    runinfo.write_json(bench.json, report)
    print(f"wrote {bench.json}")
  if bench.plot:
    plots.plot(report, bench.plot)
    print(f"wrote {bench.plot}")
  return report


def _cli() -> None:
  """``python -m rnnbench.bench``: the flags are defined only when run as a program."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  from rnnbench import cli  # pylint: disable=g-import-not-at-top

  config = config_flags.DEFINE_config_file("config", None, "Model config file.",
                                           lock_config=True)
  try:  # DEFINE_config_dict applies the --bench.* overrides already
    bench = config_flags.DEFINE_config_dict("bench", runner.default_bench_config(),
                                            "Benchmark settings.", lock_config=True)
  except cli.OVERRIDE_ERRORS as e:
    sys.exit(f"{sys.argv[0]}: bad --bench override: {cli.override_error(e, 'bench')}")

  def run(argv: Sequence[str]) -> None:
    report = main(argv, config.value, bench.value)
    records = report["scaling"] if report["scaling"] is not None else report["results"]
    if records and all(r["status"] == "error" for r in records):
      sys.exit(f"error: all {len(records)} benchmark cases failed (see the errors above)")

  cli.run(run, required=["config"])


if __name__ == "__main__":
  _cli()
