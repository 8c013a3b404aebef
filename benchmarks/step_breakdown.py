"""Where the train step's time goes: each part of the LSTM/GRU step timed on its own.

At the notebook's shapes (batch 32, 100 steps, embedding 20000 x 128, 50 units, Dense 50,
20 classes, Keras Adam, Keras 2 hard sigmoid, ``--impl``: default "auto", what ``run.py``
runs: the C++ kernels of ``rnnbench.cpu_rnn`` on a CPU host), each part is its own
AOT-compiled jitted function on fixed inputs (the values the previous part computes on
the first batch; fixed random cotangents):

1. embedding: the gather (B, T) -> (B, T, E), and its backward, the dense (V, E) gradient
   (zero fill + scatter-add), as autodiff of the gather gives it;
2. input projection: ``x W`` for every step, (T B, E) x (E, G H), and its backward
   (``x^T dZ`` and ``dZ W^T``), as the step's first layer runs it
   (``pallas_rnn.input_projection``: with the C++ kernels, each distinct token's row once);
3. recurrence: the kernel ``--impl`` runs (``rnnbench.cpu_rnn``'s or ``rnnbench.fused_rnn``'s),
   on the precomputed projection, forward, and
   forward (saving its slabs) + backward; also the whole cell layer (projection +
   recurrence), what ``nn.LSTM`` / ``nn.GRU`` is in PyTorch;
4. head: max-pool, dropout, Dense(relu), dropout, Dense, loss; forward + backward;
5. optimizer: the Keras Adam update (``state.tx``) over the embedding, the rest, and all;
6. the model's loss, its ``value_and_grad``, and ``train.train_step`` as
   ``benchmarks/speed_leads.py`` runs it (donated, cycling through the batches).

With PyTorch installed, the same parts in PyTorch eager on CPU (``step_breakdown_torch``)
run in the same process, interleaved with rnnbench's: every function ``--steps`` times in
turn, for ``--rounds`` rounds (``speed_leads.interleaved``)::

    python benchmarks/step_breakdown.py --json results/step_breakdown_cpu.json \\
        --markdown results/step_breakdown_cpu.md
    python benchmarks/step_breakdown.py --cells lstm --rounds 5 --no_torch
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # rnnbench, uninstalled
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import side_by_side  # pylint: disable=wrong-import-position
import speed_leads  # pylint: disable=wrong-import-position
from rnnbench import activations  # pylint: disable=wrong-import-position
from rnnbench import cells  # pylint: disable=wrong-import-position
from rnnbench import cpu_rnn  # pylint: disable=wrong-import-position
from rnnbench import fused_rnn  # pylint: disable=wrong-import-position
from rnnbench import models  # pylint: disable=wrong-import-position
from rnnbench import optim  # pylint: disable=wrong-import-position
from rnnbench import pallas_rnn  # pylint: disable=wrong-import-position
from rnnbench import runinfo  # pylint: disable=wrong-import-position
from rnnbench import scan as scan_lib  # pylint: disable=wrong-import-position
from rnnbench import train  # pylint: disable=wrong-import-position

NUM_CLASSES = 20
# part -> what it runs; the table's rows, in order.
PARTS = {
    "embedding_fwd": "1. embedding gather (B, T) -> (B, T, E)",
    "embedding_bwd": "1. its dense (V, E) gradient: zero fill + scatter-add",
    "projection_fwd": "2. input projection x W, (T B, E) x (E, G H) (C++: once per distinct token)",
    "projection_bwd": "2. its backward: x^T dZ and dZ W^T",
    "recurrence_fwd": "3. the recurrent kernel, forward",
    "recurrence_fwd_bwd": "3. the kernel, forward (saving slabs) + backward",
    "rnn_layer_fwd": "2+3. the cell layer (projection + loop); torch: nn.LSTM/nn.GRU",
    "rnn_layer_fwd_bwd": "2+3. the cell layer, forward + backward",
    "head_fwd_bwd": "4. max-pool, dropout, Dense(relu), dropout, Dense, loss: fwd + bwd",
    "optimizer_embedding": "5. Adam update of the embedding table",
    "optimizer_rest": "5. Adam update of every other param",
    "optimizer_all": "5. Adam update of all params",
    "model_fwd": "the model's training loss (dropout on)",
    "model_fwd_bwd": "the loss and its gradients",
    "train_step": "6. the whole train step",
    "train_step_no_recurrence": "6'. the step with a recurrence that costs nothing "
                                "(h_t = tanh of xw_t's first gate block): the floor of "
                                "any recurrence kernel",
}
# The parts whose medians make "the sum of parts 1-5", per tool (PyTorch's nn.LSTM does the
# projection and the loop in one call).
SUMMED = {"rnnbench": ("embedding_fwd", "embedding_bwd", "projection_fwd", "projection_bwd",
                       "recurrence_fwd_bwd", "head_fwd_bwd", "optimizer_all"),
          "torch": ("embedding_fwd", "embedding_bwd", "rnn_layer_fwd_bwd", "head_fwd_bwd",
                    "optimizer_all")}
SHAPES = ("batch_size", "seq_len", "num_words", "embed_dim", "hidden_size", "dense_size")
NOTEBOOK_SHAPES = {"batch_size": 32, "seq_len": 100, "num_words": 20000}


def make_config(cell: str, shapes: dict[str, int], impl: str = "auto"):
  """The notebook's config for ``cell`` with ``model.impl=impl`` and the non-zero ``shapes``."""
  config = speed_leads.make_config(cell, speed_leads.LEADS["fused"])
  config.model.impl = impl
  fields = {"batch_size": config.train, "seq_len": config.data, "num_words": config.data,
            "embed_dim": config.model, "hidden_size": config.model, "dense_size": config.model}
  for name, value in shapes.items():
    if value:
      fields[name]["maxlen" if name == "seq_len" else name] = value
  return config


