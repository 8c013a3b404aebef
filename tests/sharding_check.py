"""Runs by tests/test_sharding.py in a fresh interpreter with 8 simulated CPU devices.

``python tests/sharding_check.py OUT_DIR [scaling [COUNTS [STEPS]]]`` trains the tiny synthetic
model on 1 and on 8 devices, records the shardings the training step takes and returns, and
(with ``scaling``) runs ``rnnbench.bench.scaling.measure_scaling`` over COUNTS (default ``1,8``) devices for
STEPS (default 2) steps; it writes ``OUT_DIR/result.json``. XLA_FLAGS must hold
``--xla_force_host_platform_device_count=8`` before JAX starts, hence the subprocess.
A second mode, ``python tests/sharding_check.py OUT_DIR process ID COORDINATOR``, is one of
two processes of a multi-process run, for the multi-host test.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from conftest import small_config  # pylint: disable=g-import-not-at-top,wrong-import-position
from rnnbench import optim  # pylint: disable=g-import-not-at-top,wrong-import-position
from rnnbench import sharding  # pylint: disable=g-import-not-at-top,wrong-import-position
from rnnbench import input_pipeline  # pylint: disable=g-import-not-at-top,wrong-import-position
from rnnbench import train  # pylint: disable=g-import-not-at-top,wrong-import-position
from rnnbench.bench import report  # pylint: disable=g-import-not-at-top,wrong-import-position
from rnnbench.bench import scaling  # pylint: disable=g-import-not-at-top,wrong-import-position

# 180 train examples in 7 batches of 28 (the last of 12): 28 does not divide across 8 devices
# and is padded to 32; the eval batches of 20 to 24. 304 embedding rows split across 8.
OVERRIDES = {"data.num_words": 304, "train.batch_size": 28, "train.eval_batch_size": 20,
             "train.num_epochs": 2, "train.log_every_steps": 3}


def config(**overrides):
  return small_config(**{**OVERRIDES, **overrides})


def run(workdir, **overrides):
  summary = train.train_and_evaluate(config(**overrides), workdir)
  lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
  history = [{k: v for k, v in json.loads(l).items() if not k.endswith(("_time_s", "_time_ms"))}
             for l in lines]
  keys = ("test_loss", "test_accuracy", "test_count", "num_train")
  return {"history": history, "summary": {k: summary[k] for k in keys},
          "num_devices": summary["environment"]["num_devices"]}


def spec_of(array):
  return str(array.sharding.spec) if hasattr(array.sharding, "spec") else None


def shardings_seen():
  """The specs of the batch and of the state, placed and after a step with shard_embedding."""
  cfg = config(**{"train.shard_embedding": True})
  mesh = sharding.make_mesh(0)
  state, shardings = train.create_sharded_state(cfg, 4, jax.random.PRNGKey(0), mesh)
  _, replicated = train.create_sharded_state(config(), 4, jax.random.PRNGKey(0), mesh)
  data = input_pipeline.prepare(cfg)
  batch = sharding.put_batch(next(input_pipeline.batches(
      data.train, 28, pad_to=sharding.padded_size(28, mesh))), mesh)
  step = train.sharded_train_step(mesh, shardings, optim.make_loss(cfg.train.loss))
  after, metrics = step(state, batch, sharding.replicate(train.zero_metrics(), mesh))
  leaves = lambda tree: {jax.tree_util.keystr(p): spec_of(a)
                         for p, a in jax.tree_util.tree_leaves_with_path(tree)}
  return {"mesh": {k: int(v) for k, v in mesh.shape.items()},
          "batch": [spec_of(a) for a in batch], "batch_shape": list(batch[0].shape),
          "batch_devices": len(batch[0].sharding.device_set),
          "params": leaves(after.params), "opt_state": leaves(after.opt_state),
          "replicated": {jax.tree_util.keystr(p): str(s.spec)
                         for p, s in jax.tree_util.tree_leaves_with_path(replicated)},
          "metrics": leaves(metrics), "count": float(metrics["count"])}


def main(out: pathlib.Path, mode: str, *args: str) -> None:
  if mode == "process":  # one of two processes; both write to the same workdir
    process_id, coordinator = int(args[0]), args[1]
    dist = {"dist.initialize": True, "dist.coordinator": coordinator,
            "dist.num_processes": 2, "dist.process_id": process_id}
    result = run(out / "multi", **dist, **{"train.shard_embedding": True})
    result["process_count"] = jax.process_count()
    (out / f"process{process_id}.json").write_text(json.dumps(result))
    return
  assert jax.device_count() == 8, jax.devices()
  result = {
      "one": run(out / "one", **{"train.num_devices": 1}),
      "eight": run(out / "eight"),
      "shardings": shardings_seen(),
  }
  try:  # small_config's 300-row table does not split across 8 devices
    sharding.state_shardings(
        train.create_train_state(small_config(), 4, jax.random.PRNGKey(0)),
        sharding.make_mesh(0), shard_embedding=True)
  except ValueError as e:
    result["indivisible_embedding_error"] = str(e)
  if mode == "scaling":
    counts = [int(n) for n in args[0].split(",")] if args else [1, 8]
    steps = int(args[1]) if len(args) > 1 else 2
    records = scaling.measure_scaling(config(), counts, steps=steps, warmup=1, num_classes=4)
    result["scaling"] = records
    result["scaling_table"] = report.format_scaling(records)
  (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
  main(pathlib.Path(sys.argv[1]), *(sys.argv[2:] or ["train"]))
