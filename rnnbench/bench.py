"""Step-time benchmark of the classifier: compile time, step times, throughput, FLOPs, memory.

One config's model, or a grid of cells x batch sizes x sequence lengths x hidden sizes, on a
synthetic batch::

    python -m rnnbench.bench --config=configs/gru.py
    python -m rnnbench.bench --config=configs/default.py --bench.cells=lstm,gru \\
        --bench.seq_lens=25,100,400 --bench.modes=train --bench.json=/tmp/bench.json \\
        --bench.compare=/tmp/old.json --bench.plot=/tmp/bench.png
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m rnnbench.bench \\
        --config=configs/default.py --bench.devices=1,2,4,8

Modes: ``train`` (``train.train_step``: forward, backward, optimizer update), ``forward``
(the training forward pass and loss, dropout on), ``forward_backward`` (``value_and_grad`` of
the loss) and ``optimizer`` (``tx.update`` + ``optax.apply_updates`` on fixed gradients).
``--bench.devices`` times the data-parallel training step (``rnnbench.sharding``) on 1, 2,
... devices instead, for each case of the grid. docs/benchmark.md describes the output and its
JSON schema.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import json
import math
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import flax
import jax
import jax.numpy as jnp
import jaxlib
import ml_collections
import numpy as np
import optax

from rnnbench import optim
from rnnbench import sharding
from rnnbench import train
from rnnbench import validation

# 2 added the top-level "scaling" and "seq_len_fits"; "results" records are as in 1.
SCHEMA_VERSION = 2
_COMPARABLE_SCHEMAS = (1, 2)
MODES = ("train", "forward", "forward_backward", "optimizer")
# Analytic matmul FLOPs of each mode, in forward passes (backward ~ 2x forward).
_FORWARD_PASSES = {"train": 3, "forward": 1, "forward_backward": 3, "optimizer": 0}
_CASE_KEYS = ("cell", "batch_size", "seq_len", "hidden_size", "mode")
_SCALING_KEYS = ("cell", "batch_size", "seq_len", "hidden_size", "num_devices")
_SHORT = {"batch_size": "b", "seq_len": "t", "hidden_size": "h"}
_HEAD = {"cell": "cell", "batch_size": "B", "seq_len": "T", "hidden_size": "H", "mode": "mode",
         "num_devices": "devices"}


def default_bench_config() -> ml_collections.ConfigDict:
  """The ``--bench.*`` settings; an empty list takes the value from the model config."""
  bench = ml_collections.ConfigDict()
  bench.cells = ""          # comma-separated cell names; "": config.model.cell
  bench.batch_sizes = ""    # "": config.train.batch_size
  bench.seq_lens = ""       # "": config.data.maxlen
  bench.hidden_sizes = ""   # "": config.model.hidden_size
  bench.modes = ",".join(MODES)
  bench.steps = 50          # timed steps per case and mode
  bench.warmup = 5          # untimed steps after the first call
  bench.num_classes = 20
  bench.seed = 0
  bench.json = ""           # write the report here
  bench.compare = ""        # a saved report: print every case's ratio to it
  bench.plot = ""           # a PNG of the results (needs matplotlib)
  bench.devices = ""        # "1,2,8" or "all" (1, 2, 4, ... every device): the scaling mode
  bench.weak_scaling = False  # devices mode: batch_sizes per device, not global
  return bench


@dataclasses.dataclass(frozen=True)
class Case:
  """One model shape of the grid."""
  cell: str
  batch_size: int
  seq_len: int
  hidden_size: int

  def label(self) -> str:
    return f"{self.cell} b={self.batch_size} t={self.seq_len} h={self.hidden_size}"


def parse_list(value: Any, cast: Callable[[str], Any], name: str) -> list[Any]:
  """``"25,100"`` (or a number, or a sequence) -> ``[25, 100]``; a clear error otherwise."""
  if isinstance(value, str):
    items = [v.strip() for v in value.split(",") if v.strip()]
  elif isinstance(value, Sequence):
    items = list(value)
  else:
    items = [value]
  try:
    return [cast(v) for v in items]
  except ValueError:
    raise ValueError(f"bench.{name}: cannot read {value!r} as a comma-separated list of "
                     f"{cast.__name__}") from None


def make_cases(config: ml_collections.ConfigDict,
               bench: ml_collections.ConfigDict) -> list[Case]:
  """The grid: cells x batch sizes x sequence lengths x hidden sizes."""
  cell_names = parse_list(bench.cells, str, "cells") or [config.model.cell]
  batch_sizes = parse_list(bench.batch_sizes, int, "batch_sizes") or [config.train.batch_size]
  seq_lens = parse_list(bench.seq_lens, int, "seq_lens") or [config.data.maxlen]
  hidden_sizes = (parse_list(bench.hidden_sizes, int, "hidden_sizes")
                  or [config.model.hidden_size])
  return [Case(c, b, t, h) for c in cell_names for b in batch_sizes for t in seq_lens
          for h in hidden_sizes]


def parse_modes(value: Any) -> list[str]:
  modes = parse_list(value, str, "modes") or list(MODES)
  unknown = sorted(set(modes) - set(MODES))
  if unknown:
    raise ValueError(f"bench.modes: unknown mode(s) {unknown}; choose from {list(MODES)}")
  return modes


def parse_devices(value: Any) -> list[int]:
  """``bench.devices``: ``""`` -> ``[]`` (off), ``"all"`` -> 1, 2, 4, ... every device."""
  if isinstance(value, str) and value.strip().lower() == "all":
    return sharding.default_device_counts()
  counts = parse_list(value, int, "devices")
  available = jax.device_count()
  bad = [n for n in counts if not 0 < n <= available]
  if bad:
    hint = (f"; simulate more CPU devices with XLA_FLAGS=--xla_force_host_platform_device_count"
            f"={max(bad)}" if jax.default_backend() == "cpu" else "")
    raise ValueError(f"bench.devices: {bad} not in [1, {available}], the "
                     f"{jax.default_backend()} device count{hint}")
  return counts


def synthetic_batch(batch_size: int, seq_len: int, num_words: int, num_classes: int,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Random token ids (B, T) int32 in [1, num_words), labels (B,) int32 and unit weights.

  benchmarks/references/common.py draws the same batch (the tests check it).
  """
  rng = np.random.default_rng(seed)
  x = rng.integers(1, num_words, size=(batch_size, seq_len), dtype=np.int64).astype(np.int32)
  y = rng.integers(0, num_classes, size=(batch_size,), dtype=np.int64).astype(np.int32)
  return x, y, np.ones((batch_size,), np.float32)


