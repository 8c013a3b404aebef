"""Two builds of the CPU kernels compared inside one train step, in one process.

On a shared machine whose speed drifts by tens of per cent within minutes, two versions timed
in alternating processes disagree from pair to pair; two variants of the step compiled in one
process and called in turn, step by step, see the same machine. This builds ``--against``'s
``rnnbench/cpu_kernels.cc`` (a git revision) or ``--source`` (a file) as a second library,
registers its FFI targets under other names, traces variant B with ``cpu_kernels.call``
pointed at them, and times this checkout's step (A) and B in turn for ``--steps`` steps each
(notebook shapes, the train step ``run.py`` runs, its own state per variant)::

    python benchmarks/kernels_ab.py --against HEAD~1
    python benchmarks/kernels_ab.py --source /tmp/cpu_kernels.cc --cells lstm --tokens zipf \\
        --json /tmp/ab.json --markdown /tmp/ab.md

B/A above 1: this checkout's kernels are faster. The Python side (``cpu_rnn``,
``embedding_adam``) is this checkout's: the other source must export the same handlers with
the same signatures (a mismatch fails when the step runs).

What it cannot compare: a change to when the pool's threads run (a helper that spins after
its blocks, waiting for the next kernel, was one). The two variants share XLA's thread pool
step after step, and such a library compared with itself came out several per cent faster
as A than as B; compare those in separate processes, alternating (docs/speed.md, session 9).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import importlib
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from rnnbench import cpu_kernels, optim, runinfo, train  # noqa: E402
from rnnbench.bench import runner  # noqa: E402

SUFFIX = "__b"  # the other library's target names: rnnbench_lstm_fwd__b, ...


def other_source(args, workdir: pathlib.Path) -> tuple[pathlib.Path, str]:
  """The B source file and how it was named (the revision, or the path)."""
  if args.source:
    return pathlib.Path(args.source), args.source
  repo = pathlib.Path(__file__).resolve().parents[1]
  text = subprocess.run(["git", "show", f"{args.against}:rnnbench/cpu_kernels.cc"], cwd=repo,
                        capture_output=True, text=True, check=False)
  if text.returncode != 0:
    raise SystemExit(f"error: --against {args.against}: {text.stderr.strip()}")
  rev = subprocess.run(["git", "rev-parse", "--short=12", args.against], cwd=repo,
                       capture_output=True, text=True, check=True).stdout.strip()
  path = workdir / "cpu_kernels.cc"
  path.write_text(text.stdout)
  return path, f"{args.against} ({rev})"


def load_other(source: pathlib.Path, workdir: pathlib.Path) -> None:
  """Builds ``source`` with the library's flags and registers its targets + SUFFIX."""
  cxx = cpu_kernels.compiler()
  if cxx is None:
    raise SystemExit("error: no C++ compiler found (set $CXX)")
  so = workdir / "cpu_kernels_b.so"
  try:
    cpu_kernels.build(so, cxx, source)
  except cpu_kernels.BuildError as e:
    raise SystemExit(f"error: building {source} failed: {e}") from e
  lib = ctypes.CDLL(str(so))
  for name, symbol in cpu_kernels.TARGETS.items():
    jax.ffi.register_ffi_target(name + SUFFIX, jax.ffi.pycapsule(getattr(lib, symbol)),
                                platform="cpu")


@contextlib.contextmanager
def calling_other():
  """While tracing: every kernel call goes to the other library's targets."""
  call = cpu_kernels.call
  cpu_kernels.call = lambda target, *a, **k: call(target + SUFFIX, *a, **k)
  try:
    yield
  finally:
    cpu_kernels.call = call


def compiled_step(cell: str, tokens: str, other: bool):
  """The train step compiled for one variant, its arguments and how they advance."""
  cfg = importlib.import_module(f"rnnbench.configs.{cell}").get_config()
  batch = tuple(jax.device_put(a) for a in runinfo.synthetic_batch(
      32, cfg.data.maxlen, cfg.data.num_words, 20, 0, tokens=tokens))
  state = train.create_train_state(cfg, 20, jax.random.key(0))
  step = runner._steps_for("train", state, batch, optim.make_loss(cfg.train.loss))
  jitted = jax.jit(train._train_step, static_argnames="loss_fn", donate_argnums=(0, 2))
  with calling_other() if other else contextlib.nullcontext():
    fn = jitted.lower(*step.args, **step.static).compile()
  if (f'{SUFFIX}"' in fn.as_text()) != other:  # custom_call_target="...__b"
    raise SystemExit(f"error: the step ({'B' if other else 'A'}) did not call the library it "
                     "was meant to")
  return [fn, step.args, step.advance]


