"""rnnbench against every installed reference, train step at the notebook's shapes.

Each tool runs in its own process, one cell at a time; the tools alternate and the order is
rotated every round, so a slow spell of a shared machine does not fall on one tool. Per
cell and tool: the median over rounds of each run's median step time, and its ratio to
rnnbench's (above 1: slower than rnnbench)::

    python benchmarks/side_by_side.py --json=/tmp/side_by_side.json
    python benchmarks/side_by_side.py --cells=gru --rounds=5 --tools=rnnbench,torch-eager
    python benchmarks/side_by_side.py --rounds=5 --json=results/side_by_side_cpu.json \\
        --markdown=results/side_by_side_cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "references"))
import common  # pylint: disable=wrong-import-position
from rnnbench import runinfo  # pylint: disable=wrong-import-position

ROOT = common.ROOT
REFERENCES = ROOT / "benchmarks" / "references"
# tool -> (modules it needs, its command line before the shared flags)
TOOLS: dict[str, tuple[tuple[str, ...], list[str]]] = {
    "rnnbench": (("jax", "flax"), ["-m", "rnnbench.bench"]),
    "keras-tensorflow": (("keras", "tensorflow"),
                         [str(REFERENCES / "keras_bench.py"), "--backend=tensorflow"]),
    "keras-jax": (("keras", "jax"), [str(REFERENCES / "keras_bench.py"), "--backend=jax"]),
    "torch-eager": (("torch",), [str(REFERENCES / "torch_bench.py")]),
    "torch-compile": (("torch",), [str(REFERENCES / "torch_bench.py"), "--compile"]),
}


def installed(tool: str) -> bool:
  return all(importlib.util.find_spec(m) is not None for m in TOOLS[tool][0])


def command(tool: str, args: argparse.Namespace, cell: str, json_path: str) -> list[str]:
  """The tool's command line for one cell, mode train, at the config's shapes."""
  cmd = [sys.executable, *TOOLS[tool][1], f"--config={args.config}"]
  if tool == "rnnbench":
    return cmd + [f"--config.model.cell={cell}", "--bench.modes=train",
                  f"--bench.steps={args.steps}", f"--bench.warmup={args.warmup}",
                  f"--bench.tokens={args.tokens}", f"--bench.json={json_path}"]
  return cmd + [f"--cell={cell}", "--modes=train", f"--steps={args.steps}",
                f"--warmup={args.warmup}", f"--tokens={args.tokens}", f"--json={json_path}"]


def run_one(tool: str, args: argparse.Namespace, cell: str, workdir: str) -> dict[str, Any]:
  """Runs one tool for one cell; the train record's figures, or why there are none."""
  path = str(pathlib.Path(workdir) / f"{tool}-{cell}.json")
  cmd = command(tool, args, cell, path)
  start = time.perf_counter()
  run = {"tool": tool, "cell": cell, "command": cmd, "median_s": None, "p10_s": None,
         "first_step_s": None, "error": None, "report": None}
  try:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
  except subprocess.TimeoutExpired:
    run.update(error=f"timed out after {args.timeout} s", wall_s=time.perf_counter() - start)
    return run
  run["wall_s"] = time.perf_counter() - start
  try:
    report = json.loads(pathlib.Path(path).read_text())
    record = next(r for r in report["results"] if r["mode"] == "train")
  except (OSError, ValueError, StopIteration, KeyError):
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    run["error"] = f"exit {proc.returncode}, no report: {' | '.join(tail)}"
    return run
  run["report"] = report
  if record["status"] != "ok":
    run["error"] = record["error"]
  else:
    run.update(median_s=record["step_time_s"]["median"], p10_s=record["step_time_s"]["p10"],
               first_step_s=record["first_step_s"], notes=record["notes"])
  return run


def summarize(runs: list[dict[str, Any]], tools: list[str],
              cells: list[str]) -> list[dict[str, Any]]:
  """Per cell and tool: medians over rounds, and their ratios to rnnbench's.

  ``median_s`` is the median of the runs' median step times, ``p10_s`` of their 10th
  percentiles (less sensitive to other load on the machine).
  """
  rows = []
  for cell in cells:
    base = {}
    for tool in tools:
      mine = [r for r in runs if r["cell"] == cell and r["tool"] == tool]
      of = lambda key: [r[key] for r in mine if r[key] is not None]
      medians = of("median_s")
      row = {"cell": cell, "tool": tool, "runs": len(mine), "ok_runs": len(medians),
             "median_s": statistics.median(medians) if medians else None,
             "min_s": min(medians) if medians else None,
             "max_s": max(medians) if medians else None,
             "p10_s": statistics.median(of("p10_s")) if medians else None,
             "first_step_s": statistics.median(of("first_step_s")) if medians else None,
             "errors": sorted({r["error"] for r in mine if r["error"]}),
             "notes": sorted({n for r in mine for n in r.get("notes") or []})}
      if tool == "rnnbench":
        base = row
      for key in ("median_s", "p10_s"):
        ratio = row[key] / base[key] if row[key] and base.get(key) else None
        row[f"ratio{'' if key == 'median_s' else '_p10'}_to_rnnbench"] = ratio
      rows.append(row)
  return rows