def case_config(config: ml_collections.ConfigDict, case: Case) -> ml_collections.ConfigDict:
  """A copy of ``config`` with the case's cell, hidden size, sequence length and batch size."""
  config = copy.deepcopy(config)
  with config.unlocked():
    config.model.cell = case.cell
    config.model.hidden_size = case.hidden_size
    config.data.maxlen = case.seq_len
    config.train.batch_size = case.batch_size
  return config


def step_stats(times: Sequence[float]) -> dict[str, float]:
  """Median, p10, p90, mean, min and max of step times in seconds."""
  t = np.asarray(times, np.float64)
  return {"median": float(np.median(t)), "p10": float(np.percentile(t, 10)),
          "p90": float(np.percentile(t, 90)), "mean": float(t.mean()),
          "min": float(t.min()), "max": float(t.max())}


def analytic_forward_flops(params: Mapping[str, Any], batch_size: int, seq_len: int) -> int:
  """Matmul FLOPs of one forward pass, counted from the param shapes.

  Every weight of two or more dimensions is taken to multiply each input vector once:
  2 * B * T * size for the cell's (input projection 2*B*T*D*G*H, recurrent 2*B*T*H*G*H),
  2 * B * size for the dense layers after pooling. The embedding is a gather (0); biases,
  gates and other elementwise work are not counted.
  """
  total = 0
  for name, sub in params.items():
    if name == "embedding":
      continue
    per_vector = sum(math.prod(p.shape) for p in jax.tree.leaves(sub) if len(p.shape) >= 2)
    per_step = name == "rnn" or name.startswith("rnn_")  # every recurrent layer (num_layers)
    total += 2 * batch_size * (seq_len if per_step else 1) * per_vector
  return total


def peak_memory() -> dict[str, Any]:
  """The device's peak bytes in use when it reports them, else the process's peak RSS."""
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:  # pylint: disable=broad-except
    stats = None
  if stats and "peak_bytes_in_use" in stats:
    return {"bytes": int(stats["peak_bytes_in_use"]), "source": "device_peak_bytes_in_use"}
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return {"bytes": int(rss) * (1 if sys.platform == "darwin" else 1024),
          "source": "process_peak_rss"}