def config_shapes(config) -> dict[str, int]:
  return {"batch_size": config.train.batch_size, "seq_len": config.data.maxlen,
          "num_words": config.data.num_words, "embed_dim": config.model.embed_dim,
          "hidden_size": config.model.hidden_size, "dense_size": config.model.dense_size}


def make_batches(data: str, shapes: dict[str, int], count: int = 8) -> tuple[list, str]:
  """``count`` batches (x, y, w) and the data they are: ``speed_leads.make_batches`` at the
  notebook's shapes, else synthetic tokens (``speed_leads.synthetic_tokens``)."""
  archive = os.environ.get("RNNBENCH_20NEWS_ARCHIVE") or str(speed_leads.DEFAULT_ARCHIVE)
  notebook = all(shapes[k] == v for k, v in NOTEBOOK_SHAPES.items())
  if data == "real" and notebook and pathlib.Path(archive).is_file():
    return speed_leads.make_batches("real", count), "real"
  if data == "real":
    why = "no 20news archive at " + archive if notebook else "shapes are not the notebook's"
    print(f"{why}; using synthetic tokens", file=sys.stderr)
  rng = np.random.default_rng(0)
  b, t, v = shapes["batch_size"], shapes["seq_len"], shapes["num_words"]
  return [(speed_leads.synthetic_tokens(rng, b, t, v),
           rng.integers(0, NUM_CLASSES, b).astype(np.int32), np.ones((b,), np.float32))
          for _ in range(count)], "synthetic"


# ----------------------------------------------------------------------------------------
# rnnbench's parts.


def recurrence(model_config) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
  """``(xw (T, B, G H), bias, U (H, G H)) -> hs (T, B, H)``: the kernel the cell runs
  (``rnnbench.cpu_rnn``'s where ``model.impl`` resolves to "cpu", else ``fused_rnn``'s)."""
  gate = activations.get_activation(model_config.recurrent_activation)
  unroll = scan_lib.resolve_unroll(model_config.unroll)
  cell = "gru_reset_after" if model_config.cell == "gru" and model_config.reset_after \
      else model_config.cell
  kernels = cpu_rnn if pallas_rnn.resolve_impl(
      model_config.impl, cell=cell, recurrent_activation=model_config.recurrent_activation
  ) == "cpu" else fused_rnn
  if model_config.cell == "lstm":
    return lambda xw, b, u: kernels.lstm(gate, xw, b, u, unroll)
  if model_config.reset_after:
    return lambda xw, b, u: fused_rnn.gru_reset_after(gate, xw, b[0], u, b[1], unroll)
  return lambda xw, b, u: kernels.gru(gate, xw, b, u, unroll)


