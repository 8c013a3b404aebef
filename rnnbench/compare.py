"""Compare cells on the tasks where cells differ: train, time, baselines, one report.

    python -m rnnbench.compare --cells=lstm,gru,mingru,minlstm,lru,none \
        --tasks=notebook,newsgroups_long,listops,recall,delay [--seeds=3] \
        [--quick | --size=cpu|full] [--root=runs/compare]

Every (task, cell, seed) trains in its own workdir ``ROOT/<task>/<cell>/seed<k>`` with
``train.train_and_evaluate``, as ``rnnbench.sweep`` does: a finished run is read back, not
trained again, and an interrupted one resumes from its checkpoint, so rerunning the command
completes a comparison. A cell may carry options: ``mingru+block`` is minGRU with
``model.block=True``. Each cell's ``hidden_size`` follows the task's parameter budget
(``RNN_PARAM_BUDGET`` in rnnbench/configs/tasks/<task>.py: the largest hidden size whose
recurrent layers fit it). The train step is timed at the task's length with the benchmark's
``run_case``; TF-IDF + LinearSVC (``rnnbench.baselines``) runs on every task's texts. The
report, ``ROOT/report.md``, ``ROOT/report.json``, ``ROOT/accuracy.png`` and
``ROOT/step_time.png``, gives per task: test accuracy mean ± 95% t-interval per cell, step
time, params, the baselines, published numbers where the task has them, and the winner with
its margin over the runner-up (Welch 95% interval).

Sizes: ``full`` (each task's ``get_config()``: LRA's ListOps, for accelerators), ``cpu``
(the full comparison sized for 2 CPU cores) and ``quick`` (``--quick``; minutes).
"""

from __future__ import annotations

import copy
import datetime
import importlib
import json
import math
import pathlib
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections
from absl import flags
from absl import logging

from rnnbench import cli
from rnnbench import models
from rnnbench import runinfo
from rnnbench import sweep
from rnnbench import train
from rnnbench import workdir as layout
from rnnbench.configs import tasks as task_configs

TASKS_DIR = pathlib.Path(task_configs.__file__).parent  # rnnbench/configs/tasks/
TASKS = ("notebook", "newsgroups_long", "listops", "recall", "delay")
CELLS = ("lstm", "gru", "mingru", "minlstm", "lru", "none")
SIZES = ("full", "cpu", "quick")
CELL_OPTIONS = {"block": "model.block=True"}  # cell+option
TEXT_TASKS = ("notebook", "newsgroups_long")  # also get the full-text TF-IDF baseline
MAX_HIDDEN = 512
QUICK_SEEDS = 2  # --quick without --seeds

# Published test accuracies (%), at the task's full size only.
PUBLISHED = {
    "listops": {
        "source": "Orvieto et al. 2023, \"Resurrecting Recurrent Neural Networks for Long "
                  "Sequences\" (the LRU paper), Table 1 (LRA ListOps; Transformer from Tay "
                  "et al. 2021)",
        "size": "LRA: 96k train, 500-2000 tokens",
        "models": {"Transformer": 36.4, "S4": 59.6, "LRU": 60.2},
    },
}


def task_module(task: str):
  """rnnbench/configs/tasks/<task>.py as a module; a clear error for an unknown task."""
  if task not in TASKS and not (TASKS_DIR / f"{task}.py").is_file():
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)} "
                     f"(each a file in {TASKS_DIR})")
  return importlib.import_module(f"{task_configs.__name__}.{task}")


def parse_cell(spec: str) -> tuple[str, list[str]]:
  """``'mingru+block'`` -> ``('mingru', ['model.block=True'])``."""
  name, *options = spec.split("+")
  unknown = [o for o in options if o not in CELL_OPTIONS]
  if unknown:
    raise ValueError(f"unknown cell option(s) {unknown} in {spec!r}; known: "
                     f"{', '.join(CELL_OPTIONS)} (e.g. mingru+block)")
  from rnnbench import cells  # pylint: disable=g-import-not-at-top
  cells.get(name)  # a clear error for an unknown cell
  return name, [CELL_OPTIONS[o] for o in options]


def hidden_for_budget(config: ml_collections.ConfigDict, budget: int,
                      max_hidden: int = MAX_HIDDEN) -> int:
  """The largest hidden size (1..max_hidden) whose recurrent layers hold <= budget params."""
  probe = copy.deepcopy(config)

  def count(h: int) -> int:
    probe.model.hidden_size = h
    return models.rnn_param_count(probe)

  if count(1) > budget:
    raise ValueError(f"no hidden size fits RNN_PARAM_BUDGET={budget} for cell "
                     f"{config.model.cell!r} (hidden_size=1 has {count(1)} params)")
  lo, hi = 1, max_hidden
  while lo < hi:  # the params grow with h
    mid = (lo + hi + 1) // 2
    lo, hi = (mid, hi) if count(mid) <= budget else (lo, mid - 1)
  return lo


