"""Data-parallel training on a device mesh, on one host or many, with ``jax.sharding``.

One code path for every device count: a 1-D mesh with a ``'data'`` axis over the first
``train.num_devices`` devices (0: all of them, one device being a 1-device mesh). Each global
batch is split along ``'data'``; params and optimizer state are replicated, except that
``train.shard_embedding`` splits the embedding table (and its Adam moments) along the vocabulary
over the same axis. ``jax.jit`` with these ``NamedSharding``s does the rest: XLA inserts the
gradient all-reduce, and the metric sums come out replicated.

A batch that does not divide across the devices is padded up to a multiple of their count with
weight-0 rows, as ``input_pipeline.batches`` pads the last batch of an epoch; no example is dropped.

Several hosts: ``initialize(config.dist)`` joins the run (``jax.distributed.initialize``), every
process runs the same program, builds the same global batch and puts only its own devices'
rows of it on its devices (``put_batch``); only process 0 writes files. docs/distributed.md
has the details. Timing the step on 1, 2, ... devices is the benchmark's
(``rnnbench.bench.scaling``); this module imports nothing of the project's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
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
