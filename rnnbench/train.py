"""Training and evaluation: the notebook's ``model.fit(..., validation_split=0.1)``, in JAX.

``train_and_evaluate(config, workdir)`` is the whole run, read top to bottom: ``_set_up`` (the
data from ``rnnbench.input_pipeline``, the state, and a fresh start or a resume), ``_run_epoch``
(the jitted pure ``train_step`` over one epoch, with the signal and checkpoint handling of
``_after_step``), ``_end_epoch`` (validation, Keras' line, the epoch checkpoint) and
``_finish_run`` (the test subset, params and summary). The metric sums live on the device
(``zero_metrics``); mixed precision is ``optim.mixed_precision``; what is printed and logged is
``rnnbench.metric_log``; the files are ``rnnbench.workdir``'s.

Training is data-parallel over a mesh of ``train.num_devices`` devices (0: all; see
``rnnbench.sharding`` and docs/distributed.md), on one host or, with ``config.dist``, several.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import serialization
from flax.training import train_state

from rnnbench import checkpoint
from rnnbench import embedding_adam
from rnnbench import input_pipeline
from rnnbench import metric_log
from rnnbench import models
from rnnbench import optim
from rnnbench import runinfo
from rnnbench import sharding
from rnnbench import validation
from rnnbench import workdir as workdir_lib


class TrainState(train_state.TrainState):
  """Params, optimizer state and step; ``dropout_key`` is folded with the step each update."""
  dropout_key: jax.Array


# The input pipeline moved to rnnbench.input_pipeline; these names stay for existing callers.
Arrays, PreparedData = input_pipeline.Arrays, input_pipeline.PreparedData
split_at, prepare_data = input_pipeline.split_at, input_pipeline.prepare
data_digest, batches = input_pipeline.data_digest, input_pipeline.batches
num_batches, epoch_order = input_pipeline.num_batches, input_pipeline.epoch_order
COMPUTE_DTYPES, mixed_precision = optim.COMPUTE_DTYPES, optim.mixed_precision


def create_train_state(config: ml_collections.ConfigDict, num_classes: int,
                       rng: jax.Array, total_steps: int = 0) -> TrainState:
  """Fresh params and optimizer state; ``total_steps``: the run's updates, for a schedule."""
  model = models.create_model(config, num_classes=num_classes)
  init_key, dropout_key = jax.random.split(rng)
  dummy = jnp.zeros((1, config.data.maxlen), jnp.int32)
  # One compiled program: run op by op, the init's forward pass compiles dozens of small ones.
  init = jax.jit(functools.partial(model.init, train=False))
  params = init({"params": init_key}, dummy)["params"]
  return TrainState.create(apply_fn=optim.mixed_precision(model.apply, config.train.dtype),
                           params=params, tx=optim.make_optimizer(config.train, total_steps),
                           dropout_key=dropout_key)


def create_sharded_state(config: ml_collections.ConfigDict, num_classes: int, rng: jax.Array,
                         mesh: jax.sharding.Mesh, total_steps: int = 0) -> tuple[TrainState, Any]:
  """``create_train_state`` placed on ``mesh``, and its shardings (``sharding.state_shardings``)."""
  state = create_train_state(config, num_classes, rng, total_steps)
  shardings = sharding.state_shardings(state, mesh, config.train.get("shard_embedding", False))
  return jax.device_put(state, shardings), shardings


# --- Metric sums, kept on the device between steps -------------------------------------------

def zero_metrics() -> dict[str, jax.Array]:
  """Device-side sums: loss, correct predictions, examples, and the first non-finite step."""
  return {"loss": jnp.zeros((), jnp.float32), "correct": jnp.zeros((), jnp.float32),
          "count": jnp.zeros((), jnp.float32), "bad_step": jnp.full((), -1, jnp.int32)}


def _accumulate(metrics, losses, logits, y, w, step):
  loss_sum = jnp.sum(losses * w)
  bad = ~jnp.isfinite(loss_sum)
  return {
      "loss": metrics["loss"] + loss_sum,
      "correct": metrics["correct"] + jnp.sum((jnp.argmax(logits, -1) == y) * w),
      "count": metrics["count"] + jnp.sum(w),
      "bad_step": jnp.where((metrics["bad_step"] < 0) & bad, step, metrics["bad_step"]),
  }