def format_summary(rows: list[dict[str, Any]], header: str) -> str:
  fmt = lambda v, spec: "-" if v is None else format(v, spec)
  head = ("cell", "tool", "median_ms", "range_ms", "ratio", "p10_ms", "ratio_p10",
          "first_step_s", "runs")
  ms = lambda v: None if v is None else 1e3 * v
  body = [(r["cell"], r["tool"], fmt(ms(r["median_s"]), ".2f"),
           (f"{1e3 * r['min_s']:.2f}-{1e3 * r['max_s']:.2f}" if r["min_s"] else "-"),
           fmt(r["ratio_to_rnnbench"], ".2f"), fmt(ms(r["p10_s"]), ".2f"),
           fmt(r["ratio_p10_to_rnnbench"], ".2f"), fmt(r["first_step_s"], ".2f"),
           f"{r['ok_runs']}/{r['runs']}") for r in rows]
  widths = [max(len(x) for x in col) for col in zip(head, *body)]
  lines = [header, "ratio = tool / rnnbench (above 1: rnnbench is faster); median_ms and "
                   "p10_ms: medians over rounds of each run's median and 10th percentile; "
                   "range_ms: the runs' medians"]
  lines += ["  ".join(x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in
                      enumerate(zip(row, widths))) for row in [head, *body]]
  for r in rows:
    for e in r["errors"]:
      lines.append(f"  {r['cell']} {r['tool']} error: {e}")
  notes = {}
  for r in rows:
    for n in r["notes"]:
      notes.setdefault(n, set()).add(r["tool"])
  lines += [f"  note ({', '.join(sorted(t))}): {n}" for n, t in sorted(notes.items())]
  return "\n".join(lines)


def load_average() -> list[float] | None:
  """The 1, 5 and 15 minute load averages, where the OS has them."""
  try:
    return [round(x, 2) for x in os.getloadavg()]
  except (AttributeError, OSError):
    return None


def versions(runs: list[dict[str, Any]]) -> str:
  """``jax 0.x, flax 0.y, torch 2.z, ...`` from the runs' reports."""
  found = {}
  for run in runs:
    env = (run.get("report") or {}).get("environment", {})
    for name in ("jax", "jaxlib", "flax", "optax", "torch", "keras", "tensorflow"):
      if env.get(name):
        found.setdefault(name, env[name])
  return ", ".join(f"{k} {v}" for k, v in found.items()) or "-"