def cpu_model() -> str:
  """/proc/cpuinfo's first 'model name', else what platform knows."""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def git_commit(path: str | os.PathLike = pathlib.Path(__file__).parent) -> dict[str, Any]:
  """The commit of the repository holding ``path``, and whether the tree has changes."""
  def git(*args: str) -> str | None:
    try:
      out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True,
                           timeout=10, check=True)
      return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
      return None
  commit = git("rev-parse", "HEAD")
  status = git("status", "--porcelain") if commit else None
  return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict[str, Any]:
  """Versions, backend, devices, CPU and the flags that change XLA's code."""
  device = jax.devices()[0]
  try:
    affinity = len(os.sched_getaffinity(0))
  except AttributeError:
    affinity = os.cpu_count()
  return {
      "jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
      "optax": optax.__version__, "numpy": np.__version__,
      "python": platform.python_version(), "platform": platform.platform(),
      "backend": jax.default_backend(), "device_kind": device.device_kind,
      "device_count": jax.device_count(), "cpu_model": cpu_model(),
      "cpu_count": os.cpu_count(), "cpu_affinity": affinity,
      "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "JAX_PLATFORMS", "OMP_NUM_THREADS",
                                              "CUDA_VISIBLE_DEVICES")},
      "git": git_commit(),
  }


def _xla_flops(compiled: Any) -> float | None:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops is not None and flops >= 0 else None


def _xla_memory(compiled: Any) -> dict[str, int] | None:
  try:
    mem = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if mem is None:
    return None
  names = ("argument", "output", "alias", "temp", "generated_code")
  return {f"{n}_bytes": int(getattr(mem, f"{n}_size_in_bytes", 0)) for n in names}


def _error_text(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return f"{type(e).__name__}: {text[0] if text else ''}"[:500]


def empty_record(case: Case, mode: str) -> dict[str, Any]:
  """A result row with every measurement null."""
  return {"cell": case.cell, "batch_size": case.batch_size, "seq_len": case.seq_len,
          "hidden_size": case.hidden_size, "mode": mode, "status": "error", "error": None,
          "embed_dim": None, "steps": 0, "warmup": 0, "compile_s": None,
          "first_step_s": None, "step_time_s": None, "step_times_s": None,
          "sequences_per_s": None, "tokens_per_s": None,
          "flops": {"xla": None, "analytic": None},
          "flop_per_s": {"xla": None, "analytic": None},
          "peak_memory": None, "xla_memory": None, "params": None, "notes": []}


@dataclasses.dataclass
class _Step:
  """A jitted function, its first arguments and how each call's output feeds the next."""
  fn: Any
  args: tuple[Any, ...]
  static: dict[str, Any]
  advance: Callable[[tuple[Any, ...], Any], tuple[Any, ...]]


def _steps_for(mode: str, state: train.TrainState, batch: tuple[jax.Array, ...],
               loss_fn: optim.LossFn) -> _Step:
  # train and optimizer donate their inputs: each mode gets its own buffers.
  state = jax.tree.map(lambda a: a.copy() if isinstance(a, jax.Array) else a, state)
  keep = lambda args, out: args

  def loss_of(params, x, y, w, key):
    logits = state.apply_fn({"params": params}, x, train=True, return_logits=True,
                            rngs={"dropout": key})
    return jnp.sum(loss_fn(logits, y) * w) / jnp.maximum(jnp.sum(w), 1.0)

  fb_args = (state.params, *batch, state.dropout_key)
  if mode == "train":
    return _Step(train.train_step, (state, batch, train.zero_metrics()), {"loss_fn": loss_fn},
                 lambda args, out: (out[0], args[1], out[1]))
  if mode == "forward":
    return _Step(jax.jit(loss_of), fb_args, {}, keep)
  if mode == "forward_backward":
    return _Step(jax.jit(jax.value_and_grad(loss_of)), fb_args, {}, keep)
  if mode == "optimizer":
    def update(params, opt_state, grads):
      updates, opt_state = state.tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state
    grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), state.params)
    return _Step(jax.jit(update, donate_argnums=(0, 1)), (state.params, state.opt_state, grads),
                 {}, lambda args, out: (out[0], out[1], args[2]))
  raise ValueError(f"unknown mode {mode!r}; choose from {list(MODES)}")


def time_step(step: _Step, steps: int, warmup: int) -> dict[str, Any]:
  """Compiles ``step`` ahead of time, calls it once, warms up, then times ``steps`` calls."""
  start = time.perf_counter()
  compiled = step.fn.lower(*step.args, **step.static).compile()
  compile_s = time.perf_counter() - start
  args = step.args
  times = []
  for i in range(1 + warmup + steps):
    start = time.perf_counter()
    out = jax.block_until_ready(step.fn(*args, **step.static))
    elapsed = time.perf_counter() - start
    args = step.advance(args, out)
    if i == 0:
      first_call_s = elapsed
    elif i > warmup:
      times.append(elapsed)
  return {"compile_s": compile_s, "first_step_s": compile_s + first_call_s,
          "step_times_s": times, "xla_flops": _xla_flops(compiled),
          "xla_memory": _xla_memory(compiled)}


