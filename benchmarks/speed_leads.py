"""Measures each speed lead against the baseline, in ONE process, interleaved.

The notebook's shapes (batch 32, 100 steps, embedding 128, 50 units, 20000 words, Keras Adam,
hard sigmoid, GRU reset_after=False) on real 20 Newsgroups batches (``--data real``, the
default, when the archive is there) or synthetic ones with the same word statistics.

For every cell and lead: the training forward (loss, dropout on), forward + backward
(``value_and_grad``), the optimizer (``tx.update`` + ``apply_updates`` on fixed gradients)
and the full ``train.train_step`` (AOT-compiled, donated, cycling through the batches, as
``train_and_evaluate`` runs it), plus the step's trace + compile seconds. ``--keras`` adds
Keras 3 (JAX backend) ``model.fit`` on the same batches, per step, as a reference row.

A shared machine is noisy, so every measured function runs ``--steps`` times per round, all
of them in turn, for ``--rounds`` rounds; the table shows the medians (ms) and the ratio to
the first lead of the same cell and phase. ``--markdown`` writes the page (the ratio with its
range from the quartiles as the headline, the ms, the machine, the command); ``--from_json``
renders it from a saved JSON without measuring::

    python benchmarks/speed_leads.py --json /tmp/speed_leads.json --markdown /tmp/leads.md
    python benchmarks/speed_leads.py --cells gru --leads baseline,fused --rounds 30 --keras

Leads (``--leads``; the first is the reference of the ratios):

* ``baseline``: the committed cells (``nn.scan`` + autodiff, Keras 2's hard sigmoid as
  ``jnp.clip``, whose autodiff derivative divides), unroll 1;
* ``hard_sigmoid_jvp``: the same with ``rnnbench.activations.hard_sigmoid``'s custom JVP
  (the same derivative, written with selects);
* ``fused``: the custom-VJP kernels of ``rnnbench.fused_rnn`` (the default now);
* ``fused_unroll2`` / ``fused_unroll4``: with the loops unrolled;
* ``fused_1thread_eigen``: compiled with ``xla_cpu_multi_thread_eigen=False``;
* ``sparse_embedding_adam``: fused, plus the embedding's Adam update applied to the rows
  of the batch only (gradient of the gathered rows, deduplicated, then a dense
  decay-only pass and a scatter of the updated rows; exact). Measured and dropped: see
  docs/speed.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import itertools
import json
import os
import pathlib
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from rnnbench.configs import default  # pylint: disable=wrong-import-position
from rnnbench import activations  # pylint: disable=wrong-import-position
from rnnbench import optim  # pylint: disable=wrong-import-position
from rnnbench import input_pipeline  # pylint: disable=wrong-import-position
from rnnbench import models  # pylint: disable=wrong-import-position
from rnnbench import runinfo  # pylint: disable=wrong-import-position
from rnnbench import train  # pylint: disable=wrong-import-position

PHASES = ("fwd", "fwd_bwd", "opt", "step")
DEFAULT_ARCHIVE = pathlib.Path(__file__).resolve().parents[2] / "shared/data/20news-bydate.tar.gz"


@dataclasses.dataclass(frozen=True)
class Lead:
  """A variant: config.model overrides, XLA compile options and how the step is built."""
  name: str
  model: dict[str, Any] = dataclasses.field(default_factory=dict)
  compiler_options: dict[str, Any] = dataclasses.field(default_factory=dict)
  clip_hard_sigmoid: bool = False   # the committed hard sigmoid: plain jnp.clip autodiff
  sparse_embedding_adam: bool = False
  rows_projection: bool = True      # the first layer projects each distinct token's row once


LEADS = {lead.name: lead for lead in [
    Lead("baseline", {"impl": "nn_scan", "unroll": 1}, clip_hard_sigmoid=True),
    Lead("hard_sigmoid_jvp", {"impl": "nn_scan", "unroll": 1}),
    Lead("fused", {"impl": "fused", "unroll": 1}),
    Lead("fused_unroll2", {"impl": "fused", "unroll": 2}),
    Lead("fused_unroll4", {"impl": "fused", "unroll": 4}),
    Lead("fused_1thread_eigen", {"impl": "fused", "unroll": 1},
         {"xla_cpu_multi_thread_eigen": False}),
    Lead("sparse_embedding_adam", {"impl": "fused", "unroll": 1}, sparse_embedding_adam=True),
    # rnnbench.cpu_rnn (C++, XLA FFI): the recurrences, then also the input projection
    Lead("cpu_kernels", {"impl": "cpu", "unroll": 1}, rows_projection=False),
    Lead("rows_projection", {"impl": "cpu", "unroll": 1}),
]}
DEFAULT_LEADS = ("baseline,hard_sigmoid_jvp,fused,fused_unroll2,sparse_embedding_adam,"
                 "cpu_kernels,rows_projection")


def _clip_hard_sigmoid(x):
  return jnp.clip(0.2 * x + 0.5, 0.0, 1.0)


@contextlib.contextmanager
def traced_as(lead: Lead):
  """While tracing ``lead``: the committed hard sigmoid if it asks for it; the first layer
  not given the embedding's tokens (``models.takes_ids``) unless ``rows_projection``."""
  table = activations._ACTIVATIONS  # pylint: disable=protected-access
  saved, saved_takes_ids = dict(table), models.takes_ids
  if lead.clip_hard_sigmoid:
    table["hard_sigmoid"] = _clip_hard_sigmoid
  if not lead.rows_projection:
    models.takes_ids = lambda layer: False
  try:
    yield
  finally:
    table.update(saved)
    models.takes_ids = saved_takes_ids


