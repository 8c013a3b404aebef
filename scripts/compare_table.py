"""The README's comparison table, written from the committed comparison report.

    python scripts/compare_table.py            # rewrite results/compare_cpu/summary.md and README's block

It reads ``results/compare_cpu/report.json`` (``python -m rnnbench.compare``'s report, copied
from its ``--root``), writes ``rnnbench.compare.summary_table`` of it to
``results/compare_cpu/summary.md`` and between ``<!-- compare:start -->`` and
``<!-- compare:end -->`` in the README; ``--check`` only says whether both are current (exit 1
if not). No figure in that table is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rnnbench import compare  # pylint: disable=wrong-import-position
from rnnbench import runinfo  # pylint: disable=wrong-import-position

REPORT = ROOT / "results" / "compare_cpu" / "report.json"
OUT = ROOT / "results" / "compare_cpu" / "summary.md"
README = ROOT / "README.md"
START, END = "<!-- compare:start -->", "<!-- compare:end -->"


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
  args = parser.parse_args(argv)
  if not REPORT.is_file():
    raise SystemExit(f"error: {REPORT} is missing; run python -m rnnbench.compare "
                     "--root=runs/compare_cpu and copy its report.json, report.md and plots there")
  block = compare.summary_table(json.loads(REPORT.read_text()))
  return runinfo.write_readme_block(README, START, END, block, [(OUT, block)], args.check,
                                    "python scripts/compare_table.py")


if __name__ == "__main__":
  sys.exit(main())
