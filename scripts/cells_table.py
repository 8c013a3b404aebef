"""Every registered cell on 20 Newsgroups, several seeds: results/cells.{json,md}.

    RNNBENCH_20NEWS_ARCHIVE=/work/shared/data/20news-bydate.tar.gz \
      python scripts/cells_table.py --epochs=10 --report_epochs=2,5

Each (cell, seed) trains the notebook's config (configs/default.py, with model.cell=<cell>,
model.scan='sequential' and train.test_every_epoch=True) for --epochs epochs in its own
workdir ROOT/<cell>/seed<k> (--root, default runs/cells). The table gives, per cell, the
rnn layer's and the model's parameters, validation and test accuracy (mean ± std over
seeds) at the epochs of --report_epochs and the last one, and the median step time.
Every epoch comes from the same runs: training up to epoch k does not depend on
num_epochs (the data order comes from (seed, epoch), dropout from the step), so the
epoch-2 columns are what the notebook's 2-epoch run gives. A run whose metrics.jsonl
already has the epochs is read, not trained; a shorter or interrupted one resumes from
its checkpoint, so rerunning the command completes the table (or extends it to more
epochs). Writes OUT.json and OUT.md (--out, default results/cells); every invocation that
trained something is logged (command, wall time, load average) in ROOT/trainings.jsonl
and listed in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnbench import cells  # pylint: disable=wrong-import-position
from rnnbench import cli  # pylint: disable=wrong-import-position
from rnnbench import sweep  # pylint: disable=wrong-import-position
from rnnbench import train  # pylint: disable=wrong-import-position
from rnnbench import workdir as layout  # pylint: disable=wrong-import-position

METRICS = ("val_accuracy", "test_accuracy")
NOTES = (
    "Accuracy: mean ± sample std over seeds. Every epoch shown comes from the same "
    "{epochs}-epoch runs (train.test_every_epoch=True); training up to epoch k is "
    "identical to a k-epoch run (the data order comes from (seed, epoch) and dropout from "
    "the step, neither from num_epochs), so the epoch-2 columns are the notebook's 2-epoch "
    "setting.",
    "Every cell runs with model.scan='{scan}'. For {parallel} the other scan gives the same "
    "outputs, loss and gradients within 1e-5 at every step "
    "(tests/test_cells.py::test_sequential_equals_parallel), but whole runs drift apart "
    "(max over time and Adam amplify rounding; docs/cells.md).",
    "Step time: wall-clock per training step (batch 32, including the host-side batching), "
    "median over every epoch of every seed; compile and evaluation excluded.",
)


def run_config(args: argparse.Namespace, cell: str, seed: int) -> Any:
  """The notebook's config for ``cell`` and ``seed``, run sequentially with per-epoch test."""
  config = sweep.load_config_file(str(ROOT / args.config))
  config.model.cell = cell
  config.model.scan = args.scan
  config.train.num_epochs = args.epochs
  config.train.test_every_epoch = True
  config.train.progress = False
  sweep.apply_overrides(config, args.set)
  config.seed = seed
  return config


def finished(workdir: pathlib.Path, epochs: int) -> bool:
  """Whether ``workdir`` holds a finished run with per-epoch test metrics to ``epochs``."""
  if not (workdir / layout.SUMMARY).exists() or not (workdir / layout.METRICS).exists():
    return False
  history = sweep.read_run(workdir)["history"]
  return len(history) >= epochs and all("test_accuracy" in h for h in history[:epochs])


epochs_done = layout.epochs_done


def mean_std(values: Sequence[float]) -> dict[str, float]:
  return {k: v for k, v in sweep.interval(values).items() if k in ("mean", "std", "n")}


def summarise(runs: Sequence[Mapping[str, Any]], reported: Sequence[int],
              epochs: int) -> dict[str, Any]:
  """One cell's row from its runs (``sweep.read_run`` dicts, one per seed)."""
  out = {"params": {k: runs[0]["summary"]["params"][k] for k in ("rnn", "total")}}
  for e in reported:
    out[f"epoch{e}"] = {m: mean_std([r["history"][e - 1][m] for r in runs]) for m in METRICS}
  out["step_time_ms"] = statistics.median(
      h["step_time_ms"] for r in runs for h in r["history"][:epochs])
  out["train_time_s"] = sum(h["epoch_time_s"] for r in runs for h in r["history"][:epochs])
  out["runs"] = [{
      "seed": r["seed"], "workdir": r["workdir"],
      "epochs": [{k: h[k] for k in ("epoch", "val_accuracy", "test_accuracy", "val_loss",
                                    "test_loss", "step_time_ms")}
                 for h in r["history"][:epochs]]} for r in runs]
  return out