def _head_logits(model: models.Classifier, hs: jax.Array, train_mode: bool) -> jax.Array:
  """``Classifier.logits`` after the RNN: (B, T, H) -> (B, C) (a ``method`` for ``apply``)."""
  x = model._pool(hs, None)  # pylint: disable=protected-access
  x = model.dropout_1(x, deterministic=not train_mode)
  x = nn.relu(model.dense_1(x))
  x = model.dropout_2(x, deterministic=not train_mode)
  return model.dense_2(x)


def adam_update(tx: optax.GradientTransformation, params, opt_state, grads):
  """One optimizer update: ``(params, opt_state)`` after ``grads``."""
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def part_functions(config, state: train.TrainState, batch, key: jax.Array
                   ) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...]]]:
  """``{part: (function, fixed inputs)}`` for parts 1-5 (``PARTS``' first twelve).

  The inputs are what the previous part computes on ``batch`` with ``state.params``; the
  cotangents are fixed normal draws; the optimizer's gradients are 1e-3 everywhere.
  ``key`` is the dropout key (as ``speed_leads.build``'s loss uses it).
  """
  model = models.create_model(config, NUM_CLASSES)
  cell = cells.create(config.model)
  loss_fn = optim.make_loss(config.train.loss)
  rec = recurrence(config.model)
  x, y, w = (jnp.asarray(a) for a in batch)
  params = state.params
  table, rnn = params["embedding"]["embeddings"], params["rnn"]
  head = {k: params[k] for k in ("dense_1", "dense_2")}
  rng = np.random.default_rng(1)
  normal = lambda like: jnp.asarray(rng.standard_normal(like.shape).astype(np.float32))

  gather = lambda table, x: jnp.take(table, x, axis=0)  # models.Embedding
  impl = pallas_rnn.cell_mode(config.model.cell, config.model.impl, config.model.hidden_size,
                              table.dtype)
  gate = activations.get_activation(config.model.recurrent_activation)
  # the first layer's projection and the layer, given the embedding's tokens as in the step
  # (the reset_after=True GRU does not use them)
  ids = None if config.model.cell == "gru" and config.model.reset_after else x
  project = lambda emb, kernel: pallas_rnn.input_projection(impl, gate, emb, kernel, ids)
  layer = lambda emb, rnn: cell.apply({"params": rnn}, emb, ids)

  def head_loss(head, hs):
    logits = model.apply({"params": head}, hs, True, method=_head_logits,
                         rngs={"dropout": key})
    return optim.batch_loss(loss_fn(logits, y), w)

  emb = gather(table, x)
  xw = project(emb, rnn["kernel"])
  hs = rec(xw, rnn["bias"], rnn["recurrent_kernel"])
  d_emb, d_xw, d_hs = normal(emb), normal(xw), normal(hs)
  rest = {k: v for k, v in params.items() if k != "embedding"}
  grads = lambda tree: jax.tree.map(lambda p: jnp.full_like(p, 1e-3), tree)
  update = lambda p, s, g: adam_update(state.tx, p, s, g)
  adam_args = lambda tree: (tree, state.tx.init(tree), grads(tree))
  vjp = lambda fn, primals, cotangent: jax.vjp(fn, *primals)[1](cotangent)
  return {
      "embedding_fwd": (gather, (table, x)),
      "embedding_bwd": (lambda t, x, g: vjp(lambda t: gather(t, x), (t,), g)[0],
                        (table, x, d_emb)),
      "projection_fwd": (project, (emb, rnn["kernel"])),
      "projection_bwd": (lambda e, k, g: vjp(project, (e, k), g), (emb, rnn["kernel"], d_xw)),
      "recurrence_fwd": (rec, (xw, rnn["bias"], rnn["recurrent_kernel"])),
      "recurrence_fwd_bwd": (lambda xw, b, u, g: vjp(rec, (xw, b, u), g),
                             (xw, rnn["bias"], rnn["recurrent_kernel"], d_hs)),
      "rnn_layer_fwd": (layer, (emb, rnn)),
      "rnn_layer_fwd_bwd": (lambda e, r, g: vjp(layer, (e, r), g),
                            (emb, rnn, scan_lib.batch_major(d_hs))),
      "head_fwd_bwd": (jax.value_and_grad(head_loss, argnums=(0, 1)),
                       (head, scan_lib.batch_major(hs))),
      "optimizer_embedding": (update, adam_args({"embedding": params["embedding"]})),
      "optimizer_rest": (update, adam_args(rest)),
      "optimizer_all": (update, adam_args(params)),
  }