def run_config(task: str, cell_spec: str, size: str, seed: int,
               extra: Sequence[str] = ()) -> tuple[ml_collections.ConfigDict, list[str]]:
  """The config of one run, and the overrides that made it from the task's get_config().

  ``extra``: more ``FIELD=VALUE`` overrides, after the size's (``--set``).
  """
  if size not in SIZES:
    raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
  module = task_module(task)
  cell, options = parse_cell(cell_spec)
  overrides = ([] if size == "full" else list(module.SIZES[size])) + list(extra) + [
      f"model.cell={cell!r}", *options]
  config = module.get_config()
  sweep.apply_overrides(config, overrides)
  hidden = hidden_for_budget(config, module.RNN_PARAM_BUDGET)
  overrides.append(f"model.hidden_size={hidden}")
  sweep.apply_overrides(config, overrides[-1:])
  config.seed = int(seed)
  return config, overrides


def time_train_step(config: ml_collections.ConfigDict, num_classes: int, steps: int,
                    warmup: int) -> dict[str, Any]:
  """The benchmark's train-step timing at the config's batch size and length."""
  from rnnbench.bench import runner as bench  # pylint: disable=g-import-not-at-top
  settings = bench.default_bench_config()
  settings.update(steps=steps, warmup=warmup, num_classes=num_classes, modes="train")
  case = bench.Case(config.model.cell, config.train.batch_size, config.data.maxlen,
                    config.model.hidden_size)
  (record,) = bench.run_case(config, settings, case, ["train"])
  if record["status"] != "ok":
    raise RuntimeError(f"timing {case.label()} failed: {record.get('error')}")
  return {"median_ms": 1000 * record["step_time_s"]["median"],
          "p10_ms": 1000 * record["step_time_s"]["p10"],
          "p90_ms": 1000 * record["step_time_s"]["p90"], "steps": steps,
          "batch_size": case.batch_size, "seq_len": case.seq_len,
          "compile_s": record["compile_s"]}


def _cached(path: pathlib.Path, make) -> Any:
  """``make()``, kept in ``path`` (written atomically; an unreadable one is made again)."""
  if path.is_file():
    try:
      return json.loads(path.read_text())
    except ValueError:
      pass  # damaged (e.g. an older, non-atomic write): make it again
  value = make()
  runinfo.write_json(path, value)
  return value


def run_task(task: str, cells: Sequence[str], seeds: Sequence[int], size: str,
             root: pathlib.Path, timing_steps: int, extra: Sequence[str] = (),
             say=print) -> dict[str, Any]:
  """Every cell and seed of one task, its timings and baselines; the task's report section."""
  from rnnbench import baselines  # pylint: disable=g-import-not-at-top
  module = task_module(task)
  out: dict[str, Any] = {"cells": {}, "budget": module.RNN_PARAM_BUDGET,
                         "note": getattr(module, "NOTE", "")}
  runs_of: dict[str, list[dict[str, Any]]] = {spec: [] for spec in cells}
  for seed in seeds:  # seed-major: a generated dataset is made once per seed, for every cell
    for spec in cells:
      config, _ = run_config(task, spec, size, seed, extra)
      workdir = root / task / spec / f"seed{seed}"
      say(f"== {task} / {spec} / seed {seed}: {workdir}")
      train.train_and_evaluate(config, workdir)
      runs_of[spec].append(sweep.read_run(workdir))
  for spec in cells:
    runs = runs_of[spec]
    config, overrides = run_config(task, spec, size, seeds[-1], extra)
    num_classes = len(json.loads((root / task / spec / f"seed{seeds[0]}" /
                                  layout.LABELS).read_text()))
    timing = _cached(root / task / spec / "timing.json",
                     lambda: time_train_step(config, num_classes, timing_steps, 2))
    accs = [r["summary"]["test_accuracy"] for r in runs]
    out["cells"][spec] = {
        "hidden_size": config.model.hidden_size, "overrides": overrides[:-1],
        "params_rnn": models.rnn_param_count(config),
        "params_total": runs[0]["summary"]["params"]["total"],
        "test_accuracy": sweep.interval(accs), "test_accuracies": accs,
        "val_accuracy": sweep.interval([r["history"][-1]["val_accuracy"] for r in runs]),
        "epochs": runs[0]["summary"]["epochs"], "step_time": timing,
        "train_s": sum(sum(h["epoch_time_s"] for h in r["history"]) for r in runs),
    }
  base_config, _ = run_config(task, "none", size, seeds[0], extra)
  out["data"] = {"name": base_config.data.name, "maxlen": base_config.data.maxlen,
                 "num_train": runs[0]["summary"]["num_train"],
                 "num_test": runs[0]["summary"]["num_test"],
                 "epochs": base_config.train.num_epochs}
  out["baselines"] = {"tfidf_svm": _cached(root / task / "tfidf_svm.json",
                                           lambda: baselines.tfidf_svm(base_config))}
  if task in TEXT_TASKS:
    out["baselines"]["tfidf_svm_full_text"] = _cached(
        root / task / "tfidf_svm_full_text.json",
        lambda: baselines.tfidf_svm(base_config, full_text=True))
  out["winner"] = winner(out["cells"])
  if task in PUBLISHED:
    out["published"] = PUBLISHED[task]
  return out