def _measure(record: dict[str, Any], step: _Step, bench: ml_collections.ConfigDict,
             forward_flops: int) -> None:
  timing = time_step(step, bench.steps, bench.warmup)
  stats = step_stats(timing["step_times_s"])
  median = stats["median"]
  b, t = record["batch_size"], record["seq_len"]
  flops = {"xla": timing["xla_flops"],
           "analytic": float(_FORWARD_PASSES[record["mode"]] * forward_flops)}
  record.update(
      status="ok", steps=bench.steps, warmup=bench.warmup, compile_s=timing["compile_s"],
      first_step_s=timing["first_step_s"], step_time_s=stats,
      step_times_s=timing["step_times_s"], sequences_per_s=b / median,
      tokens_per_s=b * t / median, flops=flops,
      flop_per_s={k: (v / median if v is not None else None) for k, v in flops.items()},
      xla_memory=timing["xla_memory"], peak_memory=peak_memory())


def run_case(config: ml_collections.ConfigDict, bench: ml_collections.ConfigDict, case: Case,
             modes: Sequence[str], on_mode: Callable[[dict[str, Any]], None] | None = None
             ) -> list[dict[str, Any]]:
  """One record per mode; a failure is recorded in its record (``status='error'``)."""
  records = [empty_record(case, mode) for mode in modes]
  try:
    cfg = case_config(config, case)
    state = train.create_train_state(cfg, bench.num_classes, jax.random.key(bench.seed))
    loss_fn = optim.make_loss(cfg.train.loss)
    batch = tuple(jax.device_put(a) for a in synthetic_batch(
        case.batch_size, case.seq_len, cfg.data.num_words, bench.num_classes, bench.seed))
    forward_flops = analytic_forward_flops(state.params, case.batch_size, case.seq_len)
    params = train.param_counts(state.params)
  except Exception as e:  # pylint: disable=broad-except
    for record in records:
      record["error"] = _error_text(e)
      if on_mode:
        on_mode(record)
    return records
  for record in records:
    record.update(embed_dim=cfg.model.embed_dim, params=params)
    try:
      _measure(record, _steps_for(record["mode"], state, batch, loss_fn), bench, forward_flops)
    except Exception as e:  # pylint: disable=broad-except
      record.update(status="error", error=_error_text(e))
    if on_mode:
      on_mode(record)
  return records


def run_cases(config: ml_collections.ConfigDict,
              bench: ml_collections.ConfigDict | None = None,
              progress: TextIO | None = sys.stdout) -> dict[str, Any]:
  """Benchmarks every case and mode; returns the report (docs/benchmark.md's schema)."""
  bench = bench if bench is not None else default_bench_config()
  modes = parse_modes(bench.modes)
  grid = make_cases(config, bench)
  if bench.steps < 1 or bench.warmup < 0:
    raise ValueError(f"bench.steps must be >= 1 and bench.warmup >= 0, got "
                     f"{bench.steps} and {bench.warmup}")
  say = functools.partial(print, file=progress, flush=True) if progress else None
  env = environment()  # initialises the backend before the first progress line
  devices = parse_devices(bench.devices)
  results, scaling = [], ([] if devices else None)
  for i, case in enumerate(grid, 1):
    if say:
      say(f"[{i}/{len(grid)}] {case.label()}{f' on {devices} devices' if devices else ''} ...",
          end="")
    if devices:  # the scaling mode: the train step on each device count
      records = run_scaling(config, bench, case, devices)
      scaling += records
      if say:
        say("".join(f" {r['num_devices']}:{_short(r)}" for r in records), end="")
    else:
      results += run_case(config, bench, case, modes,
                          on_mode=(lambda r: say(f" {r['mode']} {_short(r)}", end=""))
                          if say else None)
    if say:
      say()
  return {
      "schema_version": SCHEMA_VERSION, "tool": "rnnbench",
      "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "command": list(sys.argv), "environment": env, "config": config.to_dict(),
      "bench": {**bench.to_dict(), "modes": modes if not devices else ["train"],
                "devices": devices},
      "results": results, "seq_len_fits": seq_len_fits(results), "scaling": scaling,
  }


def run_scaling(config: ml_collections.ConfigDict, bench: ml_collections.ConfigDict, case: Case,
                devices: Sequence[int]) -> list[dict[str, Any]]:
  """``sharding.measure_scaling`` of one case: a record per device count.

  Strong scaling (``case.batch_size`` is the global batch at every count) unless
  ``bench.weak_scaling`` (``case.batch_size`` per device). ``measure_scaling``'s record plus
  the case's ``hidden_size``, ``weak_scaling``, ``steps`` and ``warmup``.
  """
  records = sharding.measure_scaling(
      case_config(config, case), devices, steps=bench.steps, warmup=bench.warmup,
      num_classes=bench.num_classes, seed=bench.seed, per_device_batch=bench.weak_scaling)
  return [{**r, "hidden_size": case.hidden_size, "weak_scaling": bool(bench.weak_scaling),
           "steps": bench.steps, "warmup": bench.warmup} for r in records]


