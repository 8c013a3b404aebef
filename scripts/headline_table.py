"""The README's headline table, written from the result files that hold its figures.

    python scripts/headline_table.py            # rewrite results/headline.md and README's block

It reads ``results/lstm_vs_gru.json`` (``rnnbench.sweep``'s report of the 5-seed rnnbench runs)
and ``results/notebook_keras.json`` (``scripts/reproduce_notebook.py``'s Keras runs), writes
``results/headline.md``, and replaces the README's text between ``<!-- headline:start -->`` and
``<!-- headline:end -->`` with it; ``--check`` only says whether both are up to date (exit 1
if not). No figure in that table is typed by hand.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rnnbench import runinfo  # pylint: disable=wrong-import-position
SWEEP = ROOT / "results" / "lstm_vs_gru.json"
KERAS = ROOT / "results" / "notebook_keras.json"
OUT = ROOT / "results" / "headline.md"
README = ROOT / "README.md"
START, END = "<!-- headline:start -->", "<!-- headline:end -->"


def _ms(values: list[float]) -> str:
  mean = statistics.fmean(values)
  std = statistics.stdev(values) if len(values) > 1 else 0.0
  return f"{mean:.3f} ± {std:.3f}"


def table(sweep: dict, keras: list[dict]) -> str:
  """Markdown: per cell, rnnbench's and Keras' val_acc after epochs 1, 2 and test_acc."""
  lines = ["| cell | framework | seeds | val_acc epoch 1 | val_acc epoch 2 | test_acc |",
           "|---|---|---|---|---|---|"]
  for cell in ("lstm", "gru"):
    ours = sweep["configs"][cell]
    val = {e["epoch"]: e["val_accuracy"] for e in ours["epochs"]}
    cols = [f"{val[e]['mean']:.3f} ± {val[e]['std']:.3f}" for e in (1, 2)]
    cols.append(f"{ours['test_accuracy']['mean']:.3f} ± {ours['test_accuracy']['std']:.3f}")
    lines.append(f"| {cell.upper()} | rnnbench (JAX) | {ours['seeds']} | " + " | ".join(cols) + " |")
    runs = [r for r in keras if r["cell"] == cell]
    by_epoch = lambda e, key: [next(h[key] for h in r["history"] if h["epoch"] == e) for r in runs]
    cols = [_ms(by_epoch(1, "val_accuracy")), _ms(by_epoch(2, "val_accuracy")),
            _ms(by_epoch(2, "test_accuracy"))]
    lines.append(f"| {cell.upper()} | Keras 3 `model.fit` (JAX backend) | {len(runs)} | "
                 + " | ".join(cols) + " |")
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
  args = parser.parse_args(argv)
  block = table(json.loads(SWEEP.read_text()), json.loads(KERAS.read_text()))
  return runinfo.write_readme_block(README, START, END, block, [(OUT, block)], args.check,
                                    "python scripts/headline_table.py")


if __name__ == "__main__":
  sys.exit(main())
