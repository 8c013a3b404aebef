"""Data parallelism: the mesh, shardings, padding, 8 simulated devices and two processes.

The multi-device checks run tests/sharding_check.py in fresh interpreters, because XLA's
simulated device count must be set before JAX starts.
"""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT, small_config
from rnnbench.configs import default
from rnnbench import sharding
from rnnbench.bench import scaling
from rnnbench import input_pipeline
from rnnbench import train

CHECK = ROOT / "tests" / "sharding_check.py"
RTOL = 1e-5


def cpu_env(devices):
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  env.pop("JAX_COORDINATOR_ADDRESS", None)
  return env


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
  """tests/sharding_check.py on 8 devices: 1- and 8-device runs, shardings, scaling."""
  out = tmp_path_factory.mktemp("eight")
  proc = subprocess.run([sys.executable, str(CHECK), str(out), "scaling"], env=cpu_env(8),
                        capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads((out / "result.json").read_text())


def assert_same_run(got, want):
  assert got["summary"]["test_count"] == want["summary"]["test_count"]
  np.testing.assert_allclose(got["summary"]["test_loss"], want["summary"]["test_loss"],
                             rtol=RTOL)
  assert len(got["history"]) == len(want["history"])
  for a, b in zip(got["history"], want["history"]):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_allclose(a[key], b[key], rtol=RTOL, err_msg=key)


def test_eight_devices_train_like_one(eight):
  assert (eight["one"]["num_devices"], eight["eight"]["num_devices"]) == (1, 8)
  assert_same_run(eight["eight"], eight["one"])


def test_non_dividing_batch_counts_every_example_once(eight):
  # Batches of 28 (the last of 12) padded to 32 on 8 devices; eval batches of 20 to 24.
  for run in (eight["one"], eight["eight"]):
    assert [h["train_count"] for h in run["history"]] == [180, 180]
    assert (run["summary"]["num_train"], run["summary"]["test_count"]) == (180, 40)
  seen = eight["shardings"]
  assert seen["batch_shape"][0] == 32 and seen["count"] == 28


def test_batch_is_split_and_params_replicated(eight):
  seen = eight["shardings"]
  assert seen["mesh"] == {"data": 8}
  assert seen["batch"] == ["P('data',)"] * 3 and seen["batch_devices"] == 8
  assert set(seen["replicated"].values()) == {"P()"}  # shard_embedding=False: all of the state
  assert set(seen["metrics"].values()) == {"P()"}


def test_shard_embedding_splits_the_table_and_its_moments(eight):
  seen = eight["shardings"]
  split = "P('data', None)"
  assert seen["params"].pop("['embedding']['embeddings']") == split
  assert seen["opt_state"].pop(".mu['embedding']['embeddings']") == split
  assert seen["opt_state"].pop(".nu['embedding']['embeddings']") == split
  assert set(seen["params"].values()) == set(seen["opt_state"].values()) == {"P()"}
  assert "300 rows" in eight["indivisible_embedding_error"]
  assert "data.num_words=304" in eight["indivisible_embedding_error"]


def test_measure_scaling_runs_on_sub_meshes(eight):
  records = eight["scaling"]
  assert [r["num_devices"] for r in records] == [1, 8]
  assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
  assert [r["padded_batch_size"] for r in records] == [28, 32]
  assert [r["per_device_batch_size"] for r in records] == [28, 4]
  assert records[0]["speedup"] == 1.0 and records[1]["sequences_per_s"] > 0
  assert "speedup" in eight["scaling_table"]


def free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_two_processes_train_like_one_device(eight, tmp_path):
  """jax.distributed over 2 processes x 1 device, embedding split across both."""
  coordinator = f"localhost:{free_port()}"
  procs = [subprocess.Popen([sys.executable, str(CHECK), str(tmp_path), "process", str(i),
                             coordinator], env=cpu_env(1), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(2)]
  try:
    outputs = [p.communicate(timeout=240)[0] for p in procs]
  finally:
    for p in procs:
      p.kill()
  assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
  results = [json.loads((tmp_path / f"process{i}.json").read_text()) for i in range(2)]
  for result in results:
    assert (result["process_count"], result["num_devices"]) == (2, 2)
    assert_same_run(result, eight["one"])
  assert "Epoch 1/2" in outputs[0] and "Epoch 1/2" not in outputs[1]  # process 0 reports
  for name in ("config.json", "metrics.jsonl", "summary.json", "params.msgpack"):
    assert (tmp_path / "multi" / name).is_file()


def test_one_device_is_a_one_device_mesh():
  mesh = sharding.make_mesh(0)
  assert mesh.shape == {"data": 1} and sharding.padded_size(12, mesh) == 12
  state = train.create_train_state(small_config(), 4, jax.random.PRNGKey(0))
  specs = sharding.state_shardings(state, mesh, shard_embedding=True)
  assert specs.params["embedding"]["embeddings"].spec == jax.sharding.PartitionSpec("data", None)
  assert specs.params["rnn"]["kernel"].spec == jax.sharding.PartitionSpec()
  with pytest.raises(ValueError, match="there are 1 devices"):
    sharding.make_mesh(2)


def test_batches_pad_to_a_multiple_of_the_devices():
  arrays = input_pipeline.Arrays(x=np.arange(10 * 3).reshape(10, 3), y=np.arange(10))
  got = list(input_pipeline.batches(arrays, 3, pad_to=4))
  assert [b[0].shape for b in got] == [(4, 3)] * 4
  assert [b[2].tolist() for b in got] == [[1, 1, 1, 0]] * 3 + [[1, 0, 0, 0]]
  assert np.concatenate([b[1][b[2] > 0] for b in got]).tolist() == list(range(10))


def test_padding_helpers():
  assert scaling.default_device_counts(8) == [1, 2, 4, 8]
  assert scaling.default_device_counts(6) == [1, 2, 4, 6]
  mesh = sharding.make_mesh(1)
  assert [a.shape for a in sharding.put_batch((np.ones((3, 2)), np.ones(3)), mesh)] == [
      (3, 2), (3,)]


def test_no_distributed_setup_unless_asked():
  assert not sharding.initialize(default.get_config().dist)
  assert not sharding.initialize(None)
  with pytest.raises(ValueError, match="device count 2 is not in"):
    scaling.measure_scaling(small_config(), [2])


def test_eight_devices_at_the_notebooks_sizes_run_more_steps_than_xla_keeps_in_flight(tmp_path):
  """run.py on 8 simulated devices (on 2 cores here) at the notebook's model and batch sizes.

  45 steps: more than XLA:CPU's 32 computations in flight per device, which the host used to
  outrun until the launches held every client thread and the gradient all-reduce aborted
  ("only 5 of them arrived", exit 134). Paced dispatch (train.MAX_STEPS_IN_FLIGHT) prevents it.
  """
  overrides = {"data.name": "synthetic", "data.synthetic.num_train": 1600,
               "data.synthetic.num_test": 300, "data.num_words": 20000, "data.maxlen": 100,
               "model.embed_dim": 128, "model.hidden_size": 50, "train.batch_size": 32,
               "train.eval_batch_size": 256, "train.num_epochs": 1, "train.progress": False,
               "train.tensorboard": False}
  env = cpu_env(8)
  env.pop("PJRT_NPROC", None)
  proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config=configs/gru.py",
                         f"--workdir={tmp_path}", *[f"--config.{k}={v}" for k, v in
                                                    overrides.items()]],
                        env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Data-parallel on 8 cpu devices" in proc.stdout
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert (summary["train_count"], summary["test_count"]) == (1440, 300)
  assert summary["environment"]["num_devices"] == 8