def aot(fn: Callable[..., Any], args: tuple[Any, ...]) -> Callable[[], Any]:
  """``fn`` jitted and compiled ahead of time for ``args``; called on them."""
  compiled = jax.jit(fn).lower(*args).compile()
  return lambda: compiled(*args)


@contextlib.contextmanager
def free_recurrence():
  """While active, the LSTM and GRU recurrences (``fused_rnn``'s, ``cpu_rnn``'s and
  ``pallas_rnn``'s, whichever the cell calls) are ``h_t = tanh(xw_t[:, :H] + b[:H])``: no
  loop, and the input projection's full (T, B, G H) gradient (zero but for the first block)
  still flows back, so the step keeps every other cost (the first layer's projection as
  the step runs it)."""
  modules = (fused_rnn, cpu_rnn, pallas_rnn)
  saved = [(m, m.lstm, m.gru) for m in modules]

  def free(gate, xw, b, u, *rest):
    del gate, rest
    units = u.shape[0]
    return jnp.tanh(xw[..., :units] + b[:units])

  for m in modules:
    m.lstm = m.gru = free
  try:
    yield
  finally:
    for m, lstm, gru in saved:
      m.lstm, m.gru = lstm, gru


def rnnbench_parts(config, batches) -> dict[str, Callable[[], Any]]:
  """Every part of ``PARTS`` as a zero-argument call (the step cycles through ``batches``)."""
  whole, _ = speed_leads.build(config.model.cell, speed_leads.LEADS["fused"], batches,
                               config=config)
  with free_recurrence():  # build() compiles, so the patch is what gets compiled
    floor, _ = speed_leads.build(config.model.cell, speed_leads.LEADS["fused"], batches,
                                 config=config)
  state = train.create_train_state(config, NUM_CLASSES, jax.random.PRNGKey(0))
  fns = {name: aot(fn, args) for name, (fn, args) in
         part_functions(config, state, batches[0], jax.random.key(1)).items()}
  fns.update(model_fwd=whole["fwd"], model_fwd_bwd=whole["fwd_bwd"], train_step=whole["step"],
             train_step_no_recurrence=floor["step"])
  return fns


# ----------------------------------------------------------------------------------------
# The report.


def _fmt(r: dict[str, float] | None) -> str:
  if r is None:
    return "-"
  if "q1_ms" not in r:
    return f"{r['median_ms']:.3f}"
  return f"{r['median_ms']:.3f} [{r['q1_ms']:.3f}-{r['q3_ms']:.3f}]"


def summarize(results: dict[tuple[str, str, str], dict[str, float]], cells_: list[str],
              tools: list[str]) -> dict[str, Any]:
  """Per cell: every part's timings per tool and rnnbench / torch, and the sums of parts."""
  out = {}
  for cell in cells_:
    parts = {}
    for part, what in PARTS.items():
      row = {"what": what, **{tool: results.get((cell, tool, part)) for tool in tools}}
      t = row.get("torch")
      row["ratio"] = row["rnnbench"]["median_ms"] / t["median_ms"] if t else None
      parts[part] = row
    sums = {tool: {"median_ms": sum(parts[p][tool]["median_ms"] for p in SUMMED[tool]),
                   "parts": list(SUMMED[tool])} for tool in tools}
    t = sums.get("torch")
    sums["ratio"] = sums["rnnbench"]["median_ms"] / t["median_ms"] if t else None
    out[cell] = {"parts": parts, "sum_of_parts": sums}
  return out