def winner(cells: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
  """The cell of the highest mean test accuracy, and its margin over the runner-up."""
  ranked = sorted(cells, key=lambda c: -cells[c]["test_accuracy"]["mean"])
  if not ranked:
    return None
  out = {"cell": ranked[0], "test_accuracy": cells[ranked[0]]["test_accuracy"]["mean"]}
  if len(ranked) > 1:
    out["runner_up"] = ranked[1]
    out["margin"] = sweep.difference(cells[ranked[1]]["test_accuracies"],
                                     cells[ranked[0]]["test_accuracies"])
  return out


def markdown(rep: Mapping[str, Any]) -> str:
  pct = lambda x: f"{100 * x:.1f}"
  lines = [f"# Cells compared ({rep['size']} size, seeds {', '.join(map(str, rep['seeds']))})", ""]
  for task, t in rep["tasks"].items():
    d = t["data"]
    lines += [f"## {task}", "",
              f"{d['name']}: {d['num_train']} train / {d['num_test']} test, maxlen "
              f"{d['maxlen']}, {d['epochs']} epochs; budget {t['budget']:,} recurrent params.",
              "", "| model | hidden | params (rnn / total) | test acc % (mean [95% CI], n) | "
              "val acc % | train step ms (B, T) |", "|---|--:|--:|--:|--:|--:|"]
    for spec, c in sorted(t["cells"].items(), key=lambda kv: -kv[1]["test_accuracy"]["mean"]):
      a, s = c["test_accuracy"], c["step_time"]
      ci = (f"[{pct(a['ci95_low'])}, {pct(a['ci95_high'])}]" if a["n"] > 1 else "[-]")
      lines.append(f"| {spec} | {c['hidden_size']} | {c['params_rnn']:,} / "
                   f"{c['params_total']:,} | {pct(a['mean'])} {ci}, {a['n']} | "
                   f"{pct(c['val_accuracy']['mean'])} | {s['median_ms']:.1f} "
                   f"({s['batch_size']}, {s['seq_len']}) |")
    for name, b in t["baselines"].items():
      lines.append(f"| {name} (TF-IDF + LinearSVC, {b['input']}) | - | {b['features']:,} "
                   f"features | {pct(b['test_accuracy'])} | - | - |")
    w = t.get("winner")
    if w and "runner_up" in w:
      m = w["margin"]
      ci = (f" (Welch 95% [{100 * m['ci95_low']:+.1f}, {100 * m['ci95_high']:+.1f}], "
            f"p = {m['p_value']:.2g})" if "p_value" in m else "")
      lines += ["", f"Winner: **{w['cell']}**, {pct(w['test_accuracy'])}%, "
                    f"{100 * m['diff']:+.1f} points over {w['runner_up']}{ci}."]
    if t.get("note"):
      lines += ["", t["note"]]
    if "published" in t:
      p = t["published"]
      lines += ["", f"Published ({p['size']}; {p['source']}): "
                + ", ".join(f"{k} {v}" for k, v in p["models"].items())
                + (" — at the full size only; this run is smaller." if rep["size"] != "full"
                   else ".")]
    lines.append("")
  env = rep["environment"]
  lines += ["Test accuracy: mean over seeds and the 95% t-interval of the mean. Train step: the "
            "benchmark's median (run_case, mode train) at the task's batch and "
            "length. Hidden sizes: the largest within each task's recurrent-param budget "
            "(docs/tasks.md).", "",
            f"Training time of all runs {_train_min(rep):.1f} min (the epochs' sum; this "
            f"invocation's wall time {rep['wall_s'] / 60:.1f} min: finished runs are read back) "
            f"on {env.get('cpu_model') or env['cpu']} "
            f"({env['cpu_count']} CPUs, {env['backend']}), jax {env['jax']}. "
            f"Command: `{rep['command']}`", ""]
  return "\n".join(lines)


def _train_min(rep: Mapping[str, Any]) -> float:
  """Minutes spent training every run of the report (epoch times, all cells and seeds)."""
  return sum(c["train_s"] for t in rep["tasks"].values() for c in t["cells"].values()) / 60


def summary_table(rep: Mapping[str, Any]) -> str:
  """One table of the whole comparison: test accuracy % per cell (rows) and task (columns),
  mean ± the 95% interval's half-width over seeds, the best of each task in bold; then the
  TF-IDF baseline on the model's tokens and each task's winner with its margin."""
  tasks = list(rep["tasks"])
  cells = list(dict.fromkeys(c for t in rep["tasks"].values() for c in t["cells"]))
  lines = ["| test accuracy % | " + " | ".join(
               f"{t} (T={rep['tasks'][t]['data']['maxlen']})" for t in tasks) + " |",
           "|---|" + "--:|" * len(tasks)]
  for cell in cells:
    row = []
    for task in tasks:
      t = rep["tasks"][task]
      c = t["cells"].get(cell)
      if c is None:
        row.append("-")
        continue
      a = c["test_accuracy"]
      text = f"{100 * a['mean']:.1f}"
      if a["n"] > 1:
        text += f" ± {100 * (a['ci95_high'] - a['mean']):.1f}"
      row.append(f"**{text}**" if t.get("winner", {}).get("cell") == cell else text)
    lines.append(f"| {cell} | " + " | ".join(row) + " |")
  lines.append("| TF-IDF + LinearSVC | " + " | ".join(
      f"{100 * rep['tasks'][t]['baselines']['tfidf_svm']['test_accuracy']:.1f}"
      for t in tasks) + " |")
  margins = []
  for task in tasks:
    w = rep["tasks"][task].get("winner") or {}
    m = w.get("margin", {})
    if "ci95_low" in m:
      margins.append(f"{w['cell']} by {100 * m['diff']:+.1f} over {w['runner_up']} "
                     f"[{100 * m['ci95_low']:+.1f}, {100 * m['ci95_high']:+.1f}]")
    else:
      margins.append(w.get("cell", "-"))
  lines.append("| winner, margin over the runner-up (Welch 95%) | " + " | ".join(margins) + " |")
  seeds = ", ".join(map(str, rep["seeds"]))
  lines += ["", f"{rep['size']} size, seeds {seeds}: mean ± half the 95% t-interval over the "
            f"seeds; training time of all runs {_train_min(rep):.0f} min on "
            f"{rep['environment'].get('cpu_model') or rep['environment']['cpu']} "
            f"({rep['environment']['cpu_count']} CPUs). Command: `{rep['command']}`", ""]
  return "\n".join(lines)


def plot(rep: Mapping[str, Any], root: pathlib.Path) -> list[str]:
  """accuracy.png (per task: test accuracy ± 95% CI per cell, baselines as lines) and
  step_time.png (per task: train step time per cell); [] without matplotlib."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    logging.warning("matplotlib is not installed (pip install -e '.[plot]'): no plots written")
    return []
  tasks = list(rep["tasks"])
  written = []
  for name, value, ylabel in (
      ("accuracy.png", lambda c: 100 * c["test_accuracy"]["mean"], "test accuracy %"),
      ("step_time.png", lambda c: c["step_time"]["median_ms"], "train step ms")):
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
      t = rep["tasks"][task]
      specs = list(t["cells"])
      heights = [value(t["cells"][s]) for s in specs]
      err = None
      if name == "accuracy.png":
        err = [[0 if math.isnan(t["cells"][s]["test_accuracy"]["ci95_low"]) else
                100 * (t["cells"][s]["test_accuracy"]["mean"] -
                       t["cells"][s]["test_accuracy"]["ci95_low"]) for s in specs]]
        for (bname, b), style in zip(t["baselines"].items(), ("--", ":")):
          ax.axhline(100 * b["test_accuracy"], color="k", linestyle=style, label=bname)
        ax.legend(fontsize=7)
      ax.bar(specs, heights, yerr=err, capsize=3)
      ax.set_title(f"{task} (T={t['data']['maxlen']})")
      ax.set_ylabel(ylabel)
      ax.tick_params(axis="x", rotation=45, labelsize=8)
      ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(root / name, dpi=100)
    plt.close(fig)
    written.append(name)
  return written


def run_compare(cells: Sequence[str], tasks: Sequence[str], seeds: Sequence[int],
                root: str | pathlib.Path, size: str = "cpu", timing_steps: int | None = None,
                overrides: Sequence[str] = (), say=print) -> dict[str, Any]:
  """Runs (or reads back) the whole comparison and writes the report into ``root``."""
  root = pathlib.Path(root)
  for spec in cells:
    parse_cell(spec)
  for task in tasks:
    task_module(task)
  if size not in SIZES:
    raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
  timing_steps = timing_steps or (5 if size == "quick" else 30)
  start = time.perf_counter()
  rep: dict[str, Any] = {
      "size": size, "seeds": [int(s) for s in seeds], "cells": list(cells),
      "overrides": list(overrides),
      "command": " ".join(["python -m rnnbench.compare", *sys.argv[1:]]),
      "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "environment": train.environment(), "tasks": {}}
  for task in tasks:
    rep["tasks"][task] = run_task(task, cells, seeds, size, root, timing_steps, overrides, say)
  rep["wall_s"] = time.perf_counter() - start
  root.mkdir(parents=True, exist_ok=True)
  rep["plots"] = plot(rep, root)
  layout.write_report(root, rep, markdown(rep))
  return rep


# Its own flag set: rnnbench.sweep (imported above) defines --seeds and --root globally.
FLAGS = flags.FlagValues()
_CELLS = flags.DEFINE_list("cells", list(CELLS), "Cells (cell[+block]), e.g. lstm,mingru+block.",
                           flag_values=FLAGS)
_TASKS = flags.DEFINE_list("tasks", list(TASKS), "Tasks: files in rnnbench/configs/tasks/.",
                           flag_values=FLAGS)
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per (task, cell): 0 .. N-1 (--quick: 2).",
                              flag_values=FLAGS)
_QUICK = flags.DEFINE_bool("quick", False, "Small sizes, for a first look (--size=quick).",
                           flag_values=FLAGS)
_SIZE = flags.DEFINE_enum("size", "cpu", list(SIZES), "full (accelerators), cpu or quick.",
                          flag_values=FLAGS)
_ROOT = flags.DEFINE_string("root", "runs/compare", "Where the runs and the report go.",
                            flag_values=FLAGS)
_SET = flags.DEFINE_multi_string("set", [], "Config override FIELD=VALUE for every run.",
                                 flag_values=FLAGS)


_CACHE = flags.DEFINE_string(
    "compilation_cache", "auto", "JAX's persistent compilation cache: a folder, 'auto' "
    "(ROOT/.jax_cache) or '' (off). Every seed after the first, and every rerun, then loads "
    "the compiled steps instead of compiling them again.", flag_values=FLAGS)


def parse_flags(argv: list[str]) -> list[str]:
  """This module's flags, then the shared ones (``cli.parse_flags``: --verbosity,
  --traceback); ``--config.FIELD=VALUE`` is ``--set=FIELD=VALUE``, as in the sweep. A bad flag
  is one line."""
  argv = [argv[0]] + [f"--set={a[len('--config.'):]}" if a.startswith("--config.") else a
                      for a in argv[1:]]
  try:
    rest = FLAGS(argv, known_only=True)
  except flags.Error as e:
    sys.exit(f"{argv[0]}: {e}\nFlags: --cells --tasks --seeds --quick --size --root --set "
             "--compilation_cache --verbosity --traceback")
  return cli.parse_flags(rest)


def main(argv):
  del argv
  if _SEEDS.value < 1:
    sys.exit(f"error: --seeds must be >= 1, got {_SEEDS.value}")
  size = "quick" if _QUICK.value else _SIZE.value
  seeds = _SEEDS.value if FLAGS["seeds"].present or size != "quick" else QUICK_SEEDS
  cache = cli.compilation_cache_dir(_CACHE.value, pathlib.Path(_ROOT.value) / ".jax_cache")
  if cache:
    cli.use_compilation_cache(cache)
  try:
    run_compare(_CELLS.value, _TASKS.value, list(range(seeds)), _ROOT.value, size,
                overrides=_SET.value)
  except train.TrainingInterrupted as e:
    sys.exit(str(e))
  print(layout.read_report_md(pathlib.Path(_ROOT.value)))


if __name__ == "__main__":
  cli.run(main, flags_parser=parse_flags)
