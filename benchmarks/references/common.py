"""What the reference benchmarks share: flags, the synthetic batch, timing, the JSON report.

Framework-free (numpy, ml_collections and ``rnnbench.runinfo``, which imports no JAX), so a
reference process imports nothing of the other frameworks. The environment, the step-time
statistics, the batch and the JSON write are ``rnnbench.runinfo``'s, as the benchmark's. The report follows rnnbench.bench's schema (docs/benchmark.md); the
fields a reference cannot measure (XLA FLOPs and memory, a separate compile time) are null.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import pathlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np

from rnnbench import runinfo

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_VERSION = 2  # rnnbench.bench.report.SCHEMA_VERSION (this module must not import JAX)


def parse_args(description: str, modes: Sequence[str],
               extra: Callable[[argparse.ArgumentParser], None] | None = None
               ) -> argparse.Namespace:
  """The flags every reference takes: a config file, shape overrides, steps and output."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--config", default=str(ROOT / "configs" / "default.py"),
                      help="rnnbench config file (model, optimizer, loss, shapes)")
  parser.add_argument("--cell", default="", help="lstm or gru; default: config.model.cell")
  parser.add_argument("--batch_size", type=int, default=0, help="default: config's")
  parser.add_argument("--seq_len", type=int, default=0, help="default: config.data.maxlen")
  parser.add_argument("--hidden_size", type=int, default=0, help="default: config's")
  parser.add_argument("--modes", default="train", help=f"comma-separated, of {list(modes)}")
  parser.add_argument("--steps", type=int, default=50)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--num_classes", type=int, default=20)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--tokens", default="uniform", choices=runinfo.TOKENS,
                      help="how the synthetic ids are drawn (rnnbench.runinfo.TOKENS)")
  parser.add_argument("--json", default="", help="write the report here")
  if extra:
    extra(parser)
  args = parser.parse_args()
  args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
  unknown = sorted(set(args.modes) - set(modes))
  if unknown:
    parser.error(f"--modes: {unknown} not supported here; choose from {list(modes)}")
  return args


def load_config(args: argparse.Namespace) -> ml_collections.ConfigDict:
  """The config file's ``get_config()`` with the command line's shape overrides."""
  spec = importlib.util.spec_from_file_location("_bench_config", args.config)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  with config.unlocked():
    config.model.cell = args.cell or config.model.cell
    config.train.batch_size = args.batch_size or config.train.batch_size
    config.data.maxlen = args.seq_len or config.data.maxlen
    config.model.hidden_size = args.hidden_size or config.model.hidden_size
  if config.model.cell not in ("lstm", "gru"):
    raise SystemExit(f"the references implement 'lstm' and 'gru', not {config.model.cell!r}")
  return config


def synthetic_batch(batch_size: int, seq_len: int, num_words: int, num_classes: int,
                    seed: int = 0, tokens: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
  """Token ids (B, T) int32 and labels (B,) int32: the benchmark's batch
  (``rnnbench.runinfo.synthetic_batch``), without its unit weights."""
  x, y, _ = runinfo.synthetic_batch(batch_size, seq_len, num_words, num_classes, seed,
                                    tokens=tokens)
  return x, y


def analytic_forward_flops(config: ml_collections.ConfigDict, num_classes: int) -> int:
  """Matmul FLOPs of one forward pass (as rnnbench.bench.runner.analytic_forward_flops counts)."""
  m = config.model
  b, t, d, h = config.train.batch_size, config.data.maxlen, m.embed_dim, m.hidden_size
  g = {"lstm": 4, "gru": 3}[m.cell]
  return 2 * b * t * (d * g * h + h * g * h) + 2 * b * (h * m.dense_size +
                                                        m.dense_size * num_classes)






def time_calls(step: Callable[[], Any], steps: int, warmup: int) -> tuple[float, list[float]]:
  """``step()`` (which must return only when its work is done): first call, then timings."""
  start = time.perf_counter()
  step()
  first = time.perf_counter() - start
  for _ in range(warmup):
    step()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return first, times








def record(config: ml_collections.ConfigDict, mode: str, *, first_call_s: float | None = None,
           times: Sequence[float] | None = None, forward_passes: int = 3, num_classes: int = 20,
           params: Mapping[str, int] | None = None, peak_memory: Mapping[str, Any] | None = None,
           notes: Sequence[str] = (), error: str | None = None,
           steps: int = 0, warmup: int = 0) -> dict[str, Any]:
  """One result row in rnnbench.bench's layout; ``error`` makes it a failed row."""
  b, t = config.train.batch_size, config.data.maxlen
  row = {"cell": config.model.cell, "batch_size": b, "seq_len": t,
         "hidden_size": config.model.hidden_size, "mode": mode, "status": "error",
         "error": error, "embed_dim": config.model.embed_dim, "steps": 0, "warmup": 0,
         "compile_s": None, "first_step_s": None, "step_time_s": None, "step_times_s": None,
         "sequences_per_s": None, "tokens_per_s": None,
         "flops": {"xla": None, "analytic": None}, "flop_per_s": {"xla": None, "analytic": None},
         "peak_memory": None, "xla_memory": None, "params": None, "impl": None,
         "notes": list(notes)}
  if error is None and times:
    stats = runinfo.step_stats(times)
    median = stats["median"]
    flops = float(forward_passes * analytic_forward_flops(config, num_classes))
    row.update(status="ok", steps=steps, warmup=warmup, first_step_s=first_call_s,
               step_time_s=stats, step_times_s=list(times), sequences_per_s=b / median,
               tokens_per_s=b * t / median, flops={"xla": None, "analytic": flops},
               flop_per_s={"xla": None, "analytic": flops / median},
               peak_memory=dict(peak_memory or runinfo.peak_rss()), params=dict(params or {}))
  return row


def report(tool: str, config: ml_collections.ConfigDict, args: argparse.Namespace,
           env: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  return {"schema_version": SCHEMA_VERSION, "tool": tool,
          "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds"),
          "command": list(sys.argv), "environment": dict(env), "config": config.to_dict(),
          "bench": {"steps": args.steps, "warmup": args.warmup, "modes": args.modes,
                    "num_classes": args.num_classes, "seed": args.seed},
          "results": list(results), "seq_len_fits": [], "scaling": None}




def finish(rep: Mapping[str, Any], path: str) -> None:
  """Prints one line per result and the notes; writes the JSON if asked."""
  for r in rep["results"]:
    case = (f"{rep['tool']} {r['cell']} b={r['batch_size']} t={r['seq_len']} "
            f"h={r['hidden_size']} {r['mode']}")
    if r["status"] != "ok":
      print(f"{case}: ERROR {r['error']}")
      continue
    s = r["step_time_s"]
    print(f"{case}: median {1e3 * s['median']:.3f} ms (p10 {1e3 * s['p10']:.3f}, "
          f"p90 {1e3 * s['p90']:.3f}), first step {r['first_step_s']:.2f} s, "
          f"{r['sequences_per_s']:.4g} seq/s, {r['tokens_per_s']:.4g} tok/s, "
          f"{r['flop_per_s']['analytic'] * 1e-9:.3g} GFLOP/s (matmul), "
          f"peak {r['peak_memory']['bytes'] / 2**20:.0f} MB, params {r['params'].get('total')}")
  for note in sorted({n for r in rep["results"] for n in r["notes"]}):
    print(f"  note: {note}")
  if path:
    runinfo.write_json(path, rep)
    print(f"wrote {path}")