def _finish(metrics) -> dict[str, float]:
  """The sums as means: ``loss``, ``accuracy`` and the example ``count``."""
  m = jax.device_get(metrics)
  count = max(float(m["count"]), 1.0)
  return {"loss": float(m["loss"]) / count, "accuracy": float(m["correct"]) / count,
          "count": int(m["count"])}


# --- The steps ---------------------------------------------------------------------------------

def _train_step(state: TrainState, batch, metrics, loss_fn):
  """One optimizer update on a (possibly padded) batch; returns the new state and metrics.

  Lowered for cpu where ``embedding_adam.applies``, the embedding table is updated in one
  pass from its gathered rows' gradient (``_rows_step``); elsewhere, and lowered for any other
  platform (a CUDA export made on a CPU host), the dense update (``_dense_step``).
  """
  dense = functools.partial(_dense_step, loss_fn=loss_fn)
  if not embedding_adam.applies(state):
    return dense(state, batch, metrics)
  rows = functools.partial(_rows_step, loss_fn=loss_fn)
  return jax.lax.platform_dependent(state, batch, metrics, cpu=rows, default=dense)


def _loss_of(state: TrainState, batch, loss_fn):
  """``params -> (loss, (losses, logits))`` of the step's batch, dropout on."""
  x, y, w = batch
  dropout_key = jax.random.fold_in(state.dropout_key, state.step)

  def loss_of(params):
    logits = state.apply_fn({"params": params}, x, train=True, return_logits=True,
                            rngs={"dropout": dropout_key})
    losses = loss_fn(logits, y)
    return optim.batch_loss(losses, w), (losses, logits)

  return loss_of


def _dense_step(state: TrainState, batch, metrics, loss_fn):
  _, y, w = batch
  grads, (losses, logits) = jax.grad(_loss_of(state, batch, loss_fn), has_aux=True)(state.params)
  return state.apply_gradients(grads=grads), _accumulate(metrics, losses, logits, y, w, state.step)


def _rows_step(state: TrainState, batch, metrics, loss_fn):
  """``_dense_step`` with the gradient taken at the gathered embedding rows, not the table."""
  x, y, w = batch
  loss_of = _loss_of(state, batch, loss_fn)
  rows = jnp.zeros(x.shape + state.params["embedding"]["embeddings"].shape[-1:], jnp.float32)

  def loss_of_rows(params, rows):
    tokens = []
    with embedding_adam.gathered_rows(rows, tokens):
      loss, aux = loss_of(params)
    if len(tokens) != 1:
      raise ValueError(f"the model looked up its embedding {len(tokens)} times, not once")
    return loss, (*aux, tokens[0])

  (grads, rows_grad), (losses, logits, tokens) = jax.grad(
      loss_of_rows, argnums=(0, 1), has_aux=True)(state.params, rows)
  return (embedding_adam.apply_gradients(state, grads, tokens, rows_grad),
          _accumulate(metrics, losses, logits, y, w, state.step))


def _eval_step(params, batch, metrics, apply_fn, loss_fn):
  x, y, w = batch
  logits = apply_fn({"params": params}, x, train=False, return_logits=True)
  return _accumulate(metrics, loss_fn(logits, y), logits, y, w, 0)


# Jitted for wherever the arguments are: one device, or a mesh (shardings propagate).
train_step = jax.jit(_train_step, static_argnames="loss_fn", donate_argnums=(0, 2))
eval_step = jax.jit(_eval_step, static_argnames=("apply_fn", "loss_fn"), donate_argnums=(2,))


def sharded_train_step(mesh: jax.sharding.Mesh, state_sharding: Any, loss_fn):
  """``train_step`` jitted for ``mesh``: ``(state, batch, metrics) -> (state, metrics)``.

  The batch is split along ``'data'``, the state keeps ``state_sharding`` (in and out, so it
  can be donated) and the metric sums are replicated; XLA all-reduces the gradients.
  """
  data, rep = sharding.batch_sharding(mesh), sharding.replicated(mesh)
  return jax.jit(functools.partial(_train_step, loss_fn=loss_fn),
                 in_shardings=(state_sharding, (data, data, data), rep),
                 out_shardings=(state_sharding, rep), donate_argnums=(0, 2))


