"""The one-pass embedding update (rnnbench.embedding_adam) against the dense Keras Adam step:
the kernel against a numpy Keras Adam, whole train steps against train._train_step's dense
path (several steps, repeated and padding tokens, a schedule, masked and reordered tokens),
and when the train step uses it."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_same_training, default_config_with, in_ci
from rnnbench import cpu_kernels
from rnnbench import embedding_adam
from rnnbench import optim
from rnnbench import train
from rnnbench.configs import default


@pytest.fixture(autouse=True)
def _compiler():
  if cpu_kernels.compiler() is None:
    message = "no C++ compiler ($CXX, c++, g++, clang++) to build rnnbench/cpu_kernels.cc"
    if in_ci():
      pytest.fail(message + " (CI is set: the CPU kernels must be tested)")
    pytest.skip(message)


def _numpy_keras_adam(p, m, v, ids, rows, lr_t, b1=0.9, b2=0.999, eps=1e-7):
  g = np.zeros_like(p)
  ids = np.where(ids < 0, ids + p.shape[0], ids)  # as jnp.take reads them
  keep = (ids >= 0) & (ids < p.shape[0])
  np.add.at(g, ids[keep], rows[keep])
  f = np.float32
  m = f(b1) * m + f(1 - b1) * g
  v = f(b2) * v + f(1 - b2) * (g * g)
  return p + (f(-lr_t) * m) / (np.sqrt(v) + f(eps)), m, v


def test_kernel_is_keras_adam():
  """Every row moves and decays; a repeated id's rows are summed; ids are read as jnp.take
  reads them (those in [-V, 0) count from the end, those outside [-V, V) are dropped, as the
  dense path's scatter drops them); the result is Keras' Adam to float32 rounding."""
  rng = np.random.default_rng(0)
  vocab, width = 1000, 24
  p, m = (rng.standard_normal((vocab, width)).astype(np.float32) for _ in range(2))
  v = rng.random((vocab, width)).astype(np.float32)
  ids = rng.integers(0, vocab, 300).astype(np.int32)
  ids[:40] = 7  # one row many times
  ids[40:46] = [-1, vocab, vocab + 5, -100, 2 ** 30, -vocab - 1]
  rows = rng.standard_normal((300, width)).astype(np.float32)
  hyper = optim.KerasAdamHyperparams(1e-3, 0.9, 0.999, 1e-7)
  lr_t = np.float32(0.0123)
  got = jax.jit(lambda *a: embedding_adam.update(*a, hyper))(p, m, v, ids, rows, lr_t)
  want = _numpy_keras_adam(p, m, v, ids, rows, lr_t)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=2e-6, atol=1e-7)
  untouched = np.setdiff1d(np.arange(vocab), ids % vocab)
  assert len(untouched) > 500
  np.testing.assert_allclose(got[1][untouched], np.float32(0.9) * m[untouched], rtol=1e-7)


def test_lookup_is_jnp_take():
  """The rows' lookup is jnp.take's (ids in [-V, 0) from the end, NaN rows outside [-V, V)),
  over any shape of ids; its gradient goes to the zeros it is given, none to the table."""
  rng = np.random.default_rng(2)
  vocab, width = 700, 20
  table = jnp.asarray(rng.standard_normal((vocab, width)).astype(np.float32))
  ids = rng.integers(0, vocab, (6, 1100)).astype(np.int32)  # more rows than one block
  ids[0, :6] = [-1, -vocab, vocab, -vocab - 1, 2 ** 30, 0]
  ids = jnp.asarray(ids)
  rows = jnp.zeros(ids.shape + (width,), jnp.float32)
  got = jax.jit(embedding_adam.lookup_at_zero)(table, ids, rows)
  np.testing.assert_array_equal(got, jnp.take(table, ids, axis=0))
  assert np.isnan(got[0, 2:5]).all() and not np.isnan(got[0, 5:]).any()
  cot = jnp.asarray(rng.standard_normal(rows.shape).astype(np.float32))
  grads = lambda lookup: jax.grad(lambda t, r: jnp.sum(jnp.nan_to_num(lookup(t, ids, r)) * cot),
                                  argnums=(0, 1))(table, rows)
  g_table, g_rows = grads(embedding_adam.lookup_at_zero)
  want_table, want_rows = grads(lambda t, i, r: jax.lax.stop_gradient(jnp.take(t, i, axis=0)) + r)
  np.testing.assert_array_equal(g_rows, want_rows)
  assert np.count_nonzero(g_rows) > 0.9 * g_rows.size
  np.testing.assert_array_equal(g_table, want_table)
  np.testing.assert_array_equal(g_table, np.zeros_like(table))


def _batches(rng, count, vocab=20000):
  out = []
  for _ in range(count):
    x = rng.integers(1, vocab, (32, 100)).astype(np.int32)
    x[0, :60] = 7       # a token many times in a batch
    x[1:4, :30] = 0     # padding
    x[4, :3] = -1       # the table's last row, as jnp.take reads it
    out.append((jnp.asarray(x), jnp.asarray(rng.integers(0, 20, 32).astype(np.int32)),
                jnp.ones(32, jnp.float32)))
  return out


def _run(config, steps=3, fast=True, monkeypatch=None):
  state = train.create_train_state(config, 20, jax.random.PRNGKey(0), total_steps=10)
  assert embedding_adam.applies(state)
  if not fast:
    monkeypatch.setattr(embedding_adam, "applies", lambda s: False)
  step = jax.jit(functools.partial(train._train_step,
                                   loss_fn=optim.keras_categorical_crossentropy))
  metrics = train.zero_metrics()
  for batch in _batches(np.random.default_rng(1), steps):
    state, metrics = step(state, batch, metrics)
  monkeypatch.undo()
  return state, metrics


def _rel(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / (np.max(np.abs(np.asarray(a))) + 1e-30))


@pytest.mark.parametrize("options", [
    {},  # the notebook's
    {"model.mask_padding": True, "model.bidirectional": True, "model.num_layers": 2,
     "train.schedule": "warmup_cosine", "train.warmup_steps": 2},
])
def test_train_steps_equal_the_dense_update(options, monkeypatch):
  """Three train steps with the one-pass update give the dense path's params, moments, step
  count and metrics, to float32 rounding (the masked, bidirectional model looks its tokens
  up in another order: the recorded tokens are the ones it used)."""
  config = default_config_with(options)
  got, got_metrics = _run(config, monkeypatch=monkeypatch)
  want, want_metrics = _run(config, fast=False, monkeypatch=monkeypatch)
  assert int(got.step) == int(want.step) == 3 and int(got.opt_state.count) == 3
  assert_same_training(want, got, want_metrics, got_metrics)
  table = got.params["embedding"]["embeddings"]
  assert not np.allclose(table, train.create_train_state(config, 20, jax.random.PRNGKey(0))
                         .params["embedding"]["embeddings"])


def test_cuda_export_has_the_dense_update():
  """Lowered for CUDA on this CPU host the train step has no CPU custom call (the dense
  update); lowered for cpu it calls the kernel."""
  config = default.get_config()
  config.model.impl = "fused"
  state = jax.eval_shape(lambda: train.create_train_state(config, 20, jax.random.key(0)))
  batch = (jnp.zeros((32, 100), jnp.int32), jnp.zeros(32, jnp.int32), jnp.ones(32))
  step = jax.jit(functools.partial(train._train_step, loss_fn=optim.keras_categorical_crossentropy))
  cuda = jax.export.export(step, platforms=["cuda"])(state, batch, train.zero_metrics())
  assert "rnnbench_embedding_adam" not in cuda.mlir_module()
  assert "rnnbench_embedding_adam" in step.lower(state, batch, train.zero_metrics()).as_text()


def test_when_it_applies(monkeypatch):
  """Keras' Adam alone (not optax's adam, not under gradient clipping), a float32 step, and
  the kernels available; the jitted, donated train step runs it (and keeps running)."""
  config = default.get_config()
  state = lambda c: train.create_train_state(c, 20, jax.random.PRNGKey(0))
  assert embedding_adam.applies(state(config))
  for key, value in (("grad_clip", 1.0), ("optimizer", "adam"), ("dtype", "bfloat16")):
    other = default.get_config()
    other.train[key] = value
    assert not embedding_adam.applies(state(other)), key
  monkeypatch.setattr(cpu_kernels, "available", lambda: False)
  assert not embedding_adam.applies(state(config))
  monkeypatch.undo()
  s, metrics = state(config), train.zero_metrics()
  for batch in _batches(np.random.default_rng(2), 2):
    s, metrics = train.train_step(s, batch, metrics, loss_fn=optim.keras_categorical_crossentropy)
  assert int(s.step) == 2 and np.isfinite(float(metrics["loss"]))
