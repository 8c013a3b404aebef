"""Data-parallel training on a device mesh, on one host or many, with ``jax.sharding``.

One code path for every device count: a 1-D mesh with a ``'data'`` axis over the first
``train.num_devices`` devices (0: all of them, one device being a 1-device mesh). Each global
batch is split along ``'data'``; params and optimizer state are replicated, except that
``train.shard_embedding`` splits the embedding table (and its Adam moments) along the vocabulary
over the same axis. ``jax.jit`` with these ``NamedSharding``s does the rest: XLA inserts the
gradient all-reduce, and the metric sums come out replicated.

A batch that does not divide across the devices is padded up to a multiple of their count with
weight-0 rows, as ``train.batches`` pads the last batch of an epoch; no example is dropped.

Several hosts: ``initialize(config.dist)`` joins the run (``jax.distributed.initialize``), every
process runs the same program, builds the same global batch and puts only its own devices'
rows of it on its devices (``put_batch``); only process 0 writes files. docs/distributed.md
has the details.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA = "data"  # the mesh axis the batch (and, optionally, the vocabulary) is split along


class DistributedError(RuntimeError):
  """The multi-process run could not be set up (config.dist or the cluster)."""


def initialize(dist: Mapping[str, Any] | None) -> bool:
  """Calls ``jax.distributed.initialize`` when ``dist`` asks for it; True in a multi-process run.

  ``dist.initialize=True`` with the other fields empty lets JAX detect the cluster (TPU pods,
  SLURM, Open MPI, ...); ``dist.coordinator`` (or $JAX_COORDINATOR_ADDRESS),
  ``dist.num_processes`` and ``dist.process_id`` set it up by hand. Must run before anything
  else touches JAX; calling it again is harmless.
  """
  if dist is None:
    return False
  wanted = bool(dist["initialize"] or dist["coordinator"] or dist["num_processes"] > 0)
  if not wanted:
    return False
  if jax.distributed.is_initialized():
    return jax.process_count() > 1
  try:
    jax.distributed.initialize(
        coordinator_address=dist["coordinator"] or None,
        num_processes=dist["num_processes"] or None,
        process_id=None if dist["process_id"] < 0 else dist["process_id"])
  except (RuntimeError, ValueError, TypeError) as e:
    raise DistributedError(
        f"jax.distributed.initialize failed ({type(e).__name__}: {e}); check config.dist "
        "(coordinator, num_processes, process_id) or the cluster's environment") from e
  return jax.process_count() > 1


def is_main_process() -> bool:
  """Process 0, the one that writes files."""
  return jax.process_index() == 0


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D ``'data'`` mesh over the first ``num_devices`` devices (0: all of them)."""
  available = jax.device_count()
  n = num_devices or available
  if not 0 < n <= available:
    raise ValueError(f"train.num_devices={num_devices}, but there are {available} devices "
                     f"({jax.default_backend()}); use 0 for all of them")
  if n != available and jax.process_count() > 1:
    raise ValueError(f"train.num_devices={num_devices}: a run over {jax.process_count()} "
                     f"processes uses all {available} devices; set it to 0")
  return jax.make_mesh((n,), (DATA,), axis_types=(AxisType.Auto,),
                       devices=jax.devices()[:n])


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split along ``'data'``."""
  return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
  """A full copy on every device."""
  return NamedSharding(mesh, P())


def padded_size(batch_size: int, mesh: Mesh) -> int:
  """``batch_size`` rounded up to a multiple of the mesh's device count."""
  return mesh.size * math.ceil(batch_size / mesh.size)


def _names(path) -> list[Any]:
  return [getattr(k, "key", getattr(k, "name", getattr(k, "idx", None))) for k in path]


def is_embedding_table(path, leaf) -> bool:
  """The classifier's ``embedding/embeddings`` table, in the params or an optimizer moment."""
  return _names(path)[-2:] == ["embedding", "embeddings"] and np.ndim(leaf) == 2


