"""Training and evaluation: the notebook's ``model.fit(..., validation_split=0.1)``, in JAX.

``train_and_evaluate(config, workdir)`` is the whole run: load the data, fit the tokenizer on the
train subset, split off the LAST ``validation_split`` of it (as Keras does, before any shuffle),
train with a jitted pure ``train_step``, validate every epoch, then score the test subset.

Training is data-parallel over a mesh of ``train.num_devices`` devices (0: all; see
``rnnbench.sharding`` and docs/distributed.md), on one host or, with ``config.dist``, several.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import pathlib
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import serialization
from flax.training import train_state

from rnnbench import checkpoint
from rnnbench import data as data_lib
from rnnbench import metric_log
from rnnbench import models
from rnnbench import optim
from rnnbench import runinfo
from rnnbench import sharding
from rnnbench import tokenizer as tokenizer_lib
from rnnbench import validation
from rnnbench import workdir as workdir_lib


class TrainState(train_state.TrainState):
  """Params, optimizer state and step; ``dropout_key`` is folded with the step each update."""
  dropout_key: jax.Array


@dataclasses.dataclass(frozen=True)
class Arrays:
  """Token ids ``x`` (n, maxlen) int32 and labels ``y`` (n,) int32 of one split."""
  x: np.ndarray
  y: np.ndarray

  def __len__(self) -> int:
    return len(self.y)


@dataclasses.dataclass(frozen=True)
class PreparedData:
  train: Arrays
  val: Arrays
  test: Arrays
  tokenizer: tokenizer_lib.Tokenizer
  label_names: list[str]


def split_at(n: int, validation_split: float) -> int:
  """Where Keras' ``fit(validation_split=v)`` cuts: the first ``int(n * (1 - v))`` train."""
  if not 0.0 <= validation_split < 1.0:
    raise ValueError(f"data.validation_split must be in [0, 1), got {validation_split}")
  return int(n * (1.0 - validation_split))


def prepare_data(config: ml_collections.ConfigDict) -> PreparedData:
  """Loads the dataset, fits the tokenizer on the whole train subset and pads every split."""
  dataset = data_lib.load(config.data, seed=config.seed)
  tok = tokenizer_lib.Tokenizer(
      num_words=config.data.num_words,
      filters=config.data.get("filters", tokenizer_lib.DEFAULT_FILTERS),
      lower=config.data.get("lower", True))
  tok.fit_on_texts(dataset.train_texts)

  def encode(texts, labels) -> Arrays:
    x = tokenizer_lib.pad_sequences(
        tok.texts_to_sequences(texts), maxlen=config.data.maxlen,
        padding=config.data.padding, truncating=config.data.truncating)
    return Arrays(x=x.astype(np.int32), y=np.asarray(labels, np.int32))

  full = encode(dataset.train_texts, dataset.train_labels)
  if dataset.val_texts is None:  # the notebook's: the last validation_split of train
    cut = split_at(len(full), config.data.validation_split)
    train, val = Arrays(full.x[:cut], full.y[:cut]), Arrays(full.x[cut:], full.y[cut:])
  else:  # a named split (like Keras' validation_data): all of train trains
    train, val = full, encode(dataset.val_texts, dataset.val_labels)
  return PreparedData(train=train, val=val,
                      test=encode(dataset.test_texts, dataset.test_labels),
                      tokenizer=tok, label_names=list(dataset.label_names))


def data_digest(data: PreparedData) -> str:
  """A sha256 of what training sees: the encoded train and validation splits and the class names.

  Part of the checkpoint fingerprint, so data that changed (other files, other synthetic
  settings, another tokenizer fit) refuses a resume wherever it is read from.
  """
  h = hashlib.sha256()
  for a in (data.train.x, data.train.y, data.val.x, data.val.y):
    h.update(repr((a.shape, a.dtype.str)).encode())
    h.update(np.ascontiguousarray(a).tobytes())
  h.update(json.dumps(data.label_names).encode())
  return h.hexdigest()