def markdown(report: dict[str, Any]) -> str:
  """The report as a page: a table per cell, what the rows mean, the machine, the command."""
  env, s = report["environment"], report["settings"]
  shapes = ", ".join(f"{k} {v}" for k, v in s["shapes"].items())
  lines = ["# Where the train step's time goes (CPU)", "",
           f"Each part is its own AOT-compiled function on fixed inputs ({shapes}; "
           f"{s['data']} batches), timed interleaved in one process: {s['rounds']} rounds of "
           f"{s['steps']} calls. ms per call, median [quartiles]; ratio = rnnbench / torch "
           "(below 1: rnnbench is faster).", ""]
  for cell, c in report["cells"].items():
    lines += [f"## {cell}", "",
              "| part | what it runs | rnnbench ms | torch ms | rnnbench / torch |",
              "|---|---|--:|--:|--:|"]
    for part, row in c["parts"].items():
      ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
      lines.append(f"| {part} | {row['what']} | {_fmt(row['rnnbench'])} | "
                   f"{_fmt(row.get('torch'))} | {ratio} |")
    sums = c["sum_of_parts"]
    ratio = "-" if sums["ratio"] is None else f"{sums['ratio']:.2f}"
    lines += [f"| sum_of_parts | medians of rnnbench: {', '.join(SUMMED['rnnbench'])}; torch: "
              f"{', '.join(SUMMED['torch'])} | {_fmt(sums['rnnbench'])} | "
              f"{_fmt(sums.get('torch'))} | {ratio} |", ""]
    floor, torch_step = c["parts"]["train_step_no_recurrence"]["rnnbench"], \
        c["parts"]["train_step"].get("torch")
    if floor and torch_step:
      lines += [f"With a recurrence that cost nothing, rnnbench's {cell} step would take "
                f"{floor['median_ms']:.2f} ms, {floor['median_ms'] / torch_step['median_ms']:.2f}"
                f" x torch's whole train step ({torch_step['median_ms']:.2f} ms) in this run.", ""]
  lines += ["## What the rows mean", "", *[f"- {n}" for n in report["notes"]], ""]
  git, load = env.get("git") or {}, report["load_average"]
  versions = ", ".join(f"{k} {env[k]}" for k in ("jax", "jaxlib", "flax", "optax", "torch")
                       if env.get(k))
  lines += ["## Machine and command", "",
            f"- CPU: {env.get('cpu_model')}, {env.get('cpu_count')} cores "
            f"({env.get('cpu_affinity')} usable); {env.get('platform')}, "
            f"Python {env.get('python')}",
            f"- Load average (1, 5, 15 min) at the start: {load['start']}, at the end: "
            f"{load['end']}",
            f"- Finished {report['created_utc']}, {report['wall_s']:.0f} s, git "
            f"{(git.get('commit') or '?')[:12]}"
            f"{' (uncommitted changes)' if git.get('dirty') else ''}",
            f"- Versions: {versions}", "",
            "```sh", "python " + " ".join(report["command"]), "```", ""]
  return "\n".join(lines)


NOTES = [
    "rnnbench's train_step rows are what run.py runs: on one "
    "CPU device with Keras' Adam the step updates the embedding table in one pass from the "
    "gradient of the rows the batch gathered (rnnbench.embedding_adam), so it has no dense "
    "table gradient; model_fwd_bwd (the dense gradients), embedding_bwd and the optimizer "
    "rows are the dense path it replaces.",
    "The parts do not add up to the train step exactly: inside the step XLA fuses across "
    "the parts' borders (e.g. the embedding gradient into Adam), reuses donated buffers "
    "(the parts are not donated, so each allocates its outputs) and adds the dropout key, "
    "the metric sums and the step count; each part also pays one call's dispatch.",
    "rnnbench's optimizer rows run on gradients of 1e-3 everywhere, as torch's; the step "
    "computes its own.",
    "PyTorch's nn.LSTM / nn.GRU does the input projection and the loop in one call: its "
    "projection rows are the same matmuls in torch (torch.mm), its rnn_layer rows are the "
    "module, and the recurrence rows have no torch counterpart.",
    "torch's embedding_bwd is aten.embedding_dense_backward, what nn.Embedding's backward "
    "runs; torch's parts use torch.autograd.grad, which leaves .grad alone.",
    "Both runtimes share the process and its cores: PyTorch's OpenMP threads may spin for "
    "a while after a torch call, slowing the next few JAX calls; each function runs its "
    "--steps calls in a row, so this falls on a round's first call.",
    "On a loaded machine (load average near or above the core count) PyTorch's OpenMP "
    "regions stall whenever one of their threads is descheduled, by up to hundreds of "
    "times; its rows are then meaningless. Measure on an idle machine, or compare with "
    "--torch_threads 1.",
]