def state_shardings(state: Any, mesh: Mesh, shard_embedding: bool = False) -> Any:
  """A tree like ``state`` of ``NamedSharding``s: all replicated, or the embedding split.

  With ``shard_embedding`` the embedding table and every same-shaped optimizer leaf under an
  ``embedding/embeddings`` path (Adam's ``mu`` and ``nu``) are split by rows, ``P('data', None)``.
  """
  def spec(path, leaf):
    if shard_embedding and is_embedding_table(path, leaf):
      rows = np.shape(leaf)[0]
      if rows % mesh.size:
        raise ValueError(
            f"train.shard_embedding: the embedding table's {rows} rows (data.num_words) do "
            f"not split evenly across {mesh.size} devices; use a multiple of {mesh.size} "
            f"(e.g. data.num_words={padded_size(rows, mesh)}) or train.shard_embedding=False")
      return NamedSharding(mesh, P(DATA, None))
    return replicated(mesh)

  return jax.tree_util.tree_map_with_path(spec, state)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """``tree`` (the same values on every process) copied onto every device of ``mesh``."""
  return jax.device_put(tree, replicated(mesh))


def put_batch(batch: Sequence[np.ndarray], mesh: Mesh) -> tuple[jax.Array, ...]:
  """A host batch (the same global batch on every process) as arrays split along ``'data'``.

  Each process transfers only the rows of its own devices. The leading dimension must be a
  multiple of the mesh's device count (``padded_size``).
  """
  sharding = batch_sharding(mesh)
  if len(batch[0]) % mesh.size:
    raise ValueError(f"a batch of {len(batch[0])} rows does not split across {mesh.size} "
                     f"devices; pad it to {padded_size(len(batch[0]), mesh)} (weight 0)")
  return tuple(jax.make_array_from_callback(np.shape(a), sharding, lambda idx, a=a: a[idx])
               for a in batch)


def to_host(tree: Any) -> Any:
  """``tree`` as numpy arrays; gathers leaves that are split across processes.

  In a multi-process run every process must call it (the gather is a collective).
  """
  def fetch(leaf):
    if isinstance(leaf, jax.Array) and not (leaf.is_fully_addressable
                                             or leaf.is_fully_replicated):
      return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    return np.asarray(jax.device_get(leaf))

  return jax.tree.map(fetch, tree)


def any_process(flag: bool) -> bool:
  """True on every process if ``flag`` is True on any one (a collective when multi-process)."""
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