def seq_len_fits(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
  """Least-squares fits ``median step time = intercept + slope * T``, per (cell, B, H, mode).

  Only for groups with three or more sequence lengths. ``slope_s`` is the cost of one more
  time step for the whole batch; ``slope_s / B`` that per sequence. ``r2`` near 1: linear.
  """
  groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
  for r in results:
    if r["status"] == "ok":
      groups.setdefault((r["cell"], r["batch_size"], r["hidden_size"], r["mode"]), []).append(r)
  fits = []
  for (cell, b, h, mode), rs in groups.items():
    t = np.array([r["seq_len"] for r in rs], np.float64)
    y = np.array([r["step_time_s"]["median"] for r in rs], np.float64)
    if len(set(t)) < 3:
      continue
    slope, intercept = np.polyfit(t, y, 1)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - (intercept + slope * t)) ** 2)) / ss_tot if ss_tot else 1.0
    fits.append({"cell": cell, "batch_size": b, "hidden_size": h, "mode": mode,
                 "seq_lens": sorted(int(x) for x in t), "slope_s": float(slope),
                 "intercept_s": float(intercept), "r2": r2})
  return fits


def format_fits(fits: Sequence[Mapping[str, Any]]) -> str:
  lines = ["step time vs sequence length, least-squares line (median = intercept + slope * T):"]
  for f in fits:
    lines.append(f"  {f['cell']} b={f['batch_size']} h={f['hidden_size']} {f['mode']}: "
                 f"{1e3 * f['slope_s']:.4g} ms per time step "
                 f"({1e6 * f['slope_s'] / f['batch_size']:.3g} us per token) "
                 f"{'+' if f['intercept_s'] >= 0 else '-'} {1e3 * abs(f['intercept_s']):.3g} ms, "
                 f"R^2 {f['r2']:.4f} "
                 f"(T = {', '.join(map(str, f['seq_lens']))})")
  return "\n".join(lines)


def format_scaling_tables(report: Mapping[str, Any]) -> str:
  """The report's ``scaling`` records: a ``sharding.format_scaling`` table per case."""
  groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
  for r in report["scaling"]:
    groups.setdefault((r["cell"], r["seq_len"], r["hidden_size"], r["weak_scaling"]),
                      []).append(r)
  env = report.get("environment", {})
  lines = [f"{report.get('tool', '?')} data-parallel train step on {env.get('backend', '?')} "
           f"({env.get('device_count', '?')} x {env.get('device_kind', '?')}, "
           f"{env.get('cpu_model', '?')})"]
  for (cell, t, h, weak), rs in groups.items():
    b = rs[0]["batch_size"] // (rs[0]["num_devices"] if weak else 1)
    lines += ["", f"{cell} t={t} h={h}, " + (f"weak scaling: b={b} per device" if weak else
                                              f"strong scaling: b={b} in all"),
              sharding.format_scaling(rs)]
  return "\n".join(lines)


def _short(record: Mapping[str, Any]) -> str:
  if record["status"] != "ok":
    return "ERROR"
  return f"{1e3 * record['step_time_s']['median']:.3g}ms"


def _fmt(value: float | None, scale: float = 1.0, spec: str = ".3g") -> str:
  return "-" if value is None else format(value * scale, spec)


def format_table(report: Mapping[str, Any]) -> str:
  """The report's results as a fixed-width text table."""
  head = ("cell", "B", "T", "H", "mode", "compile_s", "median_ms", "p10_ms", "p90_ms",
          "seq/s", "tok/s", "GFLOP_xla", "GFLOP_mm", "GFLOP/s_xla", "GFLOP/s_mm", "peak_MB",
          "params")
  rows = []
  errors = []
  for r in report["results"]:
    case = (r["cell"], str(r["batch_size"]), str(r["seq_len"]), str(r["hidden_size"]),
            r["mode"])
    if r["status"] != "ok":
      rows.append(case + ("ERROR",) + ("",) * (len(head) - 6))
      errors.append(f"  {' '.join(case)}: {r['error']}")
      continue
    s, f, fs = r["step_time_s"], r["flops"], r["flop_per_s"]
    rows.append(case + (
        _fmt(r["compile_s"], 1, ".2f"), _fmt(s["median"], 1e3), _fmt(s["p10"], 1e3),
        _fmt(s["p90"], 1e3), _fmt(r["sequences_per_s"], 1, ".4g"),
        _fmt(r["tokens_per_s"], 1, ".4g"), _fmt(f["xla"], 1e-9), _fmt(f["analytic"], 1e-9),
        _fmt(fs["xla"], 1e-9), _fmt(fs["analytic"], 1e-9),
        _fmt(r["peak_memory"]["bytes"], 2**-20, ".0f"), f"{r['params']['total']:,}"))
  widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
  lines = ["  ".join(str(x).rjust(w) for x, w in zip(row, widths)) for row in [head, *rows]]
  env = report.get("environment", {})
  lines.insert(0, f"{report.get('tool', '?')} on {env.get('backend', '?')} "
                  f"({env.get('device_kind', '?')}, {env.get('cpu_model', '?')}); "
                  f"peak_MB: {_memory_source(report)}")
  if errors:
    lines += ["errors:", *errors]
  return "\n".join(lines)


