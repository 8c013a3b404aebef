"""The benchmark's grid runner: cases (cells x batch sizes x sequence lengths x hidden sizes),
one jitted step per mode on the synthetic batch, and the report (docs/benchmark.md's schema).

Modes: ``train`` (``train.train_step``: forward, backward, optimizer update), ``forward``
(the training forward pass and loss, dropout on), ``forward_backward`` (``value_and_grad`` of
the loss) and ``optimizer`` (``tx.update`` + ``optax.apply_updates`` on fixed gradients).
``bench.devices`` times the data-parallel training step instead (``rnnbench.bench.scaling``).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import ml_collections
import optax

from rnnbench import cells
from rnnbench import optim
from rnnbench import pallas_rnn
from rnnbench import runinfo
from rnnbench import train
from rnnbench.bench import report as report_lib
from rnnbench.bench import scaling

MODES = ("train", "forward", "forward_backward", "optimizer")
# Analytic matmul FLOPs of each mode, in forward passes (backward ~ 2x forward).
_FORWARD_PASSES = {"train": 3, "forward": 1, "forward_backward": 3, "optimizer": 0}


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
  bench.tokens = "uniform"  # the synthetic ids: "uniform", or "zipf" (as text: runinfo.TOKENS)
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
  if bench.tokens not in runinfo.TOKENS:
    raise ValueError(f"--bench.tokens={bench.tokens!r}: choose one of "
                     + ", ".join(runinfo.TOKENS))
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
    return scaling.default_device_counts()
  counts = parse_list(value, int, "devices")
  available = jax.device_count()
  bad = [n for n in counts if not 0 < n <= available]
  if bad:
    hint = (f"; simulate more CPU devices with XLA_FLAGS=--xla_force_host_platform_device_count"
            f"={max(bad)}" if jax.default_backend() == "cpu" else "")
    raise ValueError(f"bench.devices: {bad} not in [1, {available}], the "
                     f"{jax.default_backend()} device count{hint}")
  return counts


def case_config(config: ml_collections.ConfigDict, case: Case) -> ml_collections.ConfigDict:
  """A copy of ``config`` with the case's cell, hidden size, sequence length and batch size."""
  config = copy.deepcopy(config)
  with config.unlocked():
    config.model.cell = case.cell
    config.model.hidden_size = case.hidden_size
    config.data.maxlen = case.seq_len
    config.train.batch_size = case.batch_size
  return config


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
  return runinfo.peak_rss()


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


def empty_record(case: Case, mode: str) -> dict[str, Any]:
  """A result row with every measurement null."""
  return {"cell": case.cell, "batch_size": case.batch_size, "seq_len": case.seq_len,
          "hidden_size": case.hidden_size, "mode": mode, "status": "error", "error": None,
          "embed_dim": None, "steps": 0, "warmup": 0, "compile_s": None,
          "first_step_s": None, "step_time_s": None, "step_times_s": None,
          "sequences_per_s": None, "tokens_per_s": None,
          "flops": {"xla": None, "analytic": None},
          "flop_per_s": {"xla": None, "analytic": None},
          "peak_memory": None, "xla_memory": None, "params": None, "impl": None, "notes": []}


def implementation(model: ml_collections.ConfigDict, dtype: str) -> str:
  """What runs the recurrence on the default backend: for LSTM / GRU the resolved
  ``model.impl`` (``rnnbench.pallas_rnn.resolve_impl``: "fused", "nn_scan", "cpu", "pallas"
  or "pallas_interpret"); for a cell with a linear recurrence its ``model.scan`` ("pallas" on a
  machine without a GPU is "pallas_interpret"); else "sequential"."""
  if model.cell in ("lstm", "gru"):
    cell = "gru_reset_after" if model.cell == "gru" and model.reset_after else model.cell
    return pallas_rnn.resolve_impl(model.impl, cell=cell, hidden_size=model.hidden_size,
                                   dtype=dtype,
                                   recurrent_activation=model.recurrent_activation)
  if getattr(cells.get(model.cell), "supports_parallel", False):
    if model.scan == "pallas" and jax.default_backend() not in ("gpu", "cuda"):
      return "pallas_interpret"
    return model.scan
  return "sequential"


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
    return optim.batch_loss(loss_fn(logits, y), w)  # as train's step

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
  stats = runinfo.step_stats(timing["step_times_s"])
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
    batch = tuple(jax.device_put(a) for a in runinfo.synthetic_batch(
        case.batch_size, case.seq_len, cfg.data.num_words, bench.num_classes, bench.seed,
        tokens=bench.tokens))
    forward_flops = analytic_forward_flops(state.params, case.batch_size, case.seq_len)
    params = train.param_counts(state.params)
  except Exception as e:  # pylint: disable=broad-except
    for record in records:
      record["error"] = runinfo.error_text(e)
      if on_mode:
        on_mode(record)
    return records
  for record in records:
    record.update(embed_dim=cfg.model.embed_dim, params=params,
                  impl=implementation(cfg.model, cfg.train.dtype))
    try:
      _measure(record, _steps_for(record["mode"], state, batch, loss_fn), bench, forward_flops)
    except Exception as e:  # pylint: disable=broad-except
      record.update(status="error", error=runinfo.error_text(e))
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
  env = runinfo.jax_environment()  # initialises the backend before the first progress line
  devices = parse_devices(bench.devices)
  results, scaled = [], ([] if devices else None)
  for i, case in enumerate(grid, 1):
    if say:
      say(f"[{i}/{len(grid)}] {case.label()}{f' on {devices} devices' if devices else ''} ...",
          end="")
    if devices:  # the scaling mode: the train step on each device count
      records = run_scaling(config, bench, case, devices)
      scaled += records
      if say:
        say("".join(f" {r['num_devices']}:{report_lib.short(r)}" for r in records), end="")
    else:
      results += run_case(config, bench, case, modes,
                          on_mode=(lambda r: say(f" {r['mode']} {report_lib.short(r)}", end=""))
                          if say else None)
    if say:
      say()
  return {
      "schema_version": report_lib.SCHEMA_VERSION, "tool": "rnnbench",
      "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "command": list(sys.argv), "environment": env, "config": config.to_dict(),
      "bench": {**bench.to_dict(), "modes": modes if not devices else ["train"],
                "devices": devices},
      "results": results, "seq_len_fits": report_lib.seq_len_fits(results), "scaling": scaled,
  }


def run_scaling(config: ml_collections.ConfigDict, bench: ml_collections.ConfigDict, case: Case,
                devices: Sequence[int]) -> list[dict[str, Any]]:
  """``scaling.measure_scaling`` of one case: a record per device count.

  Strong scaling (``case.batch_size`` is the global batch at every count) unless
  ``bench.weak_scaling`` (``case.batch_size`` per device). ``measure_scaling``'s record plus
  the case's ``hidden_size``, ``weak_scaling``, ``steps`` and ``warmup``.
  """
  records = scaling.measure_scaling(
      case_config(config, case), devices, steps=bench.steps, warmup=bench.warmup,
      num_classes=bench.num_classes, seed=bench.seed, per_device_batch=bench.weak_scaling)
  return [{**r, "hidden_size": case.hidden_size, "weak_scaling": bool(bench.weak_scaling),
           "steps": bench.steps, "warmup": bench.warmup} for r in records]