def make_config(cell: str, lead: Lead):
  config = default.get_config()
  config.model.cell = cell
  for key, value in lead.model.items():
    config.model[key] = value
  return config


# ----------------------------------------------------------------------------------------
# Batches.


def synthetic_tokens(rng: np.random.Generator, batch: int = 32, maxlen: int = 100,
                     num_words: int = 20000) -> np.ndarray:
  """Word ids with p(rank) ~ 1 / rank (``runinfo.zipf_tokens``: ~1250 distinct per 3200, as
  20 Newsgroups batches), some rows pre-padded."""
  x = runinfo.zipf_tokens(rng, (batch, maxlen), num_words)
  x[: batch // 4, : maxlen // 3] = 0  # some pre-padding
  return x.astype(np.int32)


def real_tokens(archive: str, count: int, batch: int = 32) -> np.ndarray:
  """The first ``count`` training batches of 20 Newsgroups, as ``train_and_evaluate`` makes them."""
  config = default.get_config()
  config.data.archive = archive
  data = input_pipeline.prepare(config)
  order = input_pipeline.epoch_order(config.seed, 1, len(data.train))
  return np.stack([x for x, _, _ in
                   itertools.islice(input_pipeline.batches(data.train, batch, order), count)])


def make_batches(data: str, count: int = 8) -> list[tuple[np.ndarray, ...]]:
  """``count`` batches (x, y, w): 'real' tokens from the 20news archive, or 'synthetic'."""
  rng = np.random.default_rng(0)
  archive = os.environ.get("RNNBENCH_20NEWS_ARCHIVE") or str(DEFAULT_ARCHIVE)
  if data == "real" and pathlib.Path(archive).is_file():
    tokens = real_tokens(archive, count)
  else:
    if data == "real":
      print(f"no 20news archive at {archive}; using synthetic tokens", file=sys.stderr)
    tokens = np.stack([synthetic_tokens(rng) for _ in range(count)])
  return [(x, rng.integers(0, 20, len(x)).astype(np.int32), np.ones((len(x),), np.float32))
          for x in tokens]


# ----------------------------------------------------------------------------------------
# The sparse-rows embedding update (lead sparse_embedding_adam, measured and dropped).


def _logits_from_embedded(model, emb, train_mode):
  """``Classifier.logits`` from the gathered embedding rows (a ``method`` for ``apply``)."""
  x = jnp.max(model.rnn(emb), axis=1)
  x = model.dropout_1(x, deterministic=not train_mode)
  x = jax.nn.relu(model.dense_1(x))
  x = model.dropout_2(x, deterministic=not train_mode)
  return model.dense_2(x)


def _adam_rows(table, mu, nu, count, tokens, row_grads, b1=0.9, b2=0.999, eps=1e-7, lr=1e-3):
  """Keras' Adam on ``table`` whose gradient is ``row_grads`` at the rows ``tokens``.

  Equal to the dense update: rows without gradient only decay (m *= b1, v *= b2, p moves
  by the decayed m); the touched rows, deduplicated and summed, are updated in full.
  """
  n = tokens.shape[0]
  slot = jnp.zeros(table.shape[:1], jnp.int32).at[tokens].set(jnp.arange(n))
  rep = slot[tokens]                     # one position per distinct token
  grads = jax.ops.segment_sum(row_grads, rep, num_segments=n)
  rows = jnp.where(rep == jnp.arange(n), tokens, table.shape[0])  # others: dropped
  t = (count + 1).astype(jnp.float32)
  lr_t = lr * jnp.sqrt(1.0 - jnp.power(jnp.float32(b2), t)) / (1.0 - jnp.power(jnp.float32(b1), t))
  step = lambda p, m, v: p + (-lr_t * m / (jnp.sqrt(v) + eps))
  get = lambda a: a.at[rows].get(mode="fill", fill_value=0)
  m_rows = b1 * get(mu) + (1 - b1) * grads
  v_rows = b2 * get(nu) + (1 - b2) * jnp.square(grads)
  p_rows = step(get(table), m_rows, v_rows)
  mu1, nu1 = b1 * mu, b2 * nu
  put = lambda a, r: a.at[rows].set(r, mode="drop")
  return put(step(table, mu1, nu1), p_rows), put(mu1, m_rows), put(nu1, v_rows)


def sparse_train_step(state, batch, metrics, loss_fn):
  """``train.train_step`` with the embedding's update on its touched rows only."""
  x, y, w = batch
  dropout_key = jax.random.fold_in(state.dropout_key, state.step)
  table = state.params["embedding"]["embeddings"]
  rest = {k: v for k, v in state.params.items() if k != "embedding"}

  def loss_of(rest, emb):
    logits = state.apply_fn({"params": {**rest, "embedding": {"embeddings": table}}}, emb,
                            True, method=_logits_from_embedded, rngs={"dropout": dropout_key})
    losses = loss_fn(logits, y)
    return jnp.sum(losses * w) / jnp.maximum(jnp.sum(w), 1.0), (losses, logits)

  emb = jnp.take(table, x, axis=0)
  (grads, d_emb), (losses, logits) = jax.grad(loss_of, argnums=(0, 1), has_aux=True)(rest, emb)
  opt = state.opt_state
  drop = lambda tree: {k: v for k, v in tree.items() if k != "embedding"}
  updates, rest_opt = state.tx.update(grads, type(opt)(opt.count, drop(opt.mu), drop(opt.nu)),
                                      rest)
  new_table, mu, nu = _adam_rows(table, opt.mu["embedding"]["embeddings"],
                                 opt.nu["embedding"]["embeddings"], opt.count,
                                 x.reshape(-1), d_emb.reshape(-1, d_emb.shape[-1]))
  params = {**optax.apply_updates(rest, updates), "embedding": {"embeddings": new_table}}
  opt_state = type(opt)(rest_opt.count, {**rest_opt.mu, "embedding": {"embeddings": mu}},
                        {**rest_opt.nu, "embedding": {"embeddings": nu}})
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  accumulate = train._accumulate  # pylint: disable=protected-access
  return new_state, accumulate(metrics, losses, logits, y, w, state.step)


# ----------------------------------------------------------------------------------------
# Measuring.


def build(cell: str, lead: Lead, batches, config=None
          ) -> tuple[dict[str, Callable[[], Any]], dict[str, float]]:
  """The measured functions of one cell and lead, and the train step's trace/compile seconds.

  The step cycles through ``batches``; the other phases use the first. ``config``: the
  full config to build from (default ``make_config(cell, lead)``, the notebook's shapes).
  """
  jax.clear_caches()  # leads that differ only in what is traced must not share a trace
  config = make_config(cell, lead) if config is None else config
  loss_fn = optim.make_loss(config.train.loss)
  state = train.create_train_state(config, 20, jax.random.PRNGKey(0))
  batches = [tuple(jnp.asarray(a) for a in b) for b in batches]
  batch = batches[0]
  key = jax.random.key(1)
  opts = lead.compiler_options

  def loss(params, x, y, w):
    logits = state.apply_fn({"params": params}, x, train=True, return_logits=True,
                            rngs={"dropout": key})
    return jnp.sum(loss_fn(logits, y) * w) / jnp.sum(w)

  def update(params, opt_state, grads):
    updates, opt_state = state.tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  step_fn = train.train_step
  if lead.sparse_embedding_adam:
    step_fn = jax.jit(sparse_train_step, static_argnames="loss_fn", donate_argnums=(0, 2))
  with traced_as(lead):
    compile_ = lambda fn, *args: jax.jit(fn).lower(*args).compile(compiler_options=opts)
    fwd = compile_(loss, state.params, *batch)
    fwd_bwd = compile_(jax.value_and_grad(loss), state.params, *batch)
    grads = fwd_bwd(state.params, *batch)[1]
    opt = compile_(update, state.params, state.opt_state, grads)
    start = time.perf_counter()
    lowered = step_fn.lower(state, batch, train.zero_metrics(), loss_fn=loss_fn)
    traced = time.perf_counter()
    step = lowered.compile(compiler_options=opts)
    done = time.perf_counter()
  carry = [jax.tree.map(jnp.copy, state), train.zero_metrics(), itertools.cycle(batches)]

  def run_step():
    carry[0], carry[1] = step(carry[0], next(carry[2]), carry[1])
    return carry[1]

  params, opt_state = state.params, state.opt_state
  fns = {"fwd": lambda: fwd(params, *batch), "fwd_bwd": lambda: fwd_bwd(params, *batch),
         "opt": lambda: opt(params, opt_state, grads), "step": run_step}
  if lead.sparse_embedding_adam:  # its optimizer phase: the split update on fixed gradients
    fns["opt"] = None
  return fns, {"trace_s": traced - start, "compile_s": done - traced}


def keras_fit_step(cell: str, batches) -> Callable[[], Any]:
  """Keras 3 (JAX backend) ``model.fit`` over ``batches``; returns one epoch's run."""
  os.environ.setdefault("KERAS_BACKEND", "jax")
  import keras  # pylint: disable=g-import-not-at-top
  from rnnbench import keras_compat  # pylint: disable=g-import-not-at-top
  config = make_config(cell, LEADS["fused"])
  model = keras_compat.to_keras(config, jax.tree.map(
      np.asarray, train.create_train_state(config, 20, jax.random.PRNGKey(0)).params))
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy())
  x = np.concatenate([b[0] for b in batches])
  y = np.concatenate([b[1] for b in batches])
  model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)  # compile
  return functools.partial(model.fit, x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)