def batches(arrays: Arrays, batch_size: int, order: np.ndarray | None = None,
            pad_to: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Fixed-shape batches ``(x, y, weight)`` of ``batch_size`` examples each.

  The last partial batch is zero-padded with weight 0, and so is every batch up to ``pad_to``
  rows if that is larger (a batch that must split evenly across devices).
  """
  idx = np.arange(len(arrays)) if order is None else np.asarray(order)
  rows = max(batch_size, pad_to or 0)
  for start in range(0, len(idx), batch_size):
    take = idx[start:start + batch_size]
    pad = rows - len(take)
    x, y = arrays.x[take], arrays.y[take]
    w = np.ones(len(take), np.float32)
    if pad:
      x = np.concatenate([x, np.zeros((pad, x.shape[1]), x.dtype)])
      y = np.concatenate([y, np.zeros(pad, y.dtype)])
      w = np.concatenate([w, np.zeros(pad, np.float32)])
    yield x, y, w


def num_batches(n: int, batch_size: int) -> int:
  return math.ceil(n / batch_size)


def create_train_state(config: ml_collections.ConfigDict, num_classes: int,
                       rng: jax.Array, total_steps: int = 0) -> TrainState:
  """Fresh params and optimizer state; ``total_steps``: the run's updates, for a schedule."""
  model = models.create_model(config, num_classes=num_classes)
  init_key, dropout_key = jax.random.split(rng)
  dummy = jnp.zeros((1, config.data.maxlen), jnp.int32)
  params = model.init({"params": init_key}, dummy, train=False)["params"]
  return TrainState.create(apply_fn=mixed_precision(model.apply, config.train.dtype),
                           params=params, tx=optim.make_optimizer(config.train, total_steps),
                           dropout_key=dropout_key)


COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def mixed_precision(apply_fn: Callable[..., jax.Array], dtype: str) -> Callable[..., jax.Array]:
  """``apply_fn`` computing in ``dtype`` on float32 params (``train.dtype``).

  The params are cast to ``dtype`` inside the step (the float32 ones stay the optimizer's master
  copy, and their gradients are float32); the outputs are cast back to float32 for the loss.
  """
  if dtype not in COMPUTE_DTYPES:
    raise ValueError(f"unknown train.dtype {dtype!r}; choose one of {COMPUTE_DTYPES}")
  if dtype == "float32":
    return apply_fn
  compute = jnp.dtype(dtype)

  def apply(variables, *args, **kwargs):
    cast = jax.tree.map(
        lambda p: p.astype(compute) if jnp.issubdtype(p.dtype, jnp.floating) else p, variables)
    return apply_fn(cast, *args, **kwargs).astype(jnp.float32)

  return apply


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


def create_sharded_state(config: ml_collections.ConfigDict, num_classes: int, rng: jax.Array,
                         mesh: jax.sharding.Mesh, total_steps: int = 0) -> tuple[TrainState, Any]:
  """``create_train_state`` placed on ``mesh``, and its shardings (``sharding.state_shardings``)."""
  state = create_train_state(config, num_classes, rng, total_steps)
  shardings = sharding.state_shardings(state, mesh, config.train.get("shard_embedding", False))
  return jax.device_put(state, shardings), shardings


def _train_step(state: TrainState, batch, metrics, loss_fn):
  """One optimizer update on a (possibly padded) batch; returns the new state and metrics."""
  x, y, w = batch
  dropout_key = jax.random.fold_in(state.dropout_key, state.step)

  def loss_of(params):
    logits = state.apply_fn({"params": params}, x, train=True, return_logits=True,
                            rngs={"dropout": dropout_key})
    losses = loss_fn(logits, y)
    return optim.batch_loss(losses, w), (losses, logits)

  grads, (losses, logits) = jax.grad(loss_of, has_aux=True)(state.params)
  return state.apply_gradients(grads=grads), _accumulate(metrics, losses, logits, y, w, state.step)


def _eval_step(state: TrainState, batch, metrics, loss_fn):
  x, y, w = batch
  logits = state.apply_fn({"params": state.params}, x, train=False, return_logits=True)
  return _accumulate(metrics, loss_fn(logits, y), logits, y, w, state.step)


# Jitted for wherever the arguments are: one device, or a mesh (shardings propagate).
train_step = jax.jit(_train_step, static_argnames="loss_fn", donate_argnums=(0, 2))
eval_step = jax.jit(_eval_step, static_argnames="loss_fn", donate_argnums=(2,))


def sharded_train_step(mesh: jax.sharding.Mesh, state_sharding: Any, loss_fn):
  """``train_step`` jitted for ``mesh``: ``(state, batch, metrics) -> (state, metrics)``.

  The batch is split along ``'data'``, the state keeps ``state_sharding`` (in and out, so it
  can be donated) and the metric sums are replicated; XLA all-reduces the gradients.
  """
  data, rep = sharding.batch_sharding(mesh), sharding.replicated(mesh)
  return jax.jit(functools.partial(_train_step, loss_fn=loss_fn),
                 in_shardings=(state_sharding, (data, data, data), rep),
                 out_shardings=(state_sharding, rep), donate_argnums=(0, 2))


def _finish(metrics) -> dict[str, float]:
  m = jax.device_get(metrics)
  count = max(float(m["count"]), 1.0)
  return {"loss": float(m["loss"]) / count, "accuracy": float(m["correct"]) / count,
          "count": int(m["count"])}


def evaluate(state: TrainState, arrays: Arrays, batch_size: int, loss_fn, *,
             mesh: jax.sharding.Mesh | None = None) -> dict[str, float]:
  """Mean loss and accuracy over every example of ``arrays`` exactly once.

  With ``mesh`` (``state`` placed on it) each batch is padded to split across its devices.
  """
  metrics = zero_metrics()
  batch_size = min(batch_size, max(len(arrays), 1))  # never pad beyond the split
  if mesh is None:
    for batch in batches(arrays, batch_size):
      metrics = eval_step(state, batch, metrics, loss_fn=loss_fn)
    return _finish(metrics)
  metrics = sharding.replicate(metrics, mesh)
  for i, batch in enumerate(batches(arrays, batch_size,
                                    pad_to=sharding.padded_size(batch_size, mesh)), 1):
    metrics = eval_step(state, sharding.put_batch(batch, mesh), metrics, loss_fn=loss_fn)
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


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
  """The training order of one epoch: a fresh permutation from (seed, epoch)."""
  return np.random.default_rng([seed, epoch]).permutation(n)


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or infinite."""


# Errors that carry a message for the user (bad config, missing data, bad checkpoint, NaN loss);
# entry points print them without a traceback.
EXPECTED_ERRORS = (ValueError, data_lib.DataError, checkpoint.CheckpointError,
                   NonFiniteLossError, FileNotFoundError, sharding.DistributedError,
                   workdir_lib.WorkdirError)


def _check_finite(metrics, epoch: int, steps_per_epoch: int) -> None:
  bad = int(jax.device_get(metrics["bad_step"]))
  if bad >= 0:
    raise NonFiniteLossError(
        f"the training loss became NaN or infinite at epoch {epoch}, step "
        f"{bad - (epoch - 1) * steps_per_epoch + 1} of {steps_per_epoch} (global step {bad + 1}); "
        "training stopped. Lower config.train.learning_rate or check the inputs.")


def _keras_line(n: int, seconds: float, steps: int, logs: Mapping[str, float]) -> str:
  per_step = 1000.0 * seconds / max(steps, 1)
  parts = [f"{n}/{n} [==============================] - {seconds:.0f}s {per_step:.0f}ms/step"]
  parts += [f"{k}: {v:.4f}" for k, v in logs.items()]
  return " - ".join(parts)


def param_counts(params) -> dict[str, int]:
  """Parameters per top-level layer, and their ``total``."""
  counts = {name: sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(sub))
            for name, sub in params.items()}
  return {**counts, "total": sum(counts.values())}


environment = runinfo.jax_environment  # summary.json's "environment"


class TrainingInterrupted(Exception):
  """SIGINT/SIGTERM stopped training; a checkpoint was saved and a rerun resumes from it."""


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


def _start_or_resume(config, workdir: pathlib.Path, state, digest: str):
  """The checkpointer, and the state and position to start from: fresh, or the newest saved."""
  directory = workdir / "checkpoints"
  if config.train.overwrite:
    if sharding.is_main_process():
      for name in ("checkpoints", "checkpoints-damaged", "tensorboard"):
        shutil.rmtree(workdir / name, ignore_errors=True)
      for name in ("metrics.jsonl", "steps.jsonl", "summary.json", "params.msgpack"):
        (workdir / name).unlink(missing_ok=True)
    sharding.sync("rnnbench-overwrite")
  ckpt = checkpoint.Checkpointer(directory, config.train.keep_checkpoints)
  fresh = (ckpt, state, {"epoch": 1, "batches_done": 0, "metrics": None, "history": []})
  if ckpt.latest_step() is None:
    if (workdir / "metrics.jsonl").exists() or (workdir / "summary.json").exists():
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
  path = workdir / "summary.json"
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
    return _train(config, path, step_hook, multi_process, main)


def _train(config, workdir: pathlib.Path, step_hook, multi_process: bool, main: bool) -> dict:
  say = functools.partial(print, flush=True) if main else lambda *a, **k: None

  t0 = time.perf_counter()
  data = prepare_data(config)
  load_s = time.perf_counter() - t0
  loss_fn = optim.make_loss(config.train.loss)
  mesh = sharding.make_mesh(config.train.get("num_devices", 0))
  state, state_sharding = create_sharded_state(
      config, len(data.label_names), jax.random.PRNGKey(config.seed), mesh,
      total_steps=config.train.num_epochs * num_batches(len(data.train), config.train.batch_size))
  digest = data_digest(data)
  ckpt, state, position = _start_or_resume(config, workdir, state, digest)
  try:
    return _fit(config, workdir, step_hook, multi_process, main, say, data, load_s, mesh,
                state, state_sharding, loss_fn, ckpt, position, digest)
  finally:
    ckpt.close()  # waits for orbax's writes and stops its threads before the interpreter exits


def _fit(config, workdir, step_hook, multi_process, main, say, data, load_s, mesh, state,
         state_sharding, loss_fn, ckpt, position, digest) -> dict:
  history = position["history"]
  if position["epoch"] > config.train.num_epochs:
    summary = _finished_summary(workdir)
    if summary is not None:
      say(f"{workdir} holds a finished run; pass --config.train.overwrite=True to train it again")
      return summary

  if main:
    metric_log.write_json(workdir / "config.json", config.to_dict())
    (workdir / "tokenizer.json").write_text(data.tokenizer.to_json())
    (workdir / "labels.json").write_text(json.dumps(data.label_names) + "\n")
  say(f"Train on {len(data.train)} samples, validate on {len(data.val)} samples "
      f"(test {len(data.test)}; data ready in {load_s:.1f}s)")
  if mesh.size > 1 or multi_process:
    say(f"Data-parallel on {mesh.size} {jax.default_backend()} devices in "
        f"{jax.process_count()} process(es); batch {config.train.batch_size} padded to "
        f"{sharding.padded_size(config.train.batch_size, mesh)}")
  if position["epoch"] > 1 or position["batches_done"]:
    say(f"Resuming from {ckpt.directory} at epoch {position['epoch']}, "
        f"batch {position['batches_done']}")

  # A batch larger than the split is one batch of the split (as in Keras), not padded rows.
  bs = min(config.train.batch_size, max(len(data.train), 1))
  ebs = config.train.eval_batch_size
  padded_bs = sharding.padded_size(bs, mesh)
  steps = num_batches(len(data.train), bs)
  new_metrics = lambda: sharding.replicate(zero_metrics(), mesh)
  t0 = time.perf_counter()
  step_fn = sharded_train_step(mesh, state_sharding, loss_fn).lower(
      state, sharding.put_batch(next(batches(data.train, bs, pad_to=padded_bs)), mesh),
      new_metrics()).compile()
  compile_s = time.perf_counter() - t0
  every = config.train.checkpoint_every_steps
  log_every = max(config.train.log_every_steps, 1)
  done = (position["epoch"] - 1) * steps + position["batches_done"]
  log = metric_log.MetricLog(workdir, enabled=main, resume_step=done,
                             tensorboard=config.train.tensorboard)

  def save(epoch, batches_done, metrics):
    ckpt.save((epoch - 1) * steps + batches_done, state, {
        "epoch": epoch, "batches_done": batches_done, "history": history,
        "metrics": None if metrics is None else _host(metrics),
        checkpoint.FINGERPRINT_KEY: checkpoint.fingerprint(config, digest)})

  with _StopOnSignal() as stop, log:
    for epoch in range(position["epoch"], config.train.num_epochs + 1):
      say(f"Epoch {epoch}/{config.train.num_epochs}")
      order = epoch_order(config.seed, epoch, len(data.train))
      skip = position["batches_done"] if epoch == position["epoch"] else 0
      metrics = new_metrics()
      if skip and position["metrics"] is not None:
        metrics = sharding.replicate(jax.tree.map(
            lambda zero, saved: np.asarray(saved, zero.dtype), zero_metrics(),
            position["metrics"]), mesh)
      bar = _progress(steps, config.train.progress and main, initial=skip)
      last_logged = None
      if skip and log.last_kept is not None and log.last_kept.get("epoch") == epoch:
        # The window of the first line after a resume starts at the last line written.
        done_then = log.last_kept["step"] - (epoch - 1) * steps
        last_logged = {"loss": log.last_kept["epoch_loss"],
                       "accuracy": log.last_kept["epoch_accuracy"], "count": done_then * bs}
      t0 = time.perf_counter()
      for i, batch in enumerate(batches(data.train, bs, order[skip * bs:], pad_to=padded_bs),
                                skip + 1):
        state, metrics = step_fn(state, sharding.put_batch(batch, mesh), metrics)
        _pace(metrics, i)
        global_step = (epoch - 1) * steps + i
        if step_hook is not None:
          step_hook(global_step)
        boundary = i % log_every == 0 or i == steps
        stopping = stop.received is not None
        if multi_process:  # all processes stop together, at a step they all check
          stopping = boundary and sharding.any_process(stopping)
        if boundary or stopping:
          _check_finite(metrics, epoch, steps)
          running = _finish(metrics)
          window = _window(running, last_logged)
          last_logged = running
          log.step(global_step, {"epoch": epoch, **window, "epoch_loss": running["loss"],
                                 "epoch_accuracy": running["accuracy"]})
          if bar is not None:
            bar.set_postfix(loss=f"{running['loss']:.4f}", accuracy=f"{running['accuracy']:.4f}")
            bar.update(i - bar.n)
        if stopping:
          if bar is not None:
            bar.close()
          save(epoch, i, metrics)
          name = (signal.Signals(stop.received).name if stop.received is not None
                  else "on another process")
          raise TrainingInterrupted(
              f"stopped by signal {name} at epoch {epoch}, batch "
              f"{i} of {steps}; checkpoint saved in {ckpt.directory}. Rerun the same command "
              "to resume.")
        if every and global_step % every == 0 and i != steps:
          save(epoch, i, metrics)
      train_metrics = _finish(metrics)
      epoch_s = time.perf_counter() - t0
      if bar is not None:
        bar.close()
      val = evaluate(state, data.val, ebs, loss_fn, mesh=mesh) if len(data.val) else {}
      logs = {"loss": train_metrics["loss"], "accuracy": train_metrics["accuracy"]}
      if val:
        logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
      if config.train.test_every_epoch and len(data.test):
        test = evaluate(state, data.test, ebs, loss_fn, mesh=mesh)
        logs.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
      say(_keras_line(len(data.train), epoch_s, steps - skip, logs))
      history.append({"epoch": epoch, **logs, "epoch_time_s": epoch_s,
                      "step_time_ms": 1000.0 * epoch_s / max(steps - skip, 1),
                      "train_count": train_metrics["count"]})
      log.epoch(history, epoch * steps)
      save(epoch + 1, 0, None)

  test = evaluate(state, data.test, ebs, loss_fn, mesh=mesh) if len(data.test) else {}
  if test:
    say(f"Test on {test['count']} samples - test_loss: {test['loss']:.4f} - "
        f"test_accuracy: {test['accuracy']:.4f}")
  params = sharding.to_host(state.params)  # every process: may gather across processes
  summary = {
      **({k: v for k, v in history[-1].items() if k != "epoch"} if history else {}),
      "epochs": len(history),
      "test_loss": test.get("loss"), "test_accuracy": test.get("accuracy"),
      "test_count": test.get("count"),
      "num_train": len(data.train), "num_val": len(data.val), "num_test": len(data.test),
      "params": param_counts(params),
      "load_time_s": load_s, "compile_time_s": compile_s,
      "environment": {**environment(), "num_devices": mesh.size},
  }
  if main:
    (workdir / "params.msgpack").write_bytes(serialization.to_bytes(params))
    metric_log.write_json(workdir / "summary.json", summary)
  sharding.sync("rnnbench-done")  # the files exist once any process returns
  return summary


def _window(now: Mapping[str, float], before: Mapping[str, float] | None) -> dict[str, float]:
  """Loss and accuracy over the steps between two running epoch means."""
  if before is None:
    return {"loss": now["loss"], "accuracy": now["accuracy"]}
  n = now["count"] - before["count"]
  mean = lambda k: (now[k] * now["count"] - before[k] * before["count"]) / max(n, 1)
  return {"loss": mean("loss"), "accuracy": mean("accuracy")}


def _host(tree):
  return jax.tree.map(lambda a: np.asarray(a).tolist(), jax.device_get(tree))


def interactive() -> bool:
  """Whether stdout and stderr are both terminals (not a log file or a pipe)."""
  return all(getattr(s, "isatty", lambda: False)() for s in (sys.stdout, sys.stderr))


def _progress(total: int, enabled: bool, initial: int = 0):
  """A tqdm bar on a terminal; None in a log (Keras' one line per epoch is printed anyway)."""
  if not enabled or not interactive():
    return None
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, initial=initial, unit="step", leave=False, file=sys.stderr,
              dynamic_ncols=True)
