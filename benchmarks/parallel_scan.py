"""Times scan='sequential' vs scan='parallel' for every cell that supports both.

One jitted forward + backward (gradients of ``sum(cell(x))`` with respect to params and x)
per cell, mode and sequence length; the median of ``--repeats`` runs after a compile run.
``--markdown`` writes the page (the speed-up with its range as the headline, the ms, the
machine, the command); ``--from_json`` renders it from a saved JSON without measuring::

    python benchmarks/parallel_scan.py --json results/cells_parallel_scan.json \\
        --markdown results/cells_parallel_scan.md
    python benchmarks/parallel_scan.py --seq_lens 25,100 --cells mingru,lru
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from rnnbench import cells  # pylint: disable=wrong-import-position
from rnnbench import runinfo  # pylint: disable=wrong-import-position


def time_cell(name: str, scan: str, seq_len: int, batch: int, in_features: int,
              hidden: int, repeats: int) -> list[float]:
  """Seconds of each of ``repeats`` runs of one jitted forward + backward."""
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
  return times


def markdown(result: dict) -> str:
  """The JSON report as a page: per cell and T, the speed-up with its range, the ms."""
  lines = ["# Sequential against parallel scan, forward + backward (CPU)", "",
           f"One jitted forward + backward of the cell alone (batch {result['batch']}, "
           f"in {result['in_features']}, hidden {result['hidden']}), median of "
           f"{result['repeats']} runs after a compile run, on {result.get('device', '?')}. "
           "speed-up = sequential / parallel (above 1: the parallel scan is faster); its "
           "range is the lowest and highest the runs allow (fastest sequential over slowest "
           "parallel and the reverse; `-` where the JSON kept medians only).", "",
           "| cell | T | speed-up [range] | sequential ms | parallel ms |",
           "|---|--:|--:|--:|--:|"]
  for r in result["rows"]:
    seq, par = r.get("sequential_times_ms"), r.get("parallel_times_ms")
    span = f" [{min(seq) / max(par):.2f}, {max(seq) / min(par):.2f}]" if seq and par else " -"
    lines.append(f"| {r['cell']} | {r['seq_len']} | **{r['sequential_ms'] / r['parallel_ms']:.2f}**"
                 f"{span} | {r['sequential_ms']:.2f} | {r['parallel_ms']:.2f} |")
  env = result.get("environment") or {"jax": result.get("jax"), "cpu": result.get("machine")}
  lines += ["", *runinfo.machine_markdown(env, load=result.get("load_average"),
                                          command=result.get("command"),
                                          created=result.get("created_utc"))]
  return "\n".join(lines)


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
  parser.add_argument("--markdown", default="", help="write the results page here")
  parser.add_argument("--from_json", default="",
                      help="render --markdown from this saved JSON; measures nothing")
  args = parser.parse_args()
  if runinfo.render_saved(parser, args.from_json, args.markdown, markdown) is not None:
    return
  load_start = [round(x, 2) for x in os.getloadavg()]

  names = args.cells.split(",") if args.cells else [
      n for n in cells.names() if getattr(cells.get(n), "supports_parallel", False)]
  seq_lens = [int(t) for t in args.seq_lens.split(",")]
  rows = []
  print(f"forward+backward, median of {args.repeats}, batch {args.batch}, "
        f"in {args.in_features}, hidden {args.hidden}, {jax.devices()[0].platform}")
  print(f"{'cell':<10}{'T':>6}{'sequential ms':>16}{'parallel ms':>14}{'speed-up':>10}")
  for name in names:
    for t in seq_lens:
      all_ms = {scan: [1e3 * x for x in time_cell(name, scan, t, args.batch,
                                                  args.in_features, args.hidden, args.repeats)]
                for scan in ("sequential", "parallel")}
      ms = {scan: statistics.median(v) for scan, v in all_ms.items()}
      rows.append(dict(cell=name, seq_len=t, sequential_ms=ms["sequential"],
                       parallel_ms=ms["parallel"], sequential_times_ms=all_ms["sequential"],
                       parallel_times_ms=all_ms["parallel"]))
      print(f"{name:<10}{t:>6}{ms['sequential']:>16.2f}{ms['parallel']:>14.2f}"
            f"{ms['sequential'] / ms['parallel']:>9.2f}x", flush=True)
  result = dict(batch=args.batch, in_features=args.in_features, hidden=args.hidden,
                repeats=args.repeats, device=str(jax.devices()[0]),
                jax=jax.__version__, machine=platform.machine(), rows=rows,
                command=" ".join(["python benchmarks/parallel_scan.py", *sys.argv[1:]]),
                created_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                load_average={"start": load_start,
                              "end": [round(x, 2) for x in os.getloadavg()]},
                environment=runinfo.jax_environment())
  for path, text in ((args.json, lambda: json.dumps(result, indent=2) + "\n"),
                     (args.markdown, lambda: markdown(result))):
    if path:
      runinfo.write_text(path, text())
      print(f"wrote {path}")


if __name__ == "__main__":
  main()