def evaluate(apply_fn: Callable[..., jax.Array], params, arrays: Arrays, batch_size: int,
             loss_fn, *, mesh: jax.sharding.Mesh | None = None) -> dict[str, float]:
  """Mean loss and accuracy of ``apply_fn`` with ``params`` over every example of ``arrays`` once.

  ``apply_fn(variables, x (B, T), train=False, return_logits=True) -> (B, C)``, a model's
  ``apply``. With ``mesh`` (``params`` placed on it) each batch is padded to split across its
  devices.
  """
  metrics = zero_metrics()
  batch_size = min(batch_size, max(len(arrays), 1))  # never pad beyond the split
  if mesh is None:
    for batch in batches(arrays, batch_size):
      metrics = eval_step(params, batch, metrics, apply_fn=apply_fn, loss_fn=loss_fn)
    return _finish(metrics)
  metrics = sharding.replicate(metrics, mesh)
  for i, batch in enumerate(batches(arrays, batch_size,
                                    pad_to=sharding.padded_size(batch_size, mesh)), 1):
    metrics = eval_step(params, sharding.put_batch(batch, mesh), metrics, apply_fn=apply_fn,
                        loss_fn=loss_fn)
    _pace(metrics, i)
  return _finish(metrics)


# Steps (or eval batches) the host may dispatch ahead of the devices before it waits.
# Unbounded, the host runs ahead until XLA:CPU's per-device limit of 32 computations in flight:
# the launches then block on that limit while holding the client thread-pool threads (max(cores,
# devices) of them) that the queued steps' collectives need, one per device, all at once. With
# more simulated devices than cores that leaves too few threads for all devices to reach the
# gradient all-reduce, and XLA aborts after 40 s ("only 5 of them arrived"). docs/runs.md.
MAX_STEPS_IN_FLIGHT = 4


def _pace(metrics, i: int) -> None:
  """Waits for the step that produced ``metrics`` every ``MAX_STEPS_IN_FLIGHT`` dispatches."""
  if MAX_STEPS_IN_FLIGHT and i % MAX_STEPS_IN_FLIGHT == 0:
    jax.block_until_ready(metrics)


# --- Errors and signals ------------------------------------------------------------------------

