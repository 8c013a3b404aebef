"""Regenerates every CPU speed figure the README and docs show, one command after the other.

Each step runs in a fresh process with its canonical arguments and writes into ``results/``;
the generated blocks (``scripts/speed_summary.py``: the README's speed block) come last, from
what the steps wrote. On a quiet machine this takes hours (the side-by-side and the whole run
dominate)::

    python benchmarks/regenerate_cpu.py                       # everything
    python benchmarks/regenerate_cpu.py --list                # the steps and their outputs
    python benchmarks/regenerate_cpu.py --dry-run             # print the commands only
    python benchmarks/regenerate_cpu.py --only tokenizer_speed,speed_summary

It stops at the first step that fails, with one line naming it. The steps that read the real
data need the 20news-bydate archive: ``$RNNBENCH_20NEWS_ARCHIVE`` or
``../shared/data/20news-bydate.tar.gz``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARCHIVE_ENV = "RNNBENCH_20NEWS_ARCHIVE"
SHARED_ARCHIVE = ROOT.parent / "shared" / "data" / "20news-bydate.tar.gz"
EIGHT_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
LEADS = ("baseline,hard_sigmoid_jvp,fused,fused_unroll2,fused_unroll4,fused_1thread_eigen,"
         "sparse_embedding_adam,cpu_kernels,rows_projection")
BENCH = ["-m", "rnnbench.bench", "--config=configs/default.py", "--bench.cells=lstm,gru"]


@dataclasses.dataclass(frozen=True)
class Step:
  """One command: its name, the arguments after ``python``, what it writes, its env."""
  name: str
  args: tuple[str, ...]
  outputs: tuple[str, ...]
  env: tuple[tuple[str, str], ...] = ()
  needs_data: bool = False

  def command(self) -> str:
    """The command line as a person would type it (env first)."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env)
    return (f"{env} " if env else "") + " ".join(["python", *map(shlex.quote, self.args)])


def _step(name: str, args: list[str], outputs: list[str], env: dict[str, str] | None = None,
          needs_data: bool = False) -> Step:
  return Step(name, tuple(args), tuple(outputs), tuple((env or {}).items()), needs_data)


def _bench(name: str, flags: list[str], env: dict[str, str] | None = None) -> Step:
  return _step(name, [*BENCH, *flags, f"--bench.json=results/{name}.json",
                      f"--bench.plot=results/{name}.png"],
               [f"results/{name}.json", f"results/{name}.png"], env)


STEPS: tuple[Step, ...] = (
    _step("side_by_side", ["benchmarks/side_by_side.py",
                           "--tools=rnnbench,keras-tensorflow,keras-jax,torch-eager",
                           "--rounds=5", "--json=results/side_by_side_cpu.json",
                           "--markdown=results/side_by_side_cpu.md"],
          ["results/side_by_side_cpu.json", "results/side_by_side_cpu.md"]),
    _step("side_by_side_zipf", ["benchmarks/side_by_side.py",
                                "--tools=rnnbench,keras-tensorflow,keras-jax,torch-eager",
                                "--rounds=5", "--tokens=zipf",
                                "--json=results/side_by_side_cpu_zipf.json",
                                "--markdown=results/side_by_side_cpu_zipf.md"],
          ["results/side_by_side_cpu_zipf.json", "results/side_by_side_cpu_zipf.md"]),
    _step("whole_run", ["benchmarks/whole_run.py", "--rounds=3",
                        "--json=results/whole_run_cpu.json", "--markdown=results/whole_run_cpu.md"],
          ["results/whole_run_cpu.json", "results/whole_run_cpu.md"], needs_data=True),
    _step("tokenizer_speed", ["benchmarks/tokenizer_speed.py", "--json",
                              "results/tokenizer_speed.json", "--markdown",
                              "results/tokenizer_speed.md"],
          ["results/tokenizer_speed.json", "results/tokenizer_speed.md"], needs_data=True),
    _step("step_breakdown", ["benchmarks/step_breakdown.py", "--json",
                             "results/step_breakdown_cpu.json", "--markdown",
                             "results/step_breakdown_cpu.md"],
          ["results/step_breakdown_cpu.json", "results/step_breakdown_cpu.md"], needs_data=True),
    _step("speed_leads", ["benchmarks/speed_leads.py", "--keras", "--leads", LEADS,
                          "--rounds", "15", "--steps", "6", "--json",
                          "results/speed_leads_cpu.json", "--markdown",
                          "results/speed_leads_cpu.md"],
          ["results/speed_leads_cpu.json", "results/speed_leads_cpu.md"], needs_data=True),
    _step("xla_threads", ["benchmarks/xla_threads.py", "--json", "results/xla_threads_cpu.json",
                          "--markdown", "results/xla_threads_cpu.md"],
          ["results/xla_threads_cpu.json", "results/xla_threads_cpu.md"], needs_data=False),
    _step("parallel_scan", ["benchmarks/parallel_scan.py", "--json",
                            "results/cells_parallel_scan.json", "--markdown",
                            "results/cells_parallel_scan.md"],
          ["results/cells_parallel_scan.json", "results/cells_parallel_scan.md"]),
    _bench("bench_seq_cpu", ["--bench.seq_lens=25,50,100,200,400,800", "--bench.modes=train",
                             "--bench.steps=30", "--bench.warmup=3"]),
    _bench("bench_batch_cpu", ["--bench.batch_sizes=32,64,128,256,512,1024",
                               "--bench.seq_lens=100", "--bench.modes=train",
                               "--bench.steps=20", "--bench.warmup=3"]),
    _bench("bench_devices_cpu8", ["--bench.devices=1,2,4,8"], EIGHT_DEVICES),
    _bench("bench_devices_weak_cpu8", ["--bench.devices=1,2,4,8", "--bench.weak_scaling=True",
                                       "--bench.steps=20", "--bench.warmup=3"], EIGHT_DEVICES),
    _step("speed_summary", ["scripts/speed_summary.py"],
          ["results/speed_summary.md", "README.md"]),
)


