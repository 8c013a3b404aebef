"""Data-parallel scaling of the training step: the sharded step of ``rnnbench.train`` timed on
meshes of 1, 2, 4, ... devices (``python -m rnnbench.bench --bench.devices=...``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from rnnbench import optim
from rnnbench import runinfo
from rnnbench import sharding
from rnnbench import train


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
      mesh = sharding.make_mesh(n)
      padded = sharding.padded_size(global_bs, mesh)
      record.update(padded_batch_size=padded, per_device_batch_size=padded // n)
      state, shardings = train.create_sharded_state(
          config, num_classes, jax.random.PRNGKey(seed), mesh)
      step = train.sharded_train_step(mesh, shardings, loss_fn)
      batch = sharding.put_batch(runinfo.synthetic_batch(
          global_bs, seq_len, config.data.num_words, num_classes, seed, padded), mesh)
      metrics = sharding.replicate(train.zero_metrics(), mesh)
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
      record.update(status="ok", step_time_s=runinfo.step_stats(times), step_times_s=times,
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