def main(argv: list[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
  parser.add_argument("--cells", default="lstm,gru")
  parser.add_argument("--impl", default="auto",
                      help="config.model.impl of rnnbench's parts (auto: what run.py runs)")
  parser.add_argument("--rounds", type=int, default=10)
  parser.add_argument("--steps", type=int, default=10, help="calls of each part per round")
  parser.add_argument("--data", default="real", choices=("real", "synthetic"),
                      help="real: 20news batches ($RNNBENCH_20NEWS_ARCHIVE or ../shared/data)")
  parser.add_argument("--no_torch", action="store_true", help="rnnbench's parts only")
  parser.add_argument("--torch_threads", type=int, default=0,
                      help="torch.set_num_threads; 0: PyTorch's default (as torch_bench.py)")
  for name in SHAPES:
    parser.add_argument(f"--{name}", type=int, default=0, help="0: the notebook's")
  parser.add_argument("--json", default="")
  parser.add_argument("--markdown", default="")
  args = parser.parse_args(argv)
  cells_ = [c.strip() for c in args.cells.split(",") if c.strip()]
  if not cells_ or set(cells_) - {"lstm", "gru"}:
    parser.error(f"--cells {args.cells!r}: give lstm, gru or both (lstm,gru)")
  if args.rounds < 1 or args.steps < 1 or args.torch_threads < 0 or any(
      getattr(args, n) < 0 for n in SHAPES):
    parser.error("--rounds and --steps must be >= 1, --torch_threads and the shapes >= 0")
  use_torch = not args.no_torch
  if use_torch:
    try:
      import step_breakdown_torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      print(f"no torch rows: {e}", file=sys.stderr)
      use_torch = False

  start, load_start = time.perf_counter(), side_by_side.load_average()
  configs = {c: make_config(c, {n: getattr(args, n) for n in SHAPES}, args.impl)
             for c in cells_}
  shapes = config_shapes(configs[cells_[0]])
  batches, data = make_batches(args.data, shapes)
  tools = ["rnnbench"] + (["torch"] if use_torch else [])
  fns, notes = {}, list(NOTES)
  for cell in cells_:
    built = {"rnnbench": rnnbench_parts(configs[cell], batches)}
    if use_torch:
      built["torch"], torch_notes = step_breakdown_torch.parts(configs[cell], batches,
                                                                args.torch_threads)
      notes += [n for n in torch_notes if n not in notes]
    for part in PARTS:  # each part's tools side by side in time
      for tool in tools:
        if part in built[tool]:
          fns[(cell, tool, part)] = built[tool][part]
  results = speed_leads.interleaved(fns, args.rounds, args.steps, {})

  env = runinfo.jax_environment()
  if use_torch:
    env.update(step_breakdown_torch.environment())
  report = {
      "tool": "step_breakdown",
      "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": ["benchmarks/step_breakdown.py", *(sys.argv[1:] if argv is None else argv)],
      "settings": {"cells": cells_, "rounds": args.rounds, "steps": args.steps, "data": data,
                   "shapes": shapes, "tools": tools, "json": args.json},
      "environment": env,
      "load_average": {"start": load_start, "end": side_by_side.load_average()},
      "wall_s": time.perf_counter() - start,
      "parts": dict(PARTS), "summed": {t: list(SUMMED[t]) for t in tools},
      "cells": summarize(results, cells_, tools), "notes": notes}
  for cell, c in report["cells"].items():
    print(f"{cell}:")
    for part, row in c["parts"].items():
      print(f"  {part:20} " + "  ".join(f"{t} {_fmt(row.get(t)):>24}" for t in tools))
    print(f"  {'sum_of_parts':20} " + "  ".join(
        f"{t} {_fmt(c['sum_of_parts'][t]):>24}" for t in tools))
  if args.json:
    runinfo.write_json(args.json, report)
  if args.markdown:
    pathlib.Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
    runinfo.write_text(args.markdown, markdown(report))
  return report


if __name__ == "__main__":
  main()