def interleaved(fns: dict[Any, Callable[[], Any]], rounds: int, steps: int,
                per_call: dict[Any, int]) -> dict[Any, dict[str, float]]:
  """Median and quartiles (ms per step) of every function, ``steps`` calls per round in turn.

  ``per_call[name]``: how many steps one call of ``name`` runs (a whole ``fit``: several).
  """
  times = {name: [] for name in fns}
  for fn in fns.values():
    jax.block_until_ready(fn())
  for _ in range(rounds):
    for name, fn in fns.items():
      calls = max(1, steps // per_call.get(name, 1))
      for _ in range(calls):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times[name].append(1e3 * (time.perf_counter() - start) / per_call.get(name, 1))
  out = {}
  for name, ts in times.items():
    q1, med, q3 = np.percentile(ts, [25, 50, 75])
    out[name] = {"median_ms": float(med), "q1_ms": float(q1), "q3_ms": float(q3), "n": len(ts)}
  return out


def ratio_range(r: dict[str, float], base: dict[str, float]) -> tuple[float, float]:
  """The lowest and highest ratio the two interquartile spans allow: (q1 / base q3,
  q3 / base q1)."""
  return r["q1_ms"] / base["q3_ms"], r["q3_ms"] / base["q1_ms"]


def markdown(report: dict[str, Any]) -> str:
  """The JSON report as a page: per cell, every lead's ratios to the first lead, the ms."""
  ref = report["ratio_to"]
  lines = ["# Speed leads against the baseline, one process, interleaved (CPU)", "",
           f"The notebook's shapes on {report['data']} batches; every function "
           f"{report['steps_per_round']} calls per round in turn, {report['rounds']} rounds. "
           f"ratio = lead / `{ref}` of the same cell and phase, of the medians (below 1: "
           "faster than it); its range is the lowest and highest the two interquartile "
           "spans allow (q1 / the reference's q3, q3 / its q1). ms: median [q1, q3] per "
           "step. Phases: `fwd` (the training forward), `fwd_bwd` (`value_and_grad`), `opt` "
           "(the optimizer on fixed gradients), `step` (the whole `train.train_step`).", ""]
  cells = list(dict.fromkeys(r["cell"] for r in report["results"]))
  for cell in cells:
    rows = [r for r in report["results"] if r["cell"] == cell]
    base = next((r for r in rows if r["lead"] == ref), {})
    phases = [p for p in PHASES if any(p in r for r in rows)]
    lines += [f"## {cell}", "",
              "| lead | step ratio [range] | step ms | "
              + " | ".join(f"{p} ratio" for p in phases if p != "step")
              + " | trace + compile s |",
              "|---|--:|--:|" + "--:|" * len([p for p in phases if p != "step"]) + "--:|"]
    for r in rows:
      step, b = r.get("step"), base.get("step")
      if step and b:
        lo, hi = ratio_range(step, b)
        head = (f"**{step['ratio']:.2f}** [{lo:.2f}, {hi:.2f}] | {step['median_ms']:.2f} "
                f"[{step['q1_ms']:.2f}, {step['q3_ms']:.2f}]")
      else:
        head = "- | -"
      cols = [f"{r[p]['ratio']:.2f}" if r.get(p) and r[p].get("ratio") is not None else "-"
              for p in phases if p != "step"]
      compile_s = (f"{r['step_trace_s']:.2f} + {r['step_compile_s']:.2f}"
                   if "step_trace_s" in r else "-")
      lines.append(f"| {r['lead']} | {head} | " + " | ".join(cols) + f" | {compile_s} |")
    lines.append("")
  env = report["environment"]
  lines += runinfo.machine_markdown(env, load=env.get("loadavg"),
                                    command=report.get("command"),
                                    created=report.get("created_utc"))
  return "\n".join(lines)


def main(argv=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
  parser.add_argument("--cells", default="lstm,gru")
  parser.add_argument("--leads", default=DEFAULT_LEADS, help=f"of {','.join(LEADS)}")
  parser.add_argument("--phases", default=",".join(PHASES))
  parser.add_argument("--rounds", type=int, default=15)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--data", default="real", choices=("real", "synthetic"),
                      help="real: 20news batches ($RNNBENCH_20NEWS_ARCHIVE or ../shared/data)")
  parser.add_argument("--keras", action="store_true", help="add Keras 3 (JAX) model.fit")
  parser.add_argument("--json", default="")
  parser.add_argument("--markdown", default="", help="write the results page here")
  parser.add_argument("--from_json", default="",
                      help="render --markdown from this saved JSON; measures nothing")
  args = parser.parse_args(argv)
  saved = runinfo.render_saved(parser, args.from_json, args.markdown, markdown)
  if saved is not None:
    return saved
  cells = args.cells.split(",")
  leads = [LEADS[name] for name in args.leads.split(",")]
  phases = args.phases.split(",")

  batches = make_batches(args.data)
  fns, compile_s, per_call = {}, {}, {}
  for cell in cells:
    for lead in leads:
      built, compile_s[(cell, lead.name)] = build(cell, lead, batches)
      for phase in phases:
        if built[phase] is not None:
          fns[(cell, lead.name, phase)] = built[phase]
    if args.keras:
      fns[(cell, "keras_jax_fit", "step")] = keras_fit_step(cell, batches)
      per_call[(cell, "keras_jax_fit", "step")] = len(batches)
  results = interleaved(fns, args.rounds, args.steps, per_call)

  rows = []
  names = [lead.name for lead in leads] + (["keras_jax_fit"] if args.keras else [])
  print(f"{'cell':5} {'lead':22} " + " ".join(f"{p:>15}" for p in phases)
        + "  trace+compile_s")
  for cell in cells:
    for name in names:
      row = {"cell": cell, "lead": name}
      if name in LEADS:
        lead = LEADS[name]
        row.update(model=lead.model, compiler_options=lead.compiler_options,
                   **{f"step_{k}": v for k, v in compile_s[(cell, name)].items()})
      cols = []
      for phase in phases:
        r = results.get((cell, name, phase))
        base = results.get((cell, leads[0].name, phase))
        if r is None:
          cols.append("-")
          continue
        ratio = r["median_ms"] / base["median_ms"] if base else None
        row[phase] = {**r, "ratio": ratio}
        cols.append(f"{r['median_ms']:6.2f} ({ratio:4.2f}x)")
      rows.append(row)
      timing = compile_s.get((cell, name))
      print(f"{cell:5} {name:22} " + " ".join(f"{c:>15}" for c in cols)
            + (f"  {timing['trace_s']:.2f}+{timing['compile_s']:.2f}" if timing else ""))
  report = {"rounds": args.rounds, "steps_per_round": args.steps, "ratio_to": leads[0].name,
            "data": args.data,
            "command": " ".join(["python benchmarks/speed_leads.py",
                                 *(sys.argv[1:] if argv is None else argv)]),
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "environment": {**runinfo.jax_environment(), "jax": jax.__version__,
                            "backend": jax.default_backend(),
                            "python": platform.python_version(), "cpu_count": os.cpu_count(),
                            "cpu": platform.processor() or platform.machine(),
                            "loadavg": os.getloadavg()},
            "results": rows}
  for path, text in ((args.json, lambda: json.dumps(report, indent=2) + "\n"),
                     (args.markdown, lambda: markdown(report))):
    if path:
      runinfo.write_text(path, text())
  return report


if __name__ == "__main__":
  main()