def sync(name: str) -> None:
  """Waits until every process gets here (nothing to wait for with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def default_device_counts(available: int | None = None) -> list[int]:
  """1, 2, 4, ... up to the device count, and the device count itself."""
  available = available or jax.device_count()
  counts = [1 << k for k in range(available.bit_length()) if 1 << k <= available]
  return counts + ([available] if counts[-1] != available else [])


def measure_scaling(config: ml_collections.ConfigDict, device_counts: Sequence[int] = (),
                    *, steps: int = 20, warmup: int = 3, num_classes: int = 20, seed: int = 0,
                    per_device_batch: bool = False) -> list[dict[str, Any]]:
  """Times ``config``'s sharded training step on meshes of the first n devices, for each n.

  Strong scaling by default: the global batch is ``config.train.batch_size`` at every n
  (padded with weight-0 rows to a multiple of n). ``per_device_batch=True`` is weak scaling:
  ``config.train.batch_size`` per device, so n times that globally. The batch is synthetic
  (token ids uniform in ``[1, data.num_words)``, ``data.maxlen`` long); the step is what
  ``train_and_evaluate`` runs, including ``train.shard_embedding``.

  Returns one record per n: ``num_devices``, ``batch_size`` (real examples per step),
  ``padded_batch_size``, ``per_device_batch_size``, ``seq_len``, ``cell``, ``status``
  ('ok' or 'error'), ``error``, ``compile_s``, ``step_time_s`` (median, p10, p90, mean, min,
  max), ``step_times_s``, ``sequences_per_s`` and ``tokens_per_s`` (real examples only),
  ``speedup`` (throughput over that of the first n) and ``efficiency`` (speedup / (n / n0)).
  """
  from rnnbench import optim  # pylint: disable=g-import-not-at-top
  from rnnbench import train  # pylint: disable=g-import-not-at-top  (train imports this module)

  counts = list(device_counts) or default_device_counts()
  if steps < 1 or warmup < 0:
    raise ValueError(f"steps must be >= 1 and warmup >= 0, got {steps} and {warmup}")
  for n in counts:
    if not 0 < n <= jax.device_count():
      raise ValueError(f"device count {n} is not in [1, {jax.device_count()}] "
                       f"(the {jax.default_backend()} devices)")
  loss_fn = optim.make_loss(config.train.loss)
  seq_len = config.data.maxlen
  records = []
  for n in counts:
    global_bs = config.train.batch_size * (n if per_device_batch else 1)
    record = {"num_devices": n, "batch_size": global_bs, "padded_batch_size": None,
              "per_device_batch_size": None, "seq_len": seq_len, "cell": config.model.cell,
              "status": "error", "error": None, "compile_s": None, "step_time_s": None,
              "step_times_s": None, "sequences_per_s": None, "tokens_per_s": None,
              "speedup": None, "efficiency": None}
    records.append(record)
    try:
      mesh = make_mesh(n)
      padded = padded_size(global_bs, mesh)
      record.update(padded_batch_size=padded, per_device_batch_size=padded // n)
      state, shardings = train.create_sharded_state(
          config, num_classes, jax.random.PRNGKey(seed), mesh)
      step = train.sharded_train_step(mesh, shardings, loss_fn)
      batch = put_batch(_synthetic_batch(global_bs, padded, seq_len, config.data.num_words,
                                         num_classes, seed), mesh)
      metrics = replicate(train.zero_metrics(), mesh)
      start = time.perf_counter()
      compiled = step.lower(state, batch, metrics).compile()
      record["compile_s"] = time.perf_counter() - start
      times = []
      for i in range(1 + warmup + steps):
        start = time.perf_counter()
        state, metrics = jax.block_until_ready(compiled(state, batch, metrics))
        if i > warmup:
          times.append(time.perf_counter() - start)
      median = float(np.median(times))
      record.update(status="ok", step_time_s=_stats(times), step_times_s=times,
                    sequences_per_s=global_bs / median, tokens_per_s=global_bs * seq_len / median)
      del state, metrics, batch
    except Exception as e:  # pylint: disable=broad-except
      record["error"] = f"{type(e).__name__}: {str(e).strip()[:500]}"
  ok = [r for r in records if r["status"] == "ok"]
  if ok:
    base = ok[0]
    for r in ok:
      r["speedup"] = r["sequences_per_s"] / base["sequences_per_s"]
      r["efficiency"] = r["speedup"] / (r["num_devices"] / base["num_devices"])
  return records


def format_scaling(records: Sequence[Mapping[str, Any]]) -> str:
  """``measure_scaling``'s records as a fixed-width table."""
  head = ("devices", "B", "B_padded", "B/device", "compile_s", "median_ms", "p10_ms", "p90_ms",
          "seq/s", "tok/s", "speedup", "efficiency")
  rows = []
  for r in records:
    if r["status"] != "ok":
      rows.append((str(r["num_devices"]), str(r["batch_size"]), "ERROR: " + str(r["error"]))
                  + ("",) * (len(head) - 3))
      continue
    s = r["step_time_s"]
    rows.append((str(r["num_devices"]), str(r["batch_size"]), str(r["padded_batch_size"]),
                 str(r["per_device_batch_size"]), f"{r['compile_s']:.2f}",
                 f"{1e3 * s['median']:.3g}", f"{1e3 * s['p10']:.3g}", f"{1e3 * s['p90']:.3g}",
                 f"{r['sequences_per_s']:.4g}", f"{r['tokens_per_s']:.4g}",
                 f"{r['speedup']:.2f}", f"{r['efficiency']:.2f}"))
  widths = [max(len(x) for x in col) for col in zip(head, *rows)]
  return "\n".join("  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in [head, *rows])


def _synthetic_batch(batch_size: int, padded: int, seq_len: int, num_words: int,
                     num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Uniform token ids and labels for ``batch_size`` rows, then weight-0 rows up to ``padded``."""
  rng = np.random.default_rng(seed)
  x = np.zeros((padded, seq_len), np.int32)
  y = np.zeros((padded,), np.int32)
  x[:batch_size] = rng.integers(1, num_words, size=(batch_size, seq_len))
  y[:batch_size] = rng.integers(0, num_classes, size=(batch_size,))
  w = (np.arange(padded) < batch_size).astype(np.float32)
  return x, y, w


def _stats(times: Sequence[float]) -> dict[str, float]:
  t = np.asarray(times, np.float64)
  return {"median": float(np.median(t)), "p10": float(np.percentile(t, 10)),
          "p90": float(np.percentile(t, 90)), "mean": float(t.mean()),
          "min": float(t.min()), "max": float(t.max())}