def markdown(result: Mapping[str, Any]) -> str:
  fmt = lambda s: f"{s['mean']:.3f} ± {s['std']:.3f}" if s["n"] > 1 else f"{s['mean']:.3f}"
  cols = [f"{m.split('_')[0]} acc, epoch {e}" for e in result["reported_epochs"]
          for m in METRICS]
  lines = [
      f"# Cells on 20 Newsgroups ({len(result['seeds'])} seed(s), "
      f"model.scan='{result['scan']}')", "",
      "| cell | params (rnn) | params (total) | " + " | ".join(cols) +
      " | step time (ms, median) |",
      "|---|--:|--:|" + "--:|" * len(cols) + "--:|"]
  for name, c in result["cells"].items():
    accs = [fmt(c[f"epoch{e}"][m]) for e in result["reported_epochs"] for m in METRICS]
    lines.append(f"| {name} | {c['params']['rnn']:,} | {c['params']['total']:,} | "
                 + " | ".join(accs) + f" | {c['step_time_ms']:.1f} |")
  m = result["machine"]
  lines += ["", *[f"- {n}" for n in result["notes"]],
            f"- Seeds {', '.join(map(str, result['seeds']))}; runs in `{result['root']}`.",
            f"- Machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['backend']}, jax {m['jax']}, "
            f"flax {m['flax']}. {m['note']}",
            f"- Time: the training epochs of the {result['total_runs']} runs took "
            f"{result['train_time_s'] / 60:.1f} min (train steps only). They were trained by:"]
  for t in result["trainings"]:
    lines.append(f"  - `{t['command']}` at {t['started']}: {t['epochs_trained']} run-epochs "
                 f"in {t['wall_s'] / 60:.1f} min, load average {t['loadavg_start'][0]:.1f} "
                 f"at the start and {t['loadavg_end'][0]:.1f} at the end.")
  lines += [f"- Code when this report was written: {result['git']}.", "",
            "Produced by:", "", "```", result["command"], "```"]
  return "\n".join(lines) + "\n"


def log_training(root: pathlib.Path, record: Mapping[str, Any]) -> list[dict[str, Any]]:
  """Appends an invocation that trained to ``ROOT/trainings.jsonl``; returns them all."""
  path = root / "trainings.jsonl"
  if record["epochs_trained"]:
    root.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
      f.write(json.dumps(record) + "\n")
  return [json.loads(l) for l in path.read_text().splitlines() if l] if path.exists() else []


def git_state() -> str:
  try:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                          capture_output=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "rnnbench", "configs"], cwd=ROOT,
                           text=True, capture_output=True, check=True).stdout.split("\n")
  except (OSError, subprocess.CalledProcessError):
    return "not a git checkout"
  changed = sorted(l[3:] for l in dirty if l.strip())
  return f"commit {head}" + (f" with uncommitted changes to {', '.join(changed)}"
                             if changed else "")


def command() -> str:
  archive = os.environ.get("RNNBENCH_20NEWS_ARCHIVE")
  env = f"RNNBENCH_20NEWS_ARCHIVE={shlex.quote(archive)} " if archive else ""
  argv = [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]
  return env + "python " + " ".join(shlex.quote(a) for a in argv)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cells", default="", help="comma-separated; default: every "
                      "registered cell")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--epochs", type=int, default=10, help="epochs per run")
  parser.add_argument("--report_epochs", default="2,5", help="comma-separated epochs "
                      "reported besides the last one")
  parser.add_argument("--root", default="runs/cells", help="where the runs go")
  parser.add_argument("--out", default="results/cells", help="writes OUT.json and OUT.md")
  parser.add_argument("--scan", default="sequential", choices=["sequential", "parallel"],
                      help="config.model.scan for every run (parallel: linear cells only)")
  parser.add_argument("--config", default="configs/default.py", help="the base config file")
  parser.add_argument("--set", action="append", default=[],
                      help="config override FIELD=VALUE for every run (repeatable)")
  return parser.parse_args(argv)


def main() -> None:
  args = parse_args()
  names = args.cells.split(",") if args.cells else cells.names()
  parallel = [n for n in cells.names() if getattr(cells.get(n), "supports_parallel", False)]
  seeds = [int(s) for s in args.seeds.split(",")]
  epochs = args.epochs
  reported = sorted({int(e) for e in args.report_epochs.split(",") if 0 < int(e) < epochs}
                    | {epochs})
  root = pathlib.Path(args.root)
  started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
  load_start, t0, trained = os.getloadavg(), time.perf_counter(), 0  # trained: epochs
  result_cells, env = {}, None
  for name in names:
    runs = []
    for seed in seeds:
      workdir = root / name / f"seed{seed}"
      if finished(workdir, epochs):
        print(f"== {name} seed {seed}: finished, read from {workdir}", flush=True)
      else:
        print(f"== {name} seed {seed}: training in {workdir}", flush=True)
        start, before = time.perf_counter(), epochs_done(workdir)
        try:
          train.train_and_evaluate(run_config(args, name, seed), workdir)
        except train.TrainingInterrupted as e:
          sys.exit(str(e))
        except cli.expected_errors() as e:
          sys.exit(f"error: {name} seed {seed}: {e}")
        trained += epochs_done(workdir) - before
        print(f"   {time.perf_counter() - start:.0f}s", flush=True)
      run = sweep.read_run(workdir)
      runs.append({**run, "seed": seed, "workdir": str(workdir)})
      env = env or run["summary"]["environment"]
    result_cells[name] = summarise(runs, reported, epochs)

  wall_s = time.perf_counter() - t0
  trainings = log_training(root, {
      "command": command(), "started": started, "wall_s": wall_s, "epochs_trained": trained,
      "loadavg_start": load_start, "loadavg_end": os.getloadavg()})
  result = {
      "command": command(), "epochs": epochs, "reported_epochs": reported, "seeds": seeds,
      "root": str(root), "config": args.config, "scan": args.scan,
      "overrides": [f"model.scan={args.scan}", "train.test_every_epoch=True", *args.set],
      "notes": [n.format(epochs=epochs, scan=args.scan, parallel=", ".join(parallel))
                for n in NOTES],
      "train_time_s": sum(c["train_time_s"] for c in result_cells.values()),
      "trainings": trainings,
      "total_runs": len(names) * len(seeds), "git": git_state(),
      "machine": {**{k: env[k] for k in ("cpu", "cpu_count", "backend", "jax", "flax")},
                  "note": "A CPU shared with other jobs: step times are noisy."},
      "cells": result_cells,
  }
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
  out.with_suffix(".md").write_text(markdown(result))
  print(markdown(result))


if __name__ == "__main__":
  main()