class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite."""


class TrainingInterrupted(Exception):
  """SIGINT/SIGTERM stopped training; a checkpoint was saved and a rerun resumes from it."""


def _check_finite(metrics, epoch: int, steps_per_epoch: int) -> None:
  bad = int(jax.device_get(metrics["bad_step"]))
  if bad >= 0:
    raise NonFiniteLossError(
        f"the training loss became NaN or infinite at epoch {epoch}, step "
        f"{bad - (epoch - 1) * steps_per_epoch + 1} of {steps_per_epoch} (global step {bad + 1}); "
        "training stopped. Lower config.train.learning_rate or check the inputs.")


class _StopOnSignal:
  """Turns SIGINT/SIGTERM into a flag checked between steps (main thread only)."""

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.received: int | None = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.received = signum

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def param_counts(params) -> dict[str, int]:
  """Parameters per top-level layer, and their ``total``."""
  counts = {name: sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(sub))
            for name, sub in params.items()}
  return {**counts, "total": sum(counts.values())}


environment = runinfo.jax_environment  # summary.json's "environment"


# --- The run -----------------------------------------------------------------------------------

def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike,
                       *, step_hook: Callable[[int], None] | None = None) -> dict:
  """Trains ``config`` and writes its config, metrics, tokenizer and params into ``workdir``.

  Checkpoints go to ``workdir/checkpoints`` at the end of every epoch (and every
  ``train.checkpoint_every_steps`` steps); rerunning on the same workdir resumes from the newest
  one, and a finished run is not trained again. SIGINT/SIGTERM save a checkpoint and raise
  ``TrainingInterrupted``. ``step_hook(global_step)`` is called after every step.
  Training runs data-parallel on ``train.num_devices`` devices (0: all); with ``config.dist``
  every process of a multi-host run calls this, and only process 0 writes files.
  Returns the summary (also written as ``summary.json``).
  """
  validation.validate(config)  # before any data is read or file written
  multi_process = sharding.initialize(config.get("dist"))
  main = sharding.is_main_process()
  # Only process 0 locks: the others share the workdir with it.
  with workdir_lib.open_workdir(workdir, config.train.overwrite, exclusive=main) as path:
    run = _set_up(config, path, step_hook, multi_process, main)
    try:
      finished = run.finished_summary()
      if finished is not None:
        run.say(f"{path} holds a finished run; pass --config.train.overwrite=True to train it "
                "again")
        return finished
      run.announce()
      with _StopOnSignal() as stop, run.log:
        for epoch in range(run.position["epoch"], config.train.num_epochs + 1):
          _end_epoch(run, epoch, *_run_epoch(run, epoch, stop))
      return _finish_run(run)
    finally:
      run.ckpt.close()  # waits for orbax's writes and stops its threads before the exit


@dataclasses.dataclass
class _Run:
  """What one call of ``train_and_evaluate`` works with; ``state`` advances step by step."""
  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  step_hook: Callable[[int], None] | None
  multi_process: bool
  main: bool
  data: input_pipeline.PreparedData
  load_s: float
  loss_fn: optim.LossFn
  mesh: jax.sharding.Mesh
  state: TrainState
  state_sharding: Any
  digest: str
  ckpt: checkpoint.Checkpointer
  position: dict  # epoch, batches_done, metrics (the epoch's sums so far), history
  log: metric_log.MetricLog | None = None
  step_fn: Callable | None = None
  compile_s: float = 0.0

  def say(self, *args) -> None:
    if self.main:
      print(*args, flush=True)

  @property
  def history(self) -> list[dict]:
    return self.position["history"]

  @property
  def batch_size(self) -> int:
    # A batch larger than the split is one batch of the split (as in Keras), not padded rows.
    return min(self.config.train.batch_size, max(len(self.data.train), 1))

  @property
  def padded_batch_size(self) -> int:
    return sharding.padded_size(self.batch_size, self.mesh)

  @property
  def steps(self) -> int:
    return num_batches(len(self.data.train), self.batch_size)

  def new_metrics(self):
    return sharding.replicate(zero_metrics(), self.mesh)

  def evaluate(self, arrays: Arrays) -> dict[str, float]:
    return evaluate(self.state.apply_fn, self.state.params, arrays,
                    self.config.train.eval_batch_size, self.loss_fn, mesh=self.mesh)

  def save(self, epoch: int, batches_done: int, metrics) -> None:
    """A checkpoint at ``batches_done`` batches into ``epoch`` (``metrics``: the sums so far)."""
    self.ckpt.save((epoch - 1) * self.steps + batches_done, self.state, {
        "epoch": epoch, "batches_done": batches_done, "history": self.history,
        "metrics": None if metrics is None else _host(metrics),
        checkpoint.FINGERPRINT_KEY: checkpoint.fingerprint(self.config, self.digest)})

  def finished_summary(self) -> dict | None:
    """The summary of a run that trained all its epochs already (None: train)."""
    if self.position["epoch"] <= self.config.train.num_epochs:
      return None
    return _finished_summary(self.workdir)

  def announce(self) -> None:
    """Writes the run's inputs, says what it trains on, and compiles the step."""
    config, data, mesh = self.config, self.data, self.mesh
    if self.main:
      workdir_lib.write_inputs(self.workdir, config.to_dict(), data.tokenizer_json,
                               data.label_names)
    self.say(f"Train on {len(data.train)} samples, validate on {len(data.val)} samples "
             f"(test {len(data.test)}; data ready in {self.load_s:.1f}s"
             f"{' from the cache' if data.from_cache else ''})")
    if mesh.size > 1 or self.multi_process:
      self.say(f"Data-parallel on {mesh.size} {jax.default_backend()} devices in "
               f"{jax.process_count()} process(es); batch {config.train.batch_size} padded to "
               f"{sharding.padded_size(config.train.batch_size, mesh)}")
    if self.position["epoch"] > 1 or self.position["batches_done"]:
      self.say(f"Resuming from {self.ckpt.directory} at epoch {self.position['epoch']}, "
               f"batch {self.position['batches_done']}")
    t0 = time.perf_counter()
    first = next(batches(data.train, self.batch_size, pad_to=self.padded_batch_size))
    self.step_fn = sharded_train_step(mesh, self.state_sharding, self.loss_fn).lower(
        self.state, sharding.put_batch(first, mesh), self.new_metrics()).compile()
    self.compile_s = time.perf_counter() - t0
    done = (self.position["epoch"] - 1) * self.steps + self.position["batches_done"]
    self.log = metric_log.MetricLog(self.workdir, enabled=self.main, resume_step=done,
                                    tensorboard=config.train.tensorboard)


