"""Times scan='sequential' vs scan='parallel' for every cell that supports both.

One jitted forward + backward (gradients of ``sum(cell(x))`` with respect to params and x)
per cell, mode and sequence length; the median of ``--repeats`` runs after a compile run::

    python benchmarks/parallel_scan.py --json /tmp/parallel_scan.json
    python benchmarks/parallel_scan.py --seq_lens 25,100 --cells mingru,lru
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from rnnbench import cells  # pylint: disable=wrong-import-position


def time_cell(name: str, scan: str, seq_len: int, batch: int, in_features: int,
              hidden: int, repeats: int) -> float:
  """Median seconds of one jitted forward + backward."""
  cell = cells.get(name)(features=hidden, scan=scan)
  x = jax.random.normal(jax.random.key(0), (batch, seq_len, in_features))
  variables = cell.init(jax.random.key(1), x[:, :2])
  grad = jax.jit(jax.grad(lambda v, x: jnp.sum(cell.apply(v, x)), argnums=(0, 1)))
  jax.block_until_ready(grad(variables, x))  # compile
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(grad(variables, x))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cells", default="", help="comma-separated; default: every "
                      "registered cell with supports_parallel")
  parser.add_argument("--seq_lens", default="25,100,400,1600,3200")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--in_features", type=int, default=128)
  parser.add_argument("--hidden", type=int, default=50)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--json", default="", help="also write the results here")
  args = parser.parse_args()

  names = args.cells.split(",") if args.cells else [
      n for n in cells.names() if getattr(cells.get(n), "supports_parallel", False)]
  seq_lens = [int(t) for t in args.seq_lens.split(",")]
  rows = []
  print(f"forward+backward, median of {args.repeats}, batch {args.batch}, "
        f"in {args.in_features}, hidden {args.hidden}, {jax.devices()[0].platform}")
  print(f"{'cell':<10}{'T':>6}{'sequential ms':>16}{'parallel ms':>14}{'speed-up':>10}")
  for name in names:
    for t in seq_lens:
      ms = {scan: 1e3 * time_cell(name, scan, t, args.batch, args.in_features,
                                  args.hidden, args.repeats)
            for scan in ("sequential", "parallel")}
      rows.append(dict(cell=name, seq_len=t, sequential_ms=ms["sequential"],
                       parallel_ms=ms["parallel"]))
      print(f"{name:<10}{t:>6}{ms['sequential']:>16.2f}{ms['parallel']:>14.2f}"
            f"{ms['sequential'] / ms['parallel']:>9.2f}x", flush=True)
  if args.json:
    result = dict(batch=args.batch, in_features=args.in_features, hidden=args.hidden,
                  repeats=args.repeats, device=str(jax.devices()[0]),
                  jax=jax.__version__, machine=platform.machine(), rows=rows)
    pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
  main()