def archive() -> pathlib.Path | None:
  """The 20news-bydate archive the data steps will read, or None when there is none."""
  env = os.environ.get(ARCHIVE_ENV)
  path = pathlib.Path(env) if env else SHARED_ARCHIVE
  return path if path.is_file() else None


def select(only: str) -> list[Step]:
  """The steps named in ``only`` (comma-separated), in the regeneration order; all if empty."""
  names = [n for n in only.split(",") if n]
  unknown = sorted(set(names) - {s.name for s in STEPS})
  if unknown:
    raise SystemExit(f"error: --only: unknown step(s) {', '.join(unknown)}; --list shows "
                     f"{', '.join(s.name for s in STEPS)}")
  return [s for s in STEPS if not names or s.name in names]


def run(steps: list[Step]) -> int:
  """Runs ``steps`` one after the other; 1 and one line at the first failure."""
  total = time.perf_counter()
  data = archive()
  for i, step in enumerate(steps, 1):
    env = {**os.environ, **dict(step.env)}
    if data is not None:
      env.setdefault(ARCHIVE_ENV, str(data))
    print(f"[{i}/{len(steps)}] {step.name}: {step.command()}", flush=True)
    start = time.perf_counter()
    rc = subprocess.run([sys.executable, *step.args], cwd=ROOT, env=env, check=False).returncode
    wall = time.perf_counter() - start
    if rc != 0:
      print(f"error: step {step.name} failed (exit {rc}) after {wall:.0f} s; rerun it with "
            f"--only {step.name} once fixed", file=sys.stderr)
      return 1
    print(f"[{i}/{len(steps)}] {step.name}: done in {wall:.0f} s, wrote "
          f"{', '.join(step.outputs)}", flush=True)
  print(f"all {len(steps)} steps done in {(time.perf_counter() - total) / 60:.1f} min")
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--only", default="", help="comma-separated step names (see --list)")
  parser.add_argument("--list", action="store_true", help="the steps and what each writes")
  parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
  args = parser.parse_args(argv)
  steps = select(args.only)
  if args.list:
    for step in steps:
      print(f"{step.name}: {', '.join(step.outputs)}")
    return 0
  if args.dry_run:
    for step in steps:
      print(step.command())
    return 0
  if any(s.needs_data for s in steps) and archive() is None:
    raise SystemExit(f"error: no 20news-bydate archive at ${ARCHIVE_ENV} or {SHARED_ARCHIVE}; "
                     f"export {ARCHIVE_ENV}=/path/to/20news-bydate.tar.gz")
  return run(steps)


if __name__ == "__main__":
  sys.exit(main())
