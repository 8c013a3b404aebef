"""The fast paths against the plain ones: the custom-VJP kernels (rnnbench.fused_rnn) vs the
nn.scan cells differentiated by autodiff, and the whole model's gradients through each."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnbench.configs import default
from rnnbench import activations
from rnnbench import cells
from rnnbench import fused_rnn
from rnnbench import models
from rnnbench import optim
from rnnbench import scan

B, T, D, U = 3, 11, 5, 4
VARIANTS = [("lstm", False), ("gru", False), ("gru", True)]
GATES = ["sigmoid", "hard_sigmoid"]
TOL = 1e-5


def _cell(name, reset_after, gate, impl, unroll=1, features=U):
  return cells.create({"cell": name, "hidden_size": features, "reset_after": reset_after,
                       "recurrent_activation": gate, "scan": "sequential", "unroll": unroll,
                       "impl": impl})


def _params(cell, x, seed):
  shapes = jax.eval_shape(cell.init, jax.random.key(0), x)["params"]
  keys = iter(jax.random.split(jax.random.key(seed), len(shapes)))
  return {n: 0.9 * jax.random.normal(next(keys), s.shape) for n, s in shapes.items()}


def _value_and_grads(cell, params, x, weights):
  """The outputs, and the gradients (params and x) of a loss that weighs every output."""
  loss = lambda p, x: jnp.sum(jnp.sin(cell.apply({"params": p}, x)) * weights)
  return cell.apply({"params": params}, x), jax.grad(loss, argnums=(0, 1))(params, x)


def _max_diff(a, b):
  return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("unroll", [1, 3])
@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("name,reset_after", VARIANTS)
def test_fused_equals_autodiff(name, reset_after, gate, unroll):
  x = 1.5 * jax.random.normal(jax.random.key(2), (B, T, D))
  weights = jax.random.normal(jax.random.key(3), (B, T, U))
  plain = _cell(name, reset_after, gate, "nn_scan")
  fused = _cell(name, reset_after, gate, "fused", unroll=unroll)
  params = _params(plain, x, seed=4)
  want_y, want_g = jax.jit(lambda p, x: _value_and_grads(plain, p, x, weights))(params, x)
  got_y, got_g = jax.jit(lambda p, x: _value_and_grads(fused, p, x, weights))(params, x)
  np.testing.assert_allclose(got_y, want_y, atol=1e-6)  # the same forward ops
  assert jax.tree.structure(got_g) == jax.tree.structure(want_g)
  assert _max_diff(got_g, want_g) <= TOL
  # Some gates saturate (hard sigmoid clips), so the masks are exercised.
  if gate == "hard_sigmoid":
    xw = x @ params["kernel"]
    assert float(jnp.mean(jnp.abs(xw) > 2.5)) > 0.05


def test_hard_sigmoid_derivative_is_clips():
  """The custom JVP (selects) gives jnp.clip's autodiff derivative bit for bit, corners too."""
  clip = lambda z: jnp.clip(0.2 * z + 0.5, 0.0, 1.0)
  z = jnp.concatenate([jnp.array([-2.5, 2.5, 0.0, -3.0, 3.0, 1.0, 1e-30]),
                       4 * jax.random.normal(jax.random.key(0), (1000,))])
  ct = jax.random.normal(jax.random.key(1), z.shape)
  np.testing.assert_array_equal(activations.hard_sigmoid(z), clip(z))
  np.testing.assert_array_equal(jax.vjp(activations.hard_sigmoid, z)[1](ct)[0],
                                jax.vjp(clip, z)[1](ct)[0])
  np.testing.assert_array_equal(jax.vmap(jax.grad(activations.hard_sigmoid))(z[:6]),
                                np.float32([0.1, 0.1, 0.2, 0.0, 0.0, 0.2]))


