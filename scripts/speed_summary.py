"""The README's speed block, written from the result files that hold its figures.

    python scripts/speed_summary.py            # rewrite results/speed_summary.md and README's block
    python scripts/speed_summary.py --check    # only say whether both are current (exit 1 if not)

It reads ``results/side_by_side_cpu.json`` and ``results/side_by_side_cpu_zipf.json``
(``benchmarks/side_by_side.py``: the train step against PyTorch eager and Keras 3 on
TensorFlow, every tool on the same synthetic batch: token ids uniform, and as text's, p ~ 1 /
rank, ``--tokens=zipf``), ``results/whole_run_cpu.json``
(``benchmarks/whole_run.py``: the whole run against the notebook, cold and warm) and
``results/tokenizer_speed.json`` (``benchmarks/tokenizer_speed.py``), writes
``results/speed_summary.md`` and replaces the README's text between ``<!-- speed:start -->``
and ``<!-- speed:end -->`` with it. Every ratio is rnnbench's time over the other's (below 1:
rnnbench takes less time), the median and range over the rounds (repeats for the
tokenizer), beside the times and the machine each file was measured on. No figure in the
block is typed by hand; a missing file is one line naming the command that makes it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rnnbench import runinfo  # pylint: disable=wrong-import-position  # numpy, no JAX
RESULTS = ROOT / "results"
SIDE_BY_SIDE = RESULTS / "side_by_side_cpu.json"
SIDE_BY_SIDE_ZIPF = RESULTS / "side_by_side_cpu_zipf.json"
WHOLE_RUN = RESULTS / "whole_run_cpu.json"
TOKENIZER = RESULTS / "tokenizer_speed.json"
OUT = RESULTS / "speed_summary.md"
README = ROOT / "README.md"
START, END = "<!-- speed:start -->", "<!-- speed:end -->"
# source file name -> the command that writes it (benchmarks/regenerate_cpu.py runs the same;
# tests/test_regenerate.py holds them equal)
MAKES = {
    "side_by_side_cpu.json": "python benchmarks/side_by_side.py "
                             "--tools=rnnbench,keras-tensorflow,keras-jax,torch-eager "
                             "--rounds=5 --json=results/side_by_side_cpu.json "
                             "--markdown=results/side_by_side_cpu.md",
    "side_by_side_cpu_zipf.json": "python benchmarks/side_by_side.py "
                                  "--tools=rnnbench,keras-tensorflow,keras-jax,torch-eager "
                                  "--rounds=5 --tokens=zipf "
                                  "--json=results/side_by_side_cpu_zipf.json "
                                  "--markdown=results/side_by_side_cpu_zipf.md",
    "whole_run_cpu.json": "python benchmarks/whole_run.py --rounds=3 "
                          "--json=results/whole_run_cpu.json --markdown=results/whole_run_cpu.md",
    "tokenizer_speed.json": "python benchmarks/tokenizer_speed.py "
                            "--json results/tokenizer_speed.json "
                            "--markdown results/tokenizer_speed.md",
}
OTHERS = {"torch-eager": "PyTorch eager", "keras-tensorflow": "Keras 3 TF `fit`"}


def load(path: pathlib.Path) -> dict[str, Any]:
  """The JSON at ``path``; a missing or unreadable one is one line naming its command."""
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError) as e:
    why = "is missing" if isinstance(e, FileNotFoundError) else f"is unreadable ({e})"
    raise SystemExit(f"error: {path} {why}; make it with: "
                     f"{MAKES.get(path.name, 'python benchmarks/regenerate_cpu.py')}") from None


def _span(values: list[float]) -> str:
  return f"**{statistics.median(values):.2f}** [{min(values):.2f}, {max(values):.2f}]"


def _machine(env: dict[str, Any], load_avg: Any) -> str:
  git = (env.get("git") or {}).get("commit") or "?"
  return (f"{env.get('cpu_model') or env.get('cpu')}, {env.get('cpu_count')} cores, "
          f"load average {runinfo.load_text(load_avg)}, git {git[:12]}")


def side_by_side_rows(report: dict[str, Any], page: str = "side_by_side_cpu.md") -> list[str]:
  """rnnbench / tool per round (runs of the same round), per cell and tool in OTHERS."""
  tokens = (report.get("settings") or {}).get("tokens", "uniform")
  rows = []
  runs = [r for r in report["runs"] if r.get("median_s")]
  for cell in dict.fromkeys(r["cell"] for r in report["summary"]):
    ours = {r["round"]: r["median_s"] for r in runs if r["cell"] == cell
            and r["tool"] == "rnnbench"}
    for tool, name in OTHERS.items():
      theirs = {r["round"]: r["median_s"] for r in runs if r["cell"] == cell
                and r["tool"] == tool}
      rounds = sorted(set(ours) & set(theirs))
      if not rounds:
        continue
      ratios = [ours[k] / theirs[k] for k in rounds]
      ms = lambda d: f"{1e3 * statistics.median([d[k] for k in rounds]):.2f} ms"
      rows.append(f"| train step, {cell.upper()}, {tokens} ids | {name} | {_span(ratios)} "
                  f"({len(rounds)} rounds) | {ms(ours)} | {ms(theirs)} | "
                  f"[{page}](results/{page}) |")
  return rows


def whole_run_rows(report: dict[str, Any]) -> list[str]:
  rows = []
  for cell, variants in report["summary"].items():
    notebook = variants["notebook"]["wall_s"]["median"]
    for variant in ("rnnbench cold", "rnnbench warm"):
      e = variants[variant]
      r = e["ratio_to_notebook"]
      rows.append(f"| whole `run.py`, {cell.upper()}, {variant.split()[1]} | the Keras notebook "
                  f"| **{r['median']:.2f}** [{r['min']:.2f}, {r['max']:.2f}] ({r['n']} rounds) | "
                  f"{e['wall_s']['median']:.1f} s | {notebook:.1f} s | "
                  "[whole_run_cpu.md](results/whole_run_cpu.md) |")
  return rows


def tokenizer_rows(report: dict[str, Any]) -> list[str]:
  totals = report["all_s"]["cpu"]
  ours, theirs = totals["rnnbench"]["total"], totals["keras_preprocessing"]["total"]
  ratios = [o / t for o, t in zip(ours, theirs)]
  return [f"| tokenizer fit + sequences + pad, CPU time | keras_preprocessing | {_span(ratios)} "
          f"({len(ratios)} repeats) | {statistics.median(ours):.2f} s | "
          f"{statistics.median(theirs):.2f} s | [tokenizer_speed.md](results/tokenizer_speed.md) |"]


def block(side: dict[str, Any], zipf: dict[str, Any], whole: dict[str, Any],
          tok: dict[str, Any]) -> str:
  """Markdown: the table and, per source, the machine it was measured on."""
  tok_env = tok.get("environment") or {"cpu": tok.get("machine"), "cpu_count": tok.get("cpus")}
  lines = ["Written by `python scripts/speed_summary.py` from `results/`. ratio = rnnbench's "
           "time / the other's (below 1: rnnbench takes less time), median [lowest, highest] "
           "over the rounds; times are medians.", "",
           "| what | against | ratio | rnnbench | other | page |", "|---|---|--:|--:|--:|---|",
           *side_by_side_rows(side), *side_by_side_rows(zipf, "side_by_side_cpu_zipf.md"),
           *whole_run_rows(whole), *tokenizer_rows(tok), "",
           "Token ids: uniform in [1, 20000) (nearly all of a batch's 3,200 distinct), or zipf, "
           "p ~ 1 / rank as in text (about 1,250 distinct, as a 20 Newsgroups batch): the same "
           "batch for every tool.", "",
           f"- train step: {_machine(side['environment'], side['load_average'])}, "
           f"{side['created_utc']}",
           f"- train step, zipf ids: {_machine(zipf['environment'], zipf['load_average'])}, "
           f"{zipf['created_utc']}",
           f"- whole run: {_machine(whole['environment'], whole['loadavg_start'])}, "
           f"{whole['created_utc']}",
           f"- tokenizer: {_machine(tok_env, tok.get('load_average'))}"
           + (f", {tok['created_utc']}" if tok.get("created_utc") else "")]
  return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
  args = parser.parse_args(argv)
  new = block(load(SIDE_BY_SIDE), load(SIDE_BY_SIDE_ZIPF), load(WHOLE_RUN), load(TOKENIZER))
  page = "# Speed summary (CPU)\n\n" + new.replace("](results/", "](")  # links from results/
  return runinfo.write_readme_block(README, START, END, new, [(OUT, page)], args.check,
                                    "python scripts/speed_summary.py")


if __name__ == "__main__":
  sys.exit(main())
