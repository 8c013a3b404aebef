"""benchmarks/step_breakdown.py on tiny shapes: every part timed for both cells, the torch
counterparts, the markdown page, and that each part computes the model's own function."""

from __future__ import annotations

import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import step_breakdown  # pylint: disable=wrong-import-position
from rnnbench import optim  # pylint: disable=wrong-import-position
from rnnbench import train  # pylint: disable=wrong-import-position

try:
  import torch  # pylint: disable=g-import-not-at-top
except ImportError:
  torch = None

SHAPES = {"batch_size": 4, "seq_len": 6, "num_words": 50, "embed_dim": 8, "hidden_size": 5,
          "dense_size": 6}
TINY = ["--rounds", "1", "--steps", "2", "--data", "synthetic", "--torch_threads", "1",
        *[a for k, v in SHAPES.items() for a in (f"--{k}", str(v))]]
HAS_TORCH = torch is not None
# inside nn.LSTM, not separable; and rnnbench's floor (its step with a free recurrence)
TORCH_LESS = ("recurrence_fwd", "recurrence_fwd_bwd", "train_step_no_recurrence")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """The script's main at tiny shapes, with torch when it is installed: (report, JSON, md)."""
  out = tmp_path_factory.mktemp("step_breakdown")
  argv = TINY + ["--json", str(out / "b.json"), "--markdown", str(out / "b.md")]
  threads = torch.get_num_threads() if HAS_TORCH else 0
  try:
    report = step_breakdown.main(argv + ([] if HAS_TORCH else ["--no_torch"]))
  finally:  # --torch_threads 1 is process-wide: later tests get torch's default back
    if HAS_TORCH:
      torch.set_num_threads(threads)
  return report, json.loads((out / "b.json").read_text()), (out / "b.md").read_text()


def test_every_part_of_both_cells_is_timed(run):
  _, report, _ = run
  assert set(report["cells"]) == {"lstm", "gru"}
  assert report["settings"]["shapes"] == SHAPES
  assert report["environment"]["jax"] == jax.__version__ and report["environment"]["cpu_model"]
  assert len(report["load_average"]["start"]) == 3
  for cell in report["cells"].values():
    assert list(cell["parts"]) == list(step_breakdown.PARTS)
    for row in cell["parts"].values():
      r = row["rnnbench"]
      assert r["n"] == 2 and 0 < r["q1_ms"] <= r["median_ms"] <= r["q3_ms"]
    total = sum(cell["parts"][p]["rnnbench"]["median_ms"]
                for p in step_breakdown.SUMMED["rnnbench"])
    assert cell["sum_of_parts"]["rnnbench"]["median_ms"] == pytest.approx(total)


def test_torch_counterparts(run):
  pytest.importorskip("torch")
  _, report, _ = run
  assert report["settings"]["tools"] == ["rnnbench", "torch"]
  assert report["environment"]["torch"] and report["environment"]["torch_threads"] == 1
  for cell in report["cells"].values():
    for part, row in cell["parts"].items():
      if part in TORCH_LESS:
        assert row["torch"] is None and row["ratio"] is None
        continue
      assert row["torch"]["median_ms"] > 0
      assert row["ratio"] == pytest.approx(row["rnnbench"]["median_ms"]
                                           / row["torch"]["median_ms"])
    assert cell["sum_of_parts"]["torch"]["median_ms"] > 0