def compare(cell: str, tokens: str, steps: int, warmup: int) -> dict[str, Any]:
  """A (this checkout) and B called in turn; the ratio of their medians, and per half."""
  variants = {"A": compiled_step(cell, tokens, False), "B": compiled_step(cell, tokens, True)}
  times = {k: [] for k in variants}
  for i in range(warmup + steps):
    for k, v in variants.items():
      fn, args, advance = v
      t = time.perf_counter()
      out = jax.block_until_ready(fn(*args))
      if i >= warmup:
        times[k].append(time.perf_counter() - t)
      v[1] = advance(args, out)
  a, b = (np.asarray(times[k]) * 1e3 for k in ("A", "B"))
  half = steps // 2
  return {"cell": cell, "tokens": tokens, "steps": steps,
          "a_median_ms": float(np.median(a)), "b_median_ms": float(np.median(b)),
          "b_over_a": float(np.median(b) / np.median(a)),
          "b_over_a_p10": float(np.percentile(b, 10) / np.percentile(a, 10)),
          "b_over_a_halves": [float(np.median(b[:half]) / np.median(a[:half])),
                              float(np.median(b[half:]) / np.median(a[half:]))]}


def markdown(report: dict[str, Any]) -> str:
  lines = ["# CPU kernels A/B inside the train step", "",
           f"A: this checkout ({report['git']}); B: {report['b']}. Notebook shapes, batch 32; "
           f"both steps called in turn in one process, {report['steps']} steps each after "
           f"{report['warmup']} warm-up steps; {report['cpu']}.", "",
           "B/A above 1: A (this checkout) is faster. `halves`: the same ratio over each half "
           "of the run (how much it drifted).", "",
           "| cell | tokens | A ms | B ms | B/A | B/A p10 | halves |",
           "|---|---|--:|--:|--:|--:|--:|"]
  for r in report["results"]:
    lines.append(f"| {r['cell']} | {r['tokens']} | {r['a_median_ms']:.2f} | "
                 f"{r['b_median_ms']:.2f} | {r['b_over_a']:.3f} | {r['b_over_a_p10']:.3f} | "
                 f"{r['b_over_a_halves'][0]:.3f}, {r['b_over_a_halves'][1]:.3f} |")
  lines += ["", "```sh", report["command"], "```", ""]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  which = parser.add_mutually_exclusive_group()
  which.add_argument("--against", default="HEAD~1", help="git revision whose kernels are B")
  which.add_argument("--source", help="a cpu_kernels.cc file to build as B")
  parser.add_argument("--cells", default="lstm,gru", help="comma-separated: lstm, gru")
  parser.add_argument("--tokens", default="uniform,zipf")
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--warmup", type=int, default=50)
  parser.add_argument("--json")
  parser.add_argument("--markdown")
  args = parser.parse_args(argv)
  if not cpu_kernels.runs_here():
    raise SystemExit("error: the CPU kernels do not run here (a CPU backend with one device, "
                     "and a C++ compiler, are needed)")
  with tempfile.TemporaryDirectory() as tmp:
    source, named = other_source(args, pathlib.Path(tmp))
    load_other(source, pathlib.Path(tmp))
    results = []
    for cell in args.cells.split(","):
      for tokens in args.tokens.split(","):
        results.append(compare(cell, tokens, args.steps, args.warmup))
        r = results[-1]
        print(f"{cell} {tokens}: A {r['a_median_ms']:.2f} ms, B {r['b_median_ms']:.2f} ms, "
              f"B/A {r['b_over_a']:.3f} (halves {r['b_over_a_halves'][0]:.3f}, "
              f"{r['b_over_a_halves'][1]:.3f})", flush=True)
  report = {"b": named, "steps": args.steps, "warmup": args.warmup, "results": results,
            "git": (runinfo.git_commit()["commit"] or "unknown")[:12], "cpu": runinfo.cpu_model(),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "python benchmarks/kernels_ab.py " + " ".join(sys.argv[1:] if argv is None
                                                                       else argv)}
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
  if args.markdown:
    pathlib.Path(args.markdown).write_text(markdown(report))
  return 0


if __name__ == "__main__":
  sys.exit(main())
