"""Run a grid of configs x seeds, each in its own workdir, and report them across seeds.

    python -m rnnbench.sweep --configs=configs/lstm.py,configs/gru.py --seeds=0,1,2,3,4 \
        --root=runs/lstm-vs-gru [--set=train.num_epochs=3 --set=data.max_train_docs=2000]

Runs go to ``ROOT/<config>/seed<k>``; a finished run is not trained again and an interrupted one
resumes from its checkpoint, so rerunning the command completes a sweep. The report
(``ROOT/report.md``, ``ROOT/report.json``) gives per-epoch validation accuracy and loss as
mean ± std and a 95% t-interval per config, test accuracy and step time; with matplotlib
installed, ``ROOT/curves.png`` shows the learning curves with a band across seeds.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import pathlib
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
from absl import flags
from absl import logging
from scipy import stats

from rnnbench import cli
from rnnbench import train
from rnnbench import validation
from rnnbench import workdir as layout

METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")


def load_config_file(path: str) -> ml_collections.ConfigDict:
  """``get_config()`` of a config file, as ``--config=PATH`` reads it."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise ValueError(f"no config file at {path}")
  spec = importlib.util.spec_from_file_location(f"_sweep_config_{file.stem}", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
  """Applies ``a.b=value`` overrides (Python literals, else strings); unknown fields fail."""
  for item in overrides:
    key, sep, raw = item.partition("=")
    if not sep:
      raise ValueError(f"override {item!r} is not FIELD=VALUE")
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      value = raw
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      if not hasattr(node, "keys") or part not in node:
        raise ValueError(f"no config field {key!r}")
      node = node[part]
    if not hasattr(node, "keys") or leaf not in node:
      raise ValueError(f"no config field {key!r}")
    node[leaf] = value


def interval(values: Sequence[float]) -> dict[str, float]:
  """Mean, sample std and the 95% t-interval of the mean."""
  n = len(values)
  mean = statistics.fmean(values)
  std = statistics.stdev(values) if n > 1 else 0.0
  half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n) if n > 1 else float("nan")
  return {"mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


def difference(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
  """``mean(b) - mean(a)`` with a Welch 95% interval and two-sided p-value."""
  diff = statistics.fmean(b) - statistics.fmean(a)
  if len(a) < 2 or len(b) < 2:
    return {"diff": diff}
  va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
  se = math.sqrt(va + vb)
  if se == 0:
    return {"diff": diff}
  dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
  half = float(stats.t.ppf(0.975, dof)) * se
  p = float(2 * stats.t.sf(abs(diff) / se, dof))
  return {"diff": diff, "ci95_low": diff - half, "ci95_high": diff + half, "p_value": p}


read_run = layout.read_run_records  # a finished run's history, summary and steps


def report(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
  """Across-seed statistics per config, and the difference of the second config to the first."""
  out = {"configs": {}}
  for name, group in runs.items():
    epochs = min(len(r["history"]) for r in group)
    out["configs"][name] = {
        "seeds": len(group),
        "epochs": [{"epoch": e + 1, **{m: interval([r["history"][e][m] for r in group])
                                       for m in METRICS}} for e in range(epochs)],
        "test_accuracy": interval([r["summary"]["test_accuracy"] for r in group]),
        "test_loss": interval([r["summary"]["test_loss"] for r in group]),
        "step_time_ms": statistics.median(r["summary"]["step_time_ms"] for r in group),
    }
  names = list(runs)
  if len(names) >= 2:
    a, b = runs[names[0]], runs[names[1]]
    epochs = min(len(r["history"]) for r in [*a, *b])
    out["difference"] = {
        "of": f"{names[1]} - {names[0]}",
        "val_accuracy": [difference([r["history"][e]["val_accuracy"] for r in a],
                                    [r["history"][e]["val_accuracy"] for r in b])
                         for e in range(epochs)]}
  return out


def markdown(rep: Mapping[str, Any]) -> str:
  fmt = lambda s: f"{s['mean']:.4f} ± {s['std']:.4f} [{s['ci95_low']:.4f}, {s['ci95_high']:.4f}]"
  lines = ["| config | seeds | epoch | val_accuracy | val_loss | train accuracy |", "|---|---|---|---|---|---|"]
  for name, c in rep["configs"].items():
    for e in c["epochs"]:
      lines.append(f"| {name} | {c['seeds']} | {e['epoch']} | {fmt(e['val_accuracy'])} | "
                   f"{fmt(e['val_loss'])} | {fmt(e['accuracy'])} |")
  lines += ["", "| config | test_accuracy | test_loss | step time (ms, median) |",
            "|---|---|---|---|"]
  for name, c in rep["configs"].items():
    lines.append(f"| {name} | {fmt(c['test_accuracy'])} | {fmt(c['test_loss'])} | "
                 f"{c['step_time_ms']:.1f} |")
  if "difference" in rep:
    d = rep["difference"]
    lines += ["", f"Validation accuracy difference, {d['of']} (Welch 95% interval, p-value):", ""]
    for e, x in enumerate(d["val_accuracy"], 1):
      ci = (f" [{x['ci95_low']:+.4f}, {x['ci95_high']:+.4f}], p = {x['p_value']:.3g}"
            if "p_value" in x else "")
      lines.append(f"- epoch {e}: {x['diff']:+.4f}{ci}")
  lines.append("")
  lines.append("Mean ± sample std across seeds, [95% t-interval of the mean].")
  return "\n".join(lines) + "\n"


def plot(runs: Mapping[str, Sequence[Mapping[str, Any]]], path: pathlib.Path) -> bool:
  """Learning curves per config with a min-max band across seeds; False without matplotlib."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    logging.warning("matplotlib is not installed (pip install -e '.[plot]'): no plot written")
    return False
  import numpy as np  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  for name, group in runs.items():
    epochs = min(len(r["history"]) for r in group)
    x = np.arange(1, epochs + 1)
    for ax, metric in zip(axes[:2], ("val_accuracy", "val_loss")):
      values = np.array([[r["history"][e][metric] for e in range(epochs)] for r in group])
      line, = ax.plot(x, values.mean(0), marker="o", label=name)
      ax.fill_between(x, values.min(0), values.max(0), alpha=0.2, color=line.get_color())
      ax.set(xlabel="epoch", ylabel=metric, xticks=x)
    if all(r["steps"] for r in group):
      n = min(len(r["steps"]) for r in group)
      steps = np.array([s["step"] for s in group[0]["steps"][:n]])
      values = np.array([[s["loss"] for s in r["steps"][:n]] for r in group])
      line, = axes[2].plot(steps, values.mean(0), label=name)
      axes[2].fill_between(steps, values.min(0), values.max(0), alpha=0.2,
                           color=line.get_color())
  axes[2].set(xlabel="step", ylabel="training loss (mean since the previous point)")
  for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(f"mean over seeds, band: min-max ({max(len(g) for g in runs.values())} seeds)")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def run_sweep(configs: Sequence[str], seeds: Sequence[int], root: str | pathlib.Path,
              overrides: Sequence[str] = ()) -> dict[str, Any]:
  """Trains every (config, seed) not finished yet, then writes and returns the report."""
  root = pathlib.Path(root)
  grid = []
  for path in configs:  # every config checked before any run starts
    name = pathlib.Path(path).stem
    for seed in seeds:
      config = load_config_file(path)
      apply_overrides(config, overrides)
      config.seed = int(seed)
      config.train.progress = False
      validation.validate(config, where=f"{path}, seed {seed}: ")
      grid.append((name, seed, config))
  runs: dict[str, list] = {}
  for name, seed, config in grid:
    workdir = root / name / f"seed{seed}"
    print(f"== {name} seed {seed}: {workdir}", flush=True)
    train.train_and_evaluate(config, workdir)
    runs.setdefault(name, []).append(read_run(workdir))
  rep = report(runs)
  rep["overrides"] = list(overrides)
  rep["seeds"] = [int(s) for s in seeds]
  layout.write_report(root, rep, markdown(rep))
  plot(runs, root / "curves.png")
  return rep


_CONFIGS = flags.DEFINE_list("configs", None, "Config files, e.g. configs/lstm.py,configs/gru.py.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_ROOT = flags.DEFINE_string("root", None, "Where the runs and the report go.")
_SET = flags.DEFINE_multi_string("set", [], "Config override FIELD=VALUE for every run; "
                                  "--config.FIELD=VALUE (as run.py spells it) works too.")


def parse_flags(argv: list[str]) -> list[str]:
  """``cli.parse_flags``, with run.py's ``--config.FIELD=VALUE`` read as ``--set=FIELD=VALUE``."""
  return cli.parse_flags([f"--set={a.removeprefix('--config.')}" if a.startswith("--config.")
                          else a for a in argv])


def main(argv):
  del argv
  try:
    run_sweep(_CONFIGS.value, [int(s) for s in _SEEDS.value], _ROOT.value, _SET.value)
  except train.TrainingInterrupted as e:
    print(e)
  print(layout.read_report_md(pathlib.Path(_ROOT.value)))


if __name__ == "__main__":
  cli.run(main, required=["configs", "root"], flags_parser=parse_flags)