def test_forward_mode_needs_nn_scan():
  """The kernels define reverse mode only; impl="nn_scan" differentiates forward too."""
  x = jax.random.normal(jax.random.key(0), (B, T, D))
  for impl in ("fused", "nn_scan"):
    cell = _cell("gru", False, "hard_sigmoid", impl)
    params = cell.init(jax.random.key(1), x)["params"]
    jvp = lambda: jax.jvp(lambda x: cell.apply({"params": params}, x), (x,), (x,))
    if impl == "fused":
      with pytest.raises(TypeError, match="custom_vjp"):
        jvp()
    else:
      assert jvp()[1].shape == (B, T, U)


@pytest.mark.parametrize("name,reset_after", VARIANTS)
def test_notebook_shapes_jit_and_vmap(name, reset_after):
  """The notebook's sizes (50 units, 128 in), and the kernels under vmap."""
  x = jax.random.normal(jax.random.key(5), (4, 30, 128))
  plain = _cell(name, reset_after, "hard_sigmoid", "nn_scan", features=50)
  fused = _cell(name, reset_after, "hard_sigmoid", "fused", features=50)
  params = plain.init(jax.random.key(6), x)["params"]
  weights = jax.random.normal(jax.random.key(7), (4, 30, 50))
  _, want = jax.jit(lambda p: _value_and_grads(plain, p, x, weights))(params)
  _, got = jax.jit(lambda p: _value_and_grads(fused, p, x, weights))(params)
  assert _max_diff(got, want) <= TOL
  per_example = jax.vmap(lambda xi: fused.apply({"params": params}, xi[None])[0])(x)
  np.testing.assert_allclose(per_example, fused.apply({"params": params}, x), atol=1e-6)


@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("name,reset_after", VARIANTS)
def test_model_gradients_fused_vs_nn_scan(name, reset_after, gate):
  """The whole classifier's loss gradients (embedding, rnn, dense) through either path."""
  grads = {}
  for impl in ("nn_scan", "fused"):
    config = default.get_config()
    config.model.update(cell=name, reset_after=reset_after, recurrent_activation=gate)
    config.model.impl = impl
    model = models.create_model(config, num_classes=20)
    tokens = jax.random.randint(jax.random.key(8), (8, 100), 0, 20000)
    labels = jax.random.randint(jax.random.key(9), (8,), 0, 20)
    params = model.init(jax.random.key(10), tokens)["params"]
    loss = lambda p: jnp.mean(optim.keras_categorical_crossentropy(
        model.apply({"params": p}, tokens, return_logits=True), labels))
    grads[impl] = jax.jit(jax.grad(loss))(params)
  assert _max_diff(grads["fused"], grads["nn_scan"]) <= TOL


def test_kernels_directly():
  """The kernels' time-major API and their argument checks."""
  gate = activations.hard_sigmoid
  xw = jax.random.normal(jax.random.key(0), (T, B, 4 * U))
  u = jax.random.normal(jax.random.key(1), (U, 4 * U))
  b = jnp.zeros(4 * U)
  assert fused_rnn.lstm(gate, xw, b, u).shape == (T, B, U)
  assert fused_rnn.gru(gate, xw[..., :3 * U], b[:3 * U], u[:, :3 * U], 2).shape == (T, B, U)
  assert fused_rnn.gru_reset_after(gate, xw[..., :3 * U], b[:3 * U], u[:, :3 * U],
                                   b[:3 * U]).shape == (T, B, U)
  with pytest.raises(ValueError, match="unroll"):
    fused_rnn.lstm(gate, xw, b, u, 0)


def test_impl_and_unroll_options():
  x = jnp.zeros((1, 2, 3))
  with pytest.raises(ValueError, match="impl"):
    _cell("lstm", False, "sigmoid", "cudnn").init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="unroll"):
    _cell("gru", False, "sigmoid", "fused", unroll=0).init(jax.random.key(0), x)
  assert scan.resolve_unroll("auto") >= 1
  assert scan.resolve_unroll(4) == 4
  assert cells.get("lstm").impl == cells.get("gru").impl == "fused"  # the default