def _set_up(config, workdir: pathlib.Path, step_hook, multi_process: bool, main: bool) -> _Run:
  """The data, the state on the mesh, and where to start: fresh, or the newest checkpoint."""
  t0 = time.perf_counter()
  data = input_pipeline.prepare(config)
  load_s = time.perf_counter() - t0
  mesh = sharding.make_mesh(config.train.get("num_devices", 0))
  state, state_sharding = create_sharded_state(
      config, len(data.label_names), jax.random.PRNGKey(config.seed), mesh,
      total_steps=config.train.num_epochs * num_batches(len(data.train), config.train.batch_size))
  digest = input_pipeline.data_digest(data)
  ckpt, state, position = _start_or_resume(config, workdir, state, digest)
  return _Run(config=config, workdir=workdir, step_hook=step_hook, multi_process=multi_process,
              main=main, data=data, load_s=load_s, loss_fn=optim.make_loss(config.train.loss),
              mesh=mesh, state=state, state_sharding=state_sharding, digest=digest, ckpt=ckpt,
              position=position)


def _start_or_resume(config, workdir: pathlib.Path, state, digest: str):
  """The checkpointer, and the state and position to start from: fresh, or the newest saved."""
  if config.train.overwrite:
    if sharding.is_main_process():
      workdir_lib.clear_results(workdir)
    sharding.sync("rnnbench-overwrite")
  ckpt = checkpoint.Checkpointer(workdir / workdir_lib.CHECKPOINTS, config.train.keep_checkpoints)
  fresh = (ckpt, state, {"epoch": 1, "batches_done": 0, "metrics": None, "history": []})
  if ckpt.latest_step() is None:
    if workdir_lib.has_results(workdir):
      ckpt.close()
      raise checkpoint.CheckpointError(
          f"{workdir} holds the results of a run but no checkpoint to resume from; use another "
          "--workdir or pass --config.train.overwrite=True to replace them")
    return fresh
  try:
    return (ckpt, *ckpt.restore(state, checkpoint.fingerprint(config, digest)))
  except BaseException:
    ckpt.close()
    raise


def _finished_summary(workdir: pathlib.Path) -> dict | None:
  """``summary.json`` of a finished run; None (with a warning) if it is damaged."""
  path = workdir / workdir_lib.SUMMARY
  try:
    summary = json.loads(path.read_text())
    if isinstance(summary, dict):
      return summary
    problem = "not a JSON object"
  except FileNotFoundError:
    return None
  except (ValueError, UnicodeDecodeError) as e:
    problem = str(e)[:80]
  print(f"warning: {path} is damaged ({problem}); scoring the test split again from the last "
        "checkpoint to rewrite it", file=sys.stderr, flush=True)
  return None


def _run_epoch(run: _Run, epoch: int, stop: _StopOnSignal):
  """Trains one epoch (from the resume position in the first); returns its metric sums, time
  and the batches skipped (done before a resume)."""
  config, data, position, steps, bs = run.config, run.data, run.position, run.steps, run.batch_size
  run.say(f"Epoch {epoch}/{config.train.num_epochs}")
  order = epoch_order(config.seed, epoch, len(data.train))
  skip = position["batches_done"] if epoch == position["epoch"] else 0
  metrics = run.new_metrics()
  if skip and position["metrics"] is not None:
    metrics = sharding.replicate(jax.tree.map(
        lambda zero, saved: np.asarray(saved, zero.dtype), zero_metrics(),
        position["metrics"]), run.mesh)
  bar = metric_log.progress(steps, config.train.progress and run.main, initial=skip)
  last_logged = None
  if skip and run.log.last_kept is not None and run.log.last_kept.get("epoch") == epoch:
    # The window of the first line after a resume starts at the last line written.
    done_then = run.log.last_kept["step"] - (epoch - 1) * steps
    last_logged = {"loss": run.log.last_kept["epoch_loss"],
                   "accuracy": run.log.last_kept["epoch_accuracy"], "count": done_then * bs}
  t0 = time.perf_counter()
  for i, batch in enumerate(batches(data.train, bs, order[skip * bs:],
                                    pad_to=run.padded_batch_size), skip + 1):
    run.state, metrics = run.step_fn(run.state, sharding.put_batch(batch, run.mesh), metrics)
    _pace(metrics, i)
    last_logged = _after_step(run, epoch, i, metrics, stop, bar, last_logged)
  epoch_s = time.perf_counter() - t0
  if bar is not None:
    bar.close()
  return metrics, epoch_s, skip