def _memory_source(report: Mapping[str, Any]) -> str:
  for r in report["results"]:
    if r.get("peak_memory"):
      return r["peak_memory"]["source"]
  return "-"


def case_key(record: Mapping[str, Any], keys: Sequence[str] = _CASE_KEYS) -> tuple[Any, ...]:
  return tuple(record[k] for k in keys)


def compare_keys(section: str) -> tuple[str, ...]:
  return _SCALING_KEYS if section == "scaling" else _CASE_KEYS


def compare(report: Mapping[str, Any], old: Mapping[str, Any],
            section: str = "results") -> list[dict[str, Any]]:
  """Each record of ``report[section]`` against the same case in ``old[section]``.

  ``section`` "results" matches on (cell, B, T, H, mode), "scaling" on (cell, B, T, H,
  devices). ``ratio`` is new median / old median: below 1 the new run is faster.
  """
  keys = compare_keys(section)
  old_by_key = {case_key(r, keys): r for r in old.get(section) or []}
  rows = []
  for r in report[section] or []:
    o = old_by_key.get(case_key(r, keys))
    new_s = r["step_time_s"]["median"] if r["status"] == "ok" else None
    old_s = o["step_time_s"]["median"] if o and o.get("status") == "ok" else None
    rows.append({**{k: r[k] for k in keys}, "new_median_s": new_s,
                 "old_median_s": old_s,
                 "ratio": new_s / old_s if new_s and old_s else None,
                 "note": ("not in old run" if o is None else "error in old run"
                          if old_s is None else "error in new run" if new_s is None else "")})
  return rows


def compare_warnings(report: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
  """Differences between the two runs' setups that make the ratios apples to oranges."""
  out = []
  if old.get("schema_version") not in _COMPARABLE_SCHEMAS:
    out.append(f"old run has schema_version {old.get('schema_version')}, "
               f"this one {SCHEMA_VERSION}")
  if (old.get("scaling") is not None) != (report.get("scaling") is not None):
    out.append("one run is a --bench.devices run and the other is not: nothing to match")
  for key in ("backend", "device_kind", "cpu_model", "jax", "jaxlib"):
    a, b = old.get("environment", {}).get(key), report["environment"].get(key)
    if a != b:
      out.append(f"environment.{key}: old {a!r}, new {b!r}")
  old_model = old.get("config", {}).get("model", {})
  for key, value in report.get("config", {}).get("model", {}).items():
    if key not in ("cell", "hidden_size") and old_model.get(key, value) != value:
      out.append(f"config.model.{key}: old {old_model.get(key)!r}, new {value!r}")
  return out


def format_comparison(rows: Sequence[Mapping[str, Any]], warnings: Sequence[str] = (),
                      section: str = "results") -> str:
  keys = compare_keys(section)
  head = tuple(_HEAD[k] for k in keys) + ("old_ms", "new_ms", "new/old")
  body = [tuple(str(r[k]) for k in keys) + (
      _fmt(r["old_median_s"], 1e3), _fmt(r["new_median_s"], 1e3),
      _fmt(r["ratio"], 1, ".3f") + (f"  ({r['note']})" if r["note"] else "")) for r in rows]
  widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
  lines = ["comparison with the saved run (new/old < 1: faster now):"]
  lines += [f"  warning: {w}" for w in warnings]
  lines += ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in [head, *body]]
  return "\n".join(lines)


def require_matplotlib() -> None:
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise SystemExit("--bench.plot needs matplotlib: pip install 'rnnbench[plot]' "
                     "(or pip install matplotlib)") from None


