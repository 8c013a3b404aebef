"""Largest differences of scan='pallas' from scan='sequential', every linear cell.

At the notebook's layer shape (B 32, T 100, E 128, H 50) by default, on whatever backend
is present (CPU: the kernel in interpret mode). Outputs, and the gradients of
``sum(w * y)`` with respect to every param and x, as max |pallas - sequential| and that over
max |sequential|::

    python benchmarks/pallas_scan_parity.py --json results/pallas_scan_parity.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from rnnbench import cells  # pylint: disable=wrong-import-position
from rnnbench import runinfo  # pylint: disable=wrong-import-position

CASES = [("mingru", {}), ("mingru", {"log_space": False}), ("minlstm", {}),
         ("minlstm", {"log_space": False}), ("lru", {}), ("qrnn", {})]


def errors(name: str, options: dict, batch: int, steps: int, embed: int, hidden: int):
  """(output, gradient) max abs errors and relative errors of pallas vs sequential."""
  x = jax.random.normal(jax.random.key(0), (batch, steps, embed))
  w = jax.random.normal(jax.random.key(1), (batch, steps, hidden))
  made = {s: cells.create(dict(cell=name, hidden_size=hidden, scan=s, **options))
          for s in ("sequential", "pallas")}
  variables = made["sequential"].init(jax.random.key(2), x)
  got = {}
  for scan, cell in made.items():
    def loss(v, x, cell=cell):
      y = cell.apply(v, x)
      return jnp.sum(w * y), y
    got[scan] = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(variables, x)
  (g_seq, y_seq), (g_pal, y_pal) = got["sequential"], got["pallas"]
  out_abs = float(jnp.max(jnp.abs(y_pal - y_seq)))
  grad_abs, grad_rel = 0.0, 0.0
  for a, b in zip(jax.tree.leaves(g_pal), jax.tree.leaves(g_seq)):
    diff = float(jnp.max(jnp.abs(a - b)))
    grad_abs = max(grad_abs, diff)
    grad_rel = max(grad_rel, diff / max(float(jnp.max(jnp.abs(b))), 1e-30))
  return dict(output_max_abs=out_abs,
              output_max_rel=out_abs / float(jnp.max(jnp.abs(y_seq))),
              grad_max_abs=grad_abs, grad_max_rel=grad_rel)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--embed", type=int, default=128)
  parser.add_argument("--hidden", type=int, default=50)
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  rows = []
  for name, options in CASES:
    row = dict(cell=name, **options, **errors(name, options, args.batch, args.steps,
                                               args.embed, args.hidden))
    rows.append(row)
    print(" ".join(f"{k}={v:.2e}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in row.items()), flush=True)
  report = dict(shape=dict(batch=args.batch, steps=args.steps, embed=args.embed,
                           hidden=args.hidden), backend=jax.default_backend(),
                environment=runinfo.jax_environment(), results=rows,
                worst={k: max(r[k] for r in rows) for k in rows[0] if k.endswith(("abs", "rel"))})
  print(json.dumps(report["worst"]))
  if args.json:
    runinfo.write_json(args.json, report)


if __name__ == "__main__":
  main()