def _after_step(run: _Run, epoch: int, i: int, metrics, stop: _StopOnSignal, bar, last_logged):
  """Step ``i``'s log line, signal stop and step checkpoint; returns the last logged means."""
  steps = run.steps
  global_step = (epoch - 1) * steps + i
  if run.step_hook is not None:
    run.step_hook(global_step)
  boundary = i % max(run.config.train.log_every_steps, 1) == 0 or i == steps
  stopping = stop.received is not None
  if run.multi_process:  # all processes stop together, at a step they all check
    stopping = boundary and sharding.any_process(stopping)
  if boundary or stopping:
    _check_finite(metrics, epoch, steps)
    running = _finish(metrics)
    window = metric_log.window(running, last_logged)
    last_logged = running
    run.log.step(global_step, {"epoch": epoch, **window, "epoch_loss": running["loss"],
                               "epoch_accuracy": running["accuracy"]})
    if bar is not None:
      bar.set_postfix(loss=f"{running['loss']:.4f}", accuracy=f"{running['accuracy']:.4f}")
      bar.update(i - bar.n)
  if stopping:
    if bar is not None:
      bar.close()
    run.save(epoch, i, metrics)
    name = (signal.Signals(stop.received).name if stop.received is not None
            else "on another process")
    raise TrainingInterrupted(
        f"stopped by signal {name} at epoch {epoch}, batch {i} of {steps}; checkpoint saved in "
        f"{run.ckpt.directory}. Rerun the same command to resume.")
  every = run.config.train.checkpoint_every_steps
  if every and global_step % every == 0 and i != steps:
    run.save(epoch, i, metrics)
  return last_logged


def _end_epoch(run: _Run, epoch: int, metrics, epoch_s: float, skip: int) -> None:
  """Validation (and test, with ``train.test_every_epoch``), Keras' line, the epoch checkpoint."""
  data, steps = run.data, run.steps
  train_metrics = _finish(metrics)
  val = run.evaluate(data.val) if len(data.val) else {}
  logs = {"loss": train_metrics["loss"], "accuracy": train_metrics["accuracy"]}
  if val:
    logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
  if run.config.train.test_every_epoch and len(data.test):
    test = run.evaluate(data.test)
    logs.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
  run.say(metric_log.keras_line(len(data.train), epoch_s, steps - skip, logs))
  run.history.append({"epoch": epoch, **logs, "epoch_time_s": epoch_s,
                      "step_time_ms": 1000.0 * epoch_s / max(steps - skip, 1),
                      "train_count": train_metrics["count"]})
  run.log.epoch(run.history, epoch * steps)
  run.save(epoch + 1, 0, None)


def _finish_run(run: _Run) -> dict:
  """Scores the test subset and writes the params and ``summary.json``; returns the summary."""
  data, history = run.data, run.history
  test = run.evaluate(data.test) if len(data.test) else {}
  if test:
    run.say(f"Test on {test['count']} samples - test_loss: {test['loss']:.4f} - "
            f"test_accuracy: {test['accuracy']:.4f}")
  params = sharding.to_host(run.state.params)  # every process: may gather across processes
  summary = {
      **({k: v for k, v in history[-1].items() if k != "epoch"} if history else {}),
      "epochs": len(history),
      "test_loss": test.get("loss"), "test_accuracy": test.get("accuracy"),
      "test_count": test.get("count"),
      "num_train": len(data.train), "num_val": len(data.val), "num_test": len(data.test),
      "params": param_counts(params),
      "load_time_s": run.load_s, "compile_time_s": run.compile_s,
      "environment": {**environment(), "num_devices": run.mesh.size},
  }
  if run.main:
    workdir_lib.write_results(run.workdir, serialization.to_bytes(params), summary)
  sharding.sync("rnnbench-done")  # the files exist once any process returns
  return summary


def _host(tree):
  return jax.tree.map(lambda a: np.asarray(a).tolist(), jax.device_get(tree))