def _pyplot() -> Any:
  require_matplotlib()
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _label(keys: Sequence[str], values: Sequence[Any]) -> str:
  return " ".join(str(v) if k == "cell" else f"{_SHORT[k]}={v}" for k, v in zip(keys, values))


def _groups(records: Sequence[Mapping[str, Any]], keys: Sequence[str], x_key: str
            ) -> list[tuple[tuple[Any, ...], list[Mapping[str, Any]]]]:
  groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
  for r in records:
    groups.setdefault(tuple(r[k] for k in keys), []).append(r)
  return [(k, sorted(rs, key=lambda r: r[x_key])) for k, rs in sorted(groups.items())]


def _log2_x(ax: Any, ticks: Sequence[int]) -> None:
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  ax.set_xscale("log", base=2)
  ax.set_xticks(sorted(ticks))
  ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _title(report: Mapping[str, Any], what: str) -> str:
  env = report.get("environment", {})
  device = env.get("cpu_model") if env.get("backend") == "cpu" else env.get("device_kind")
  return f"rnnbench {what} on {env.get('backend', '?')} ({device})"


def plot(report: Mapping[str, Any], path: str | os.PathLike) -> None:
  """The report as a PNG: ``plot_scaling`` for a devices run, else ``plot_grid``."""
  if report.get("scaling") is not None:
    plot_scaling(report, path)
  else:
    plot_grid(report, path)


def plot_grid(report: Mapping[str, Any], path: str | os.PathLike) -> None:
  """Step time vs sequence length (with its linear fit) and sequences/s vs batch size.

  One panel for what the grid varies: T (or neither), B, or both. Of the modes, ``train``.
  """
  plt = _pyplot()
  ok = [r for r in report["results"] if r["status"] == "ok"]
  mode = "train" if any(r["mode"] == "train" for r in ok) else (ok[0]["mode"] if ok else "")
  ok = [r for r in ok if r["mode"] == mode]
  by_seq = len({r["seq_len"] for r in ok}) > 1
  by_batch = len({r["batch_size"] for r in ok}) > 1
  panels = (["seq"] if by_seq or not by_batch else []) + (["batch"] if by_batch else [])
  fig, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(6.5 * len(panels), 4.8))
  axes = dict(zip(panels, axes[0]))

  if "seq" in axes:
    ax = axes["seq"]
    fits = {(f["cell"], f["batch_size"], f["hidden_size"]): f
            for f in seq_len_fits(ok)}
    keys = ("cell", "batch_size", "hidden_size")
    for key, rs in _groups(ok, keys, "seq_len"):
      t = [r["seq_len"] for r in rs]
      ms = {k: [1e3 * r["step_time_s"][k] for r in rs] for k in ("median", "p10", "p90")}
      fit = fits.get(key)
      label = _label(keys, key) + (
          f": {1e3 * fit['slope_s']:.3g} ms per step of T, R\u00b2={fit['r2']:.3f}"
          if fit else "")
      bars = ax.errorbar(t, ms["median"], marker="o", linestyle="none" if fit else "-",
                         capsize=3, label=label,
                         yerr=[np.subtract(ms["median"], ms["p10"]),
                               np.subtract(ms["p90"], ms["median"])])
      if fit:
        xs = np.array([0, max(t)])
        ax.plot(xs, 1e3 * (fit["intercept_s"] + fit["slope_s"] * xs), linestyle="--",
                color=bars.lines[0].get_color(), linewidth=1)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set(xlabel="sequence length T", ylabel=f"{mode} step time, ms (median; bars: p10-p90)",
           title="step time vs sequence length (dashed: least-squares line)")

  if "batch" in axes:
    ax = axes["batch"]
    keys = ("cell", "seq_len", "hidden_size")
    for key, rs in _groups(ok, keys, "batch_size"):
      b = [r["batch_size"] for r in rs]
      line, = ax.plot(b, [r["sequences_per_s"] for r in rs], marker="o",
                      label=_label(keys, key))
      ax.fill_between(b, [r["batch_size"] / r["step_time_s"]["p90"] for r in rs],
                      [r["batch_size"] / r["step_time_s"]["p10"] for r in rs],
                      alpha=0.2, color=line.get_color())
      for r in rs:
        ax.annotate(f"{r['sequences_per_s']:.0f}", (r["batch_size"], r["sequences_per_s"]),
                    textcoords="offset points", xytext=(0, 6), ha="center",
                    fontsize="x-small", color=line.get_color())
    _log2_x(ax, {r["batch_size"] for r in ok})
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set(xlabel="batch size B", ylabel=f"{mode} sequences/s (B / median; band: p10-p90)",
           title="throughput vs batch size")
  fig.suptitle(_title(report, f"{mode} step"), fontsize="medium")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_scaling(report: Mapping[str, Any], path: str | os.PathLike) -> None:
  """A devices run: step time and sequences/s vs device count, per case (dashed: linear)."""
  plt = _pyplot()
  ok = [r for r in report["scaling"] if r["status"] == "ok"]
  fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(13, 4.8))
  keys = ("cell", "batch_size", "seq_len", "hidden_size")
  for key, rs in _groups([{**r, "batch_size": r["batch_size"] // (
      r["num_devices"] if r["weak_scaling"] else 1)} for r in ok], keys, "num_devices"):
    n = [r["num_devices"] for r in rs]
    label = _label(keys, key) + (" per device" if rs[0]["weak_scaling"] else "")
    line, = ax_t.plot(n, [1e3 * r["step_time_s"]["median"] for r in rs], marker="o",
                      label=label)
    ax_t.fill_between(n, [1e3 * r["step_time_s"]["p10"] for r in rs],
                      [1e3 * r["step_time_s"]["p90"] for r in rs], alpha=0.2,
                      color=line.get_color())
    ax_s.plot(n, [r["sequences_per_s"] for r in rs], marker="o", color=line.get_color(),
              label=f"{label}: speedup {rs[-1]['speedup']:.2f} on {n[-1]}")
    ax_s.plot(n, [rs[0]["sequences_per_s"] * m / n[0] for m in n], linestyle="--",
              linewidth=1, color=line.get_color())
  weak = any(r["weak_scaling"] for r in ok)
  for ax in (ax_t, ax_s):
    _log2_x(ax, {r["num_devices"] for r in ok} or {1})
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
  ax_t.set_ylim(bottom=0)
  ax_s.set_yscale("log")
  ax_t.set(xlabel="devices", ylabel="train step time, ms (median, p10-p90)",
           title="step time vs device count")
  ax_s.set(xlabel="devices", ylabel="sequences/s (B / median)",
           title="throughput vs device count (dashed: linear scaling)")
  env = report.get("environment", {})
  fig.suptitle(_title(report, f"data-parallel train step, {'weak' if weak else 'strong'} "
                              f"scaling, {env.get('device_count', '?')} devices"),
               fontsize="medium")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def write_json(path: str | os.PathLike, obj: Any) -> None:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2) + "\n")
  os.replace(tmp, path)


