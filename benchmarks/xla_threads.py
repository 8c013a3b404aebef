"""Does XLA:CPU run a large element-wise fusion on every core? Process CPU time over wall time.

Two donated, jitted functions on (20000, 128) float32 arrays: Keras' Adam update of the
notebook's embedding table (memory bound: reads p, m, v, g, writes p, m, v) and a chain of
sines (compute bound). A fusion run on one thread gives a CPU / wall ratio near 1; on N
threads near N (less when memory bound). On an idle machine only::

    python benchmarks/xla_threads.py --json results/xla_threads_cpu.json \
        --markdown results/xla_threads_cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import statistics
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from rnnbench import runinfo  # pylint: disable=wrong-import-position


def keras_adam(p, m, v, g, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7):
  """Keras' Adam on one array (bias correction folded into ``lr``, as it is per step)."""
  m = b1 * m + (1 - b1) * g
  v = b2 * v + (1 - b2) * g * g
  return p - lr * m / (jnp.sqrt(v) + eps), m, v


def sines(x):
  return jnp.sin(jnp.sin(jnp.sin(jnp.sin(x) * 1.1) * 1.2) * 1.3) + jnp.cos(x)


def measure(rounds: int, calls: int, shape: tuple[int, int]) -> dict[str, Any]:
  key = jax.random.PRNGKey(0)
  p, m, v, g = [jax.random.normal(jax.random.fold_in(key, i), shape) for i in range(4)]
  state = [p, m, jnp.abs(v)]
  adam = jax.jit(keras_adam, donate_argnums=(0, 1, 2))
  sine = jax.jit(sines)

  def run_adam():
    state[:] = adam(*state, g)
    return state[0]

  fns = {"adam": run_adam, "sines": lambda: sine(g)}
  for fn in fns.values():
    jax.block_until_ready(fn())
  out: dict[str, Any] = {name: {"wall_ms": [], "cpu_ms": []} for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      wall, cpu = time.perf_counter(), time.process_time()
      for _ in range(calls):
        y = fn()
      jax.block_until_ready(y)
      out[name]["wall_ms"].append(1e3 * (time.perf_counter() - wall) / calls)
      out[name]["cpu_ms"].append(1e3 * (time.process_time() - cpu) / calls)
  for r in out.values():
    ratios = [c / w for c, w in zip(r["cpu_ms"], r["wall_ms"])]
    r["cpu_over_wall"] = {"median": statistics.median(ratios), "min": min(ratios),
                          "max": max(ratios)}
  return out


def markdown(rep: dict[str, Any]) -> str:
  env = rep["environment"]
  lines = ["# Does XLA:CPU use every core for one large element-wise fusion?", "",
           f"Shape {tuple(rep['shape'])} float32, {rep['rounds']} rounds of {rep['calls']} "
           "calls; CPU / wall = process CPU time over wall time (1: one thread).", "",
           "| function | CPU / wall, median [range] | wall ms, median | CPU ms, median |",
           "|---|--:|--:|--:|"]
  for name, r in rep["results"].items():
    c = r["cpu_over_wall"]
    lines.append(f"| {name} | **{c['median']:.2f}** [{c['min']:.2f}, {c['max']:.2f}] | "
                 f"{statistics.median(r['wall_ms']):.3f} | {statistics.median(r['cpu_ms']):.3f} |")
  lines += ["", "`adam`: Keras' Adam update of a (20000, 128) table and its moments (donated; "
            "memory bound). `sines`: a compute-bound chain of sines.", "",
            *runinfo.machine_markdown(env, load={"start": rep["loadavg_start"],
                                                 "end": rep["loadavg_end"]},
                                      command=rep["command"], created=rep["created_utc"])]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--calls", type=int, default=30)
  parser.add_argument("--rows", type=int, default=20000)
  parser.add_argument("--cols", type=int, default=128)
  parser.add_argument("--json", default="")
  parser.add_argument("--markdown", default="")
  args = parser.parse_args(argv)
  rep: dict[str, Any] = {
      "command": " ".join(["python benchmarks/xla_threads.py", *(argv if argv is not None
                                                                 else sys.argv[1:])]),
      "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "environment": runinfo.environment(**runinfo.jax_environment()),
      "loadavg_start": list(os.getloadavg()), "rounds": args.rounds, "calls": args.calls,
      "shape": [args.rows, args.cols]}
  rep["results"] = measure(args.rounds, args.calls, (args.rows, args.cols))
  rep["loadavg_end"] = list(os.getloadavg())
  text = markdown(rep)
  if args.json:
    runinfo.write_json(args.json, rep)
  if args.markdown:
    runinfo.write_text(args.markdown, text)
  print(text)
  return rep


if __name__ == "__main__":
  main()