def test_markdown_names_every_part(run):
  _, report, text = run
  for cell in ("lstm", "gru"):
    assert f"## {cell}" in text
  for part in [*step_breakdown.PARTS, "sum_of_parts"]:
    assert text.count(f"| {part} |") == 2, part
  assert "python benchmarks/step_breakdown.py --rounds 1" in text
  assert "Load average" in text and "do not add up" in text
  if HAS_TORCH:
    assert text.count("With a recurrence that cost nothing") == 2
  assert report["environment"]["cpu_model"] in text


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_parts_compute_the_models_functions(cell):
  """Chained, the forward parts give the model's RNN outputs and training loss; the
  embedding's backward is the scatter-add; the optimizer parts split Adam's update."""
  config = step_breakdown.make_config(cell, SHAPES)
  (batch,), _ = step_breakdown.make_batches("synthetic", SHAPES, count=1)
  state = train.create_train_state(config, 20, jax.random.PRNGKey(0))
  key = jax.random.key(1)
  parts = step_breakdown.part_functions(config, state, batch, key)
  call = lambda name, *args: jax.jit(parts[name][0])(*args)
  fixed = lambda name: parts[name][1]
  x, y, w = (jnp.asarray(a) for a in batch)
  p, rnn = state.params, state.params["rnn"]

  emb = call("embedding_fwd", p["embedding"]["embeddings"], x)
  xw = call("projection_fwd", emb, rnn["kernel"])
  hs = call("recurrence_fwd", xw, rnn["bias"], rnn["recurrent_kernel"])
  hs = jnp.swapaxes(hs, 0, 1)
  model_hs = state.apply_fn({"params": p}, x, method="rnn_outputs")
  np.testing.assert_allclose(hs, model_hs, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(call("rnn_layer_fwd", emb, rnn), model_hs, rtol=1e-6, atol=1e-6)
  loss, _ = call("head_fwd_bwd", {k: p[k] for k in ("dense_1", "dense_2")}, hs)
  logits = state.apply_fn({"params": p}, x, train=True, return_logits=True,
                          rngs={"dropout": key})
  model_loss = optim.batch_loss(optim.make_loss(config.train.loss)(logits, y), w)
  np.testing.assert_allclose(loss, model_loss, rtol=1e-6)

  table, tokens, d_emb = fixed("embedding_bwd")
  expected = np.zeros(table.shape, np.float32)
  np.add.at(expected, np.asarray(tokens), np.asarray(d_emb))
  np.testing.assert_allclose(call("embedding_bwd", table, tokens, d_emb), expected, atol=1e-5)
  emb_, kernel, d_z = fixed("projection_bwd")
  d_emb_, d_kernel = call("projection_bwd", emb_, kernel, d_z)
  rows = np.asarray(jnp.swapaxes(emb_, 0, 1)).reshape(-1, emb_.shape[-1])
  np.testing.assert_allclose(d_kernel, rows.T @ np.asarray(d_z).reshape(-1, d_z.shape[-1]),
                             rtol=1e-5, atol=1e-5)
  assert d_emb_.shape == emb_.shape

  everything, _ = call("optimizer_all", *fixed("optimizer_all"))
  embedding, _ = call("optimizer_embedding", *fixed("optimizer_embedding"))
  rest, _ = call("optimizer_rest", *fixed("optimizer_rest"))
  for split in (embedding, rest):
    jax.tree.map(np.testing.assert_array_equal, split, {k: everything[k] for k in split})
  assert not np.array_equal(everything["embedding"]["embeddings"], p["embedding"]["embeddings"])


def test_free_recurrence_is_scoped():
  """Inside ``free_recurrence`` the recurrences (fused, C++, dispatched) are tanh of xw's
  first gate block (no loop); outside, the real kernels again."""
  from rnnbench import activations, fused_rnn  # pylint: disable=g-import-not-at-top
  real = fused_rnn.lstm
  xw, b, u = jnp.ones((3, 2, 8)), jnp.arange(8.0) / 8, jnp.zeros((2, 8))
  from rnnbench import cpu_rnn, pallas_rnn  # pylint: disable=g-import-not-at-top
  reals = [(m, m.lstm, m.gru) for m in (fused_rnn, cpu_rnn, pallas_rnn)]
  with step_breakdown.free_recurrence():
    got = fused_rnn.lstm(activations.hard_sigmoid, xw, b, u)
    np.testing.assert_allclose(got, jnp.tanh(xw[..., :2] + b[:2]))
    assert fused_rnn.gru is fused_rnn.lstm
    # what impl="auto" and "cpu" cells call (with their unroll and mode arguments)
    np.testing.assert_allclose(pallas_rnn.lstm(activations.hard_sigmoid, xw, b, u, 1, "auto"), got)
    assert cpu_rnn.lstm is cpu_rnn.gru is fused_rnn.lstm
  assert fused_rnn.lstm is real and fused_rnn.gru is not real
  for m, lstm, gru in reals:
    assert m.lstm is lstm and m.gru is gru