def main(argv: Sequence[str], config: ml_collections.ConfigDict,
         bench: ml_collections.ConfigDict) -> dict[str, Any]:
  """Runs the benchmark, prints the table (and comparison), writes the JSON and the plot."""
  from absl import app  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if bench.plot:
    require_matplotlib()
  old = None
  if bench.compare:
    try:
      old = json.loads(pathlib.Path(bench.compare).read_text())
    except (OSError, ValueError) as e:
      raise app.UsageError(f"--bench.compare: cannot read {bench.compare}: {e}") from None
  try:
    validation.validate(config)
    report = run_cases(config, bench)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  section = "scaling" if report["scaling"] is not None else "results"
  print(format_scaling_tables(report) if section == "scaling" else format_table(report))
  if report["seq_len_fits"]:
    print(format_fits(report["seq_len_fits"]))
  if old is not None:
    rows = compare(report, old, section)
    warnings = compare_warnings(report, old)
    report["comparison"] = {"against": str(bench.compare), "section": section,
                            "warnings": warnings, "rows": rows}
    print(format_comparison(rows, warnings, section))
  if bench.json:
    write_json(bench.json, report)
    print(f"wrote {bench.json}")
  if bench.plot:
    plot(report, bench.plot)
    print(f"wrote {bench.plot}")
  return report


def _cli() -> None:
  """``python -m rnnbench.bench``: the flags are defined only when run as a program."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  from rnnbench import cli  # pylint: disable=g-import-not-at-top

  config = config_flags.DEFINE_config_file("config", None, "Model config file.",
                                           lock_config=True)
  try:  # DEFINE_config_dict applies the --bench.* overrides already
    bench = config_flags.DEFINE_config_dict("bench", default_bench_config(),
                                            "Benchmark settings.", lock_config=True)
  except cli.OVERRIDE_ERRORS as e:
    sys.exit(f"{sys.argv[0]}: bad --bench override: {cli.override_error(e, 'bench')}")
  flags.mark_flags_as_required(["config"])

  def run(argv: Sequence[str]) -> None:
    report = main(argv, config.value, bench.value)
    records = report["scaling"] if report["scaling"] is not None else report["results"]
    if records and all(r["status"] == "error" for r in records):
      sys.exit(f"error: all {len(records)} benchmark cases failed (see the errors above)")

  app.run(run, flags_parser=cli.parse_flags)


if __name__ == "__main__":
  _cli()
