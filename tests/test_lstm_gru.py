"""LSTM / GRU cells: Keras layout, initialisers, and equations against a NumPy reference."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnbench import activations
from rnnbench import cells
from rnnbench import scan

B, T, D, U = 3, 7, 5, 4
VARIANTS = [("lstm", False), ("gru", False), ("gru", True)]
IMPLS = ["fused", "nn_scan"]  # rnnbench.fused_rnn's kernels, or nn.scan + autodiff


def _cell(name, reset_after=False, gate="hard_sigmoid", features=U, **kw):
  return cells.create({"cell": name, "hidden_size": features, "reset_after": reset_after,
                       "recurrent_activation": gate, "scan": "sequential", "unroll": 1}, **kw)


def _np_gate(name):
  return {"sigmoid": lambda x: 1 / (1 + np.exp(-x)),
          "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0, 1)}[name]


def _reference(name, reset_after, gate, p, x):
  """Keras' equations one gate at a time (its implementation=1), in float64 NumPy."""
  k, r, b = (np.asarray(p[n], np.float64) for n in ("kernel", "recurrent_kernel", "bias"))
  g = _np_gate(gate)
  x = np.asarray(x, np.float64)
  h, c = np.zeros((x.shape[0], U)), np.zeros((x.shape[0], U))
  blk = lambda m, j: m[..., j * U:(j + 1) * U]
  out = []
  for t in range(x.shape[1]):
    xt = x[:, t]
    if name == "lstm":
      z = [xt @ blk(k, j) + h @ blk(r, j) + blk(b, j) for j in range(4)]
      c = g(z[1]) * c + g(z[0]) * np.tanh(z[2])
      h = g(z[3]) * np.tanh(c)
    else:
      b_in, b_rec = (b[0], b[1]) if reset_after else (b, np.zeros_like(b))
      zg = g(xt @ blk(k, 0) + blk(b_in, 0) + h @ blk(r, 0) + blk(b_rec, 0))
      rg = g(xt @ blk(k, 1) + blk(b_in, 1) + h @ blk(r, 1) + blk(b_rec, 1))
      if reset_after:
        hh = np.tanh(xt @ blk(k, 2) + blk(b_in, 2) + rg * (h @ blk(r, 2) + blk(b_rec, 2)))
      else:
        hh = np.tanh(xt @ blk(k, 2) + blk(b_in, 2) + (rg * h) @ blk(r, 2))
      h = zg * h + (1 - zg) * hh
    out.append(h)
  return np.stack(out, 1)


@pytest.fixture(scope="module")
def inputs():
  return jax.random.normal(jax.random.key(0), (B, T, D))


def _random_params(cell, x, seed=1):
  shapes = jax.eval_shape(cell.init, jax.random.key(0), x)["params"]
  keys = iter(jax.random.split(jax.random.key(seed), 3))
  return {n: 0.8 * jax.random.normal(next(keys), s.shape) for n, s in shapes.items()}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("name,reset_after", VARIANTS)
def test_matches_numpy_reference(name, reset_after, gate, impl, inputs):
  cell = _cell(name, reset_after, gate, impl=impl)
  p = _random_params(cell, inputs)
  got = cell.apply({"params": p}, inputs)
  assert got.shape == (B, T, U)
  np.testing.assert_allclose(got, _reference(name, reset_after, gate, p, inputs), atol=1e-5)
  unrolled = _cell(name, reset_after, gate, unroll=3, impl=impl).apply({"params": p}, inputs)
  np.testing.assert_allclose(unrolled, got, atol=1e-6)


@pytest.mark.parametrize("name,reset_after,count", [
    ("lstm", False, 35_800), ("gru", False, 26_850), ("gru", True, 27_000)])
def test_keras_layout_and_counts(name, reset_after, count):
  cell = _cell(name, reset_after, features=50)
  shapes = jax.eval_shape(cell.init, jax.random.key(0), jnp.zeros((1, 2, 128)))["params"]
  gates = 4 if name == "lstm" else 3
  bias = (2, gates * 50) if reset_after else (gates * 50,)
  assert {n: s.shape for n, s in shapes.items()} == {
      "kernel": (128, gates * 50), "recurrent_kernel": (50, gates * 50), "bias": bias}
  assert sum(s.size for s in shapes.values()) == count == cell.param_count(128)


@pytest.mark.parametrize("name,reset_after", VARIANTS)
def test_keras_initialisers(name, reset_after):
  cell = _cell(name, reset_after, features=50)
  p = cell.init(jax.random.key(0), jnp.zeros((1, 2, 128)))["params"]
  k, r, b = np.asarray(p["kernel"]), np.asarray(p["recurrent_kernel"]), np.asarray(p["bias"])
  limit = np.sqrt(6 / (k.shape[0] + k.shape[1]))  # glorot_uniform over the whole kernel
  assert np.abs(k).max() <= limit and np.std(k) == pytest.approx(limit / np.sqrt(3), rel=0.05)
  np.testing.assert_allclose(r @ r.T, np.eye(50), atol=1e-5)  # orthogonal (u, gates*u)
  expected_bias = np.zeros_like(b)
  if name == "lstm":
    expected_bias[50:100] = 1.0  # unit_forget_bias
  np.testing.assert_array_equal(b, expected_bias)


def test_parallel_scan_rejected(inputs):
  for name in ("lstm", "gru"):
    with pytest.raises(ValueError, match="sequential"):
      _cell(name, scan="parallel").init(jax.random.key(0), inputs)


def test_activations():
  x = jnp.linspace(-4.0, 4.0, 33)
  np.testing.assert_allclose(activations.get_activation("hard_sigmoid")(x),
                             np.clip(0.2 * np.asarray(x) + 0.5, 0, 1), atol=1e-7)
  np.testing.assert_allclose(activations.get_activation("sigmoid")(x), jax.nn.sigmoid(x))
  assert activations.get_activation("linear")(x) is x
  with pytest.raises(ValueError, match="known"):
    activations.get_activation("hard_swish")


class _Hosts(nn.Module):

  @nn.compact
  def __call__(self, x):
    w = self.param("w", nn.initializers.normal(), (x.shape[-1], 2))
    step = lambda h, x_t, w: (jnp.tanh(x_t @ w + h),) * 2
    h0 = jnp.zeros((x.shape[0], 2))
    _, ys = scan.run(self, step, h0, x, consts=(w,), unroll=2)
    return ys


def test_scan_helpers(inputs):
  model = _Hosts()
  v = model.init(jax.random.key(0), inputs)
  assert jax.tree.map(jnp.shape, v["params"]) == {"w": (D, 2)}
  ys = model.apply(v, inputs)
  h, w, want_y = np.zeros((B, 2)), v["params"]["w"], []
  for t in range(T):
    h = np.tanh(inputs[:, t] @ w + h)
    want_y.append(h)
  np.testing.assert_allclose(ys, np.stack(want_y, 1), atol=1e-6)