def markdown(out: dict[str, Any], rows: list[dict[str, Any]], header: str) -> str:
  """The summary as a Markdown page: the ratio table, the machine, the command, the caveat."""
  env, load = out["environment"], out["load_average"]
  ms = lambda v: "-" if v is None else f"{1e3 * v:.2f}"
  x = lambda v: "-" if v is None else f"{v:.2f}"
  lines = [
      "# rnnbench side by side (CPU)", "", header, "",
      "ratio = tool / rnnbench median step time (above 1: rnnbench is faster). `median_ms`: "
      "median over rounds of each run's median; `range_ms`: lowest and highest run median; "
      "`p10_ms`, `ratio_p10`: the same with each run's 10th percentile.", "",
      "| cell | tool | median_ms | range_ms | ratio | p10_ms | ratio_p10 | first_step_s | runs |",
      "|---|---|--:|--:|--:|--:|--:|--:|--:|"]
  for r in rows:
    span = f"{ms(r['min_s'])}-{ms(r['max_s'])}" if r["min_s"] else "-"
    lines.append(f"| {r['cell']} | {r['tool']} | {ms(r['median_s'])} | {span} | "
                 f"{x(r['ratio_to_rnnbench'])} | {ms(r['p10_s'])} | "
                 f"{x(r['ratio_p10_to_rnnbench'])} | {x(r['first_step_s'])} | "
                 f"{r['ok_runs']}/{r['runs']} |")
  errors = [f"- {r['cell']} {r['tool']}: {e}" for r in rows for e in r["errors"]]
  notes = sorted({(n, r["tool"]) for r in rows for n in r["notes"]})
  if errors:
    lines += ["", "Errors:", "", *errors]
  if notes:
    lines += ["", "Model differences (from the references' notes):", "",
              *sorted({f"- {n}" for n, _ in notes})]
  git = env.get("git") or {}
  lines += [
      "", "## Machine and command", "",
      f"- CPU: {env.get('cpu_model')}, {env.get('cpu_count')} cores "
      f"({env.get('cpu_affinity')} usable by the runs); {env.get('platform')}, "
      f"Python {env.get('python')}",
      f"- Load average (1, 5, 15 min) at the start: {load['start']}, at the end: {load['end']}",
      f"- Finished {out['created_utc']}, {out['wall_s'] / 60:.1f} minutes, git "
      f"{(git.get('commit') or '?')[:12]}{' (uncommitted changes)' if git.get('dirty') else ''}",
      f"- Tools run: {', '.join(out['tools'])}; not installed: "
      f"{', '.join(out['skipped']) or 'none'}",
      f"- Versions: {versions(out['runs'])}; each run's full report, environment included, "
      f"is in the JSON (`{out['settings']['json'] or '-'}`)", "",
      "```sh", "python " + " ".join(out["command"]), "```", "",
      "## Caveat: a shared, loaded machine", "",
      "These figures come from a machine whose cores other processes were using at the same "
      "time (the load averages above, against its core count). Absolute step times are "
      "inflated and noisy, and multi-threaded runtimes (PyTorch's OpenMP, XLA's Eigen pool) "
      "suffer most when their threads are descheduled. The tools alternate and their order "
      "rotates each round, so the ratios are fairer than the absolute times; where `ratio` "
      "and `ratio_p10` disagree, trust neither far. Rerun on a quiet machine before quoting "
      "them.", ""]
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/default.py",
                      help="the shapes and model (relative to the repo root)")
  parser.add_argument("--cells", default="lstm,gru")
  parser.add_argument("--tools", default=",".join(TOOLS),
                      help="comma-separated; the ones not installed are skipped")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=50)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--tokens", default="uniform", choices=runinfo.TOKENS,
                      help="how every tool's synthetic ids are drawn: uniform, or zipf "
                      "(p ~ 1/rank, as text: rnnbench.runinfo.TOKENS)")
  parser.add_argument("--timeout", type=int, default=900, help="seconds per run")
  parser.add_argument("--json", default="", help="write every run and the summary here")
  parser.add_argument("--markdown", default="",
                      help="write the summary, machine, command and caveats here")
  args = parser.parse_args()

  cells = [c for c in args.cells.split(",") if c]
  wanted = [t for t in args.tools.split(",") if t]
  unknown = sorted(set(wanted) - set(TOOLS))
  if unknown:
    parser.error(f"--tools: unknown {unknown}; choose from {list(TOOLS)}")
  tools = [t for t in wanted if installed(t)]
  skipped = [t for t in wanted if t not in tools]
  if "rnnbench" not in tools:
    parser.error("--tools must include rnnbench (the ratios are to it)")
  if skipped:
    print(f"not installed, skipped: {', '.join(skipped)} "
          "(pip install 'rnnbench[references]')", flush=True)

  started, load_start = time.perf_counter(), load_average()
  runs = []
  with tempfile.TemporaryDirectory(prefix="side_by_side_") as workdir:
    for rnd in range(args.rounds):
      order = tools[rnd % len(tools):] + tools[:rnd % len(tools)]
      for cell in cells:
        for tool in order:
          run = run_one(tool, args, cell, workdir)
          run["round"] = rnd + 1
          runs.append(run)
          result = (f"{1e3 * run['median_s']:.2f} ms" if run["median_s"] is not None
                    else f"ERROR {run['error']}")
          print(f"[round {rnd + 1}/{args.rounds}] {cell:<5} {tool:<17} {result} "
                f"({run['wall_s']:.0f} s)", flush=True)

  rows = summarize(runs, tools, cells)
  base = next((r["report"] for r in runs if r["tool"] == "rnnbench" and r["report"]), None)
  shapes = (base or {}).get("config", {})
  header = (f"side by side, train step: B={shapes.get('train', {}).get('batch_size')} "
            f"T={shapes.get('data', {}).get('maxlen')} "
            f"E={shapes.get('model', {}).get('embed_dim')} "
            f"H={shapes.get('model', {}).get('hidden_size')}, {args.tokens} token ids, "
            f"{args.rounds} rounds x "
            f"{args.steps} steps (median of the runs' medians); {runinfo.cpu_model()}")
  print(format_summary(rows, header))
  out = {"schema_version": common.SCHEMA_VERSION, "kind": "side_by_side",
         "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
             timespec="seconds"),
         "command": list(sys.argv), "environment": runinfo.environment(),
         "load_average": {"start": load_start, "end": load_average()},
         "wall_s": time.perf_counter() - started, "settings": vars(args), "tools": tools,
         "skipped": skipped, "summary": rows, "runs": runs}
  for path, text in ((args.json, lambda: json.dumps(out, indent=2) + "\n"),
                     (args.markdown, lambda: markdown(out, rows, header))):
    if path:
      pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
      pathlib.Path(path).write_text(text())
      print(f"wrote {path}")


if __name__ == "__main__":
  main()
