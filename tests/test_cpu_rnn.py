"""The C++ CPU kernels (rnnbench.cpu_rnn) against the pure-JAX fused ones (rnnbench.fused_rnn):
outputs and gradients at the notebook's shapes and at shapes that exercise every tail (batch
rows not a multiple of the row block, units not a multiple of the vector width), the hard
sigmoid's corners, the whole cell through ``impl``, dispatch and lowering, the build; the
input projection of an embedding's rows once per distinct token, alone and in train steps."""

import functools
import pathlib
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnbench import activations
from rnnbench import cells
from rnnbench import cpu_kernels
from rnnbench import cpu_rnn
from rnnbench import fused_rnn
from rnnbench import models
from rnnbench import optim
from rnnbench import pallas_rnn
from rnnbench import scan as scan_lib
from rnnbench import train
from rnnbench.configs import default
from conftest import assert_same_training, default_config_with, in_ci

GATES = {"hard_sigmoid": activations.hard_sigmoid, "sigmoid": jax.nn.sigmoid}
KERNELS = {"lstm": (4, fused_rnn.lstm, cpu_rnn.lstm), "gru": (3, fused_rnn.gru, cpu_rnn.gru)}
# (T, B, H): the notebook's; one row, odd rows and units (tails of the 8-row blocks and of
# the 16-wide vectors); more units than one vector block, batch over several blocks
SHAPES = [(100, 32, 50), (7, 1, 3), (11, 13, 37), (5, 20, 70)]


@pytest.fixture(autouse=True)
def _compiler():
  """These tests need a C++ compiler: skipped without one (it is rnnbench's optional fast
  path; impl="auto" runs fused_rnn there), except under CI, where it must be present."""
  if cpu_kernels.compiler() is None:
    message = "no C++ compiler ($CXX, c++, g++, clang++) to build rnnbench/cpu_kernels.cc"
    if in_ci():
      pytest.fail(message + " (CI is set: the CPU kernels must be tested)")
    pytest.skip(message)


def _inputs(cell, t, b, h, seed=0):
  gates = KERNELS[cell][0]
  k = jax.random.split(jax.random.key(seed), 4)
  return (jax.random.normal(k[0], (t, b, gates * h)), 0.3 * jax.random.normal(k[1], (gates * h,)),
          (1.5 / np.sqrt(h)) * jax.random.normal(k[2], (h, gates * h)),
          jax.random.normal(k[3], (t, b, h)))


def _rel(a, b):
  return float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(a)) + 1e-30))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gate", sorted(GATES))
@pytest.mark.parametrize("cell", sorted(KERNELS))
def test_equals_fused(cell, gate, shape):
  """Every h_t, and the gradients of xw, b and u, equal fused_rnn's to float32 rounding."""
  _, fused, cpu = KERNELS[cell]
  g = GATES[gate]
  xw, b, u, w = _inputs(cell, *shape)
  loss = lambda f: (lambda *a: jnp.sum(jnp.sin(f(g, *a)) * w))
  want_h = fused(g, xw, b, u)
  got_h = jax.jit(cpu, static_argnums=0)(g, xw, b, u)
  assert got_h.shape == want_h.shape
  assert _rel(want_h, got_h) < 2e-6
  want = jax.grad(loss(fused), argnums=(0, 1, 2))(xw, b, u)
  got = jax.jit(jax.grad(loss(cpu), argnums=(0, 1, 2)))(xw, b, u)
  for name, x, y in zip(("xw", "b", "u"), want, got):
    assert _rel(x, y) < 1e-5, (name, _rel(x, y))


def _hard_sigmoid_np(x):
  s = np.float32(0.2) * x + np.float32(0.5)  # numpy rounds twice (no fused multiply-add)
  return np.clip(s, 0, 1), s


def _hard_sigmoid_vjp_np(x, t):
  """autodiff's derivative of jnp.clip(s, 0, 1) (min and max split a tie evenly), times t."""
  _, s = _hard_sigmoid_np(x)
  lo = np.where(s > 0, 1, np.where(s == 0, 0.5, 0)).astype(np.float32)
  hi = np.where(s < 1, 1, np.where(s == 1, 0.5, 0)).astype(np.float32)
  return np.float32(0.2) * (t * (lo * hi))


def _one_step_grad_np(cell, z, u, w):
  """The gradient of sum(h_1 w) for xw, one step from zero state (b = 0), in numpy."""
  h = u.shape[0]
  hs = lambda x: _hard_sigmoid_np(x)[0]
  if cell == "lstm":
    zi, zf, zc, zo = np.split(z, 4, axis=-1)
    tz = np.tanh(zc)
    c = hs(zf) * 0 + hs(zi) * tz
    tc = np.tanh(c)
    dc = (w * hs(zo)) * (1 - tc * tc)
    return np.concatenate([_hard_sigmoid_vjp_np(zi, dc * tz), _hard_sigmoid_vjp_np(zf, dc * 0),
                           (dc * hs(zi)) * (1 - tz * tz), _hard_sigmoid_vjp_np(zo, w * tc)], -1)
  s_z, s_r, s_h = z[..., :h], z[..., h:2 * h], z[..., 2 * h:]
  th = np.tanh(s_h)
  ds_h = (w * (1 - hs(s_z))) * (1 - th * th)
  ds_r = _hard_sigmoid_vjp_np(s_r, (ds_h @ u[:, 2 * h:].T) * 0)
  return np.concatenate([_hard_sigmoid_vjp_np(s_z, -(w * th)), ds_r, ds_h], -1)


@pytest.mark.parametrize("cell", sorted(KERNELS))
def test_hard_sigmoid_corners(cell):
  """Pre-activations exactly on the hard sigmoid's corners (0.2 z + 0.5 = 0 or 1, rounded
  twice): the derivative there is half the inside one, as autodiff of jnp.clip gives it
  (``activations.hard_sigmoid``). The reference is numpy: XLA may fuse 0.2 z + 0.5 into one
  multiply-add, which never lands on a corner."""
  gates, _, cpu = KERNELS[cell]
  h = 4
  corners = np.array([-2.5, 2.5, -3.0, 0.5] * (gates * h // 4), np.float32)
  z = np.broadcast_to(corners, (1, 2, gates * h)).copy()  # one step from h = 0: z = xw
  b, u = jnp.zeros((gates * h,)), 0.1 * jnp.ones((h, gates * h))
  w = np.arange(1.0, 1.0 + 2 * h, dtype=np.float32).reshape(1, 2, h)
  assert (_hard_sigmoid_np(np.float32(-2.5))[1] == 0) and (_hard_sigmoid_np(np.float32(2.5))[1] == 1)
  got = jax.jit(jax.grad(lambda xw: jnp.sum(cpu(activations.hard_sigmoid, xw, b, u) * w)))(z)
  want = _one_step_grad_np(cell, z, np.asarray(u), w)
  assert np.count_nonzero(want) > 0
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name,impl_mode", [("lstm", "cpu"), ("gru", "cpu"),
                                            ("lstm", "auto"), ("gru", "auto")])
def test_cell_impl(name, impl_mode):
  """The Keras cell with impl="cpu" / "auto" (the C++ kernels on this one-device CPU host)
  equals impl="fused": outputs, and the gradients of every parameter and of the input."""
  x = jax.random.normal(jax.random.key(1), (9, 23, 6))
  mk = lambda impl: cells.create({"cell": name, "hidden_size": 21, "reset_after": False,
                                  "recurrent_activation": "hard_sigmoid",
                                  "scan": "sequential", "unroll": 1, "impl": impl})
  params = mk("fused").init(jax.random.key(0), x)["params"]
  weights = jax.random.normal(jax.random.key(2), (9, 23, 21))

  def run(impl):
    cell = mk(impl)
    loss = lambda p, x: jnp.sum(jnp.tanh(cell.apply({"params": p}, x)) * weights)
    return cell.apply({"params": params}, x), jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)

  (h_want, g_want), (h_got, g_got) = run("fused"), run(impl_mode)
  assert _rel(h_want, h_got) < 2e-6
  for a, b in zip(jax.tree.leaves(g_want), jax.tree.leaves(g_got)):
    assert _rel(a, b) < 1e-5


def test_lowering_by_platform():
  """"auto" lowered for cpu calls the C++ kernels; lowered for cuda (from this host) it has
  the Pallas kernel and no CPU custom call; "fused" never calls them."""
  g = activations.hard_sigmoid
  xw, b, u, w = _inputs("lstm", 10, 4, 8)
  loss = lambda mode: (lambda xw, b, u: jnp.sum(pallas_rnn.lstm(g, xw, b, u, 1, mode) * w))
  cpu_text = jax.jit(jax.grad(loss("auto"), argnums=(0, 1, 2))).lower(xw, b, u).as_text()
  assert "rnnbench_lstm_fwd" in cpu_text and "rnnbench_lstm_bwd" in cpu_text
  triton = [jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
  exported = jax.export.export(jax.jit(jax.grad(loss("auto"), argnums=(0, 1, 2))),
                               platforms=["cuda"], disabled_checks=triton)(xw, b, u)
  cuda_text = exported.mlir_module()
  assert "rnnbench_lstm" not in cuda_text and "__gpu$xla.gpu.triton" in cuda_text
  fused_text = jax.jit(lambda *a: fused_rnn.lstm(g, *a)).lower(xw, b, u).as_text()
  assert "rnnbench_lstm" not in fused_text


def test_vmap_and_inference_call():
  """Under vmap (an extra leading axis) the kernels equal fused_rnn's, per example."""
  g = jax.nn.sigmoid
  xw, b, u, _ = _inputs("gru", 6, 5, 9)
  stacked = jnp.stack([xw, 2 * xw])
  got = jax.vmap(lambda x: cpu_rnn.gru(g, x, b, u))(stacked)
  want = jax.vmap(lambda x: fused_rnn.gru(g, x, b, u))(stacked)
  assert _rel(want, got) < 2e-6


def test_what_it_refuses():
  """impl="cpu" names what it cannot run, and the fix; "auto" falls back to fused there."""
  x = jnp.ones((2, 3, 4))
  make = lambda **kw: cells.create({"cell": "gru", "hidden_size": 5, "scan": "sequential",
                                    "unroll": 1, "impl": "cpu", **kw})
  with pytest.raises(ValueError, match="reset_after=True GRU; use config.model.impl='auto'"):
    make(reset_after=True, recurrent_activation="sigmoid").init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="not tanh in float32; use config.model.impl='fused'"):
    make(reset_after=False, recurrent_activation="tanh").init(jax.random.key(0), x)
  assert not cpu_rnn.supports(activations.hard_sigmoid, jnp.bfloat16)
  assert pallas_rnn.resolve_impl("auto", "cpu", cell="gru", dtype="bfloat16") == "fused"


def test_build_key_and_errors(tmp_path, monkeypatch):
  """The library's name hashes its source (an edit builds anew); a failing compiler raises
  BuildError with its message and leaves no file behind; a missing one says what to do."""
  cxx = cpu_kernels.compiler()
  edited = tmp_path / "cpu_kernels.cc"
  edited.write_text(cpu_kernels.SOURCE.read_text() + "\n// edited\n")
  before = cpu_kernels.library_path(cxx)
  monkeypatch.setattr(cpu_kernels, "SOURCE", edited)
  assert cpu_kernels.library_path(cxx) != before
  edited.write_text("this is not C++\n")
  out = tmp_path / "lib" / "x.so"
  with pytest.raises(cpu_kernels.BuildError, match="failed"):
    cpu_kernels.build(out, cxx)
  assert not out.exists() and list(out.parent.iterdir()) == []
  monkeypatch.setenv(cpu_kernels.KERNELS_ENV, str(tmp_path / "kernels"))
  assert cpu_kernels.library_path(cxx).parent == tmp_path / "kernels"
  monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
  assert cpu_kernels.compiler() is None


def test_unavailable_warns_once(monkeypatch):
  """Where the kernels do not build, available() is False with one warning naming why."""
  def fail():
    raise cpu_kernels.BuildError("no C++ compiler found")
  monkeypatch.setattr(cpu_kernels, "load", fail)
  cpu_kernels.available.cache_clear()
  try:
    with pytest.warns(RuntimeWarning, match="no C.. compiler found.*fused_rnn instead"):
      assert not cpu_kernels.available()
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      assert not cpu_kernels.available()  # cached: no second warning
  finally:
    cpu_kernels.available.cache_clear()
  monkeypatch.undo()
  assert cpu_kernels.available()


def test_source_is_shipped():
  """The C++ source is package data (an installed rnnbench can build it)."""
  assert cpu_kernels.SOURCE.exists() and cpu_kernels.SOURCE.parent == pathlib.Path(cpu_rnn.__file__).parent


def test_whole_run_builds_the_kernels_apart(tmp_path, monkeypatch):
  """benchmarks/whole_run.py builds the library once, timed, into the folder its runs then
  load from ($RNNBENCH_KERNELS), and says None (the runs use fused_rnn) where it cannot."""
  import sys  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
  import whole_run  # pylint: disable=g-import-not-at-top
  seconds = whole_run.build_kernels(tmp_path / "k", timeout=600)
  assert seconds is not None and seconds > 0
  assert [p.suffix for p in (tmp_path / "k").iterdir()] == [".so"]
  monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
  assert whole_run.build_kernels(tmp_path / "none", timeout=600) is None


# ----------------------------------------------------------------------------------------
# The input projection of an embedding's rows, once per distinct token (cpu_rnn.project)

# (B, T, D, G, vocab): the notebook's LSTM layer; odd sizes (tails of the 8-row blocks, of
# the 16-wide vectors, D not a multiple of 8); every token distinct
# distinct, over 256 groups with D not a multiple of 8 (the weight gradient's chunked tail)
PROJECTIONS = [(32, 100, 128, 200, 2000), (13, 7, 37, 63, 9), (3, 5, 16, 48, 10 ** 6),
               (32, 100, 37, 120, 2000)]


@pytest.mark.parametrize("shape", PROJECTIONS)
def test_project_equals_the_matmul(shape):
  """``project`` of gathered rows equals ``time_major(x) @ w``, and the gradients of the
  table and of ``w`` through the gather equal the matmul's, to float32 rounding (ids
  repeated, negative and huge: the kernel groups them by value)."""
  b, t, d, g, vocab = shape
  rng = np.random.default_rng(0)
  ids = rng.integers(0, vocab, (b, t)).astype(np.int32)
  ids[0, : t // 2] = 3
  ids[-1, -1] = -5 if vocab > 100 else ids[-1, -1]
  ids[1, : t // 2] = 2 ** 20 * np.arange(t // 2)  # multiples of a power of two: no pile-up
  table = jnp.asarray(rng.standard_normal((vocab, d)).astype(np.float32))
  w = jnp.asarray((rng.standard_normal((d, g)) / np.sqrt(d)).astype(np.float32))
  cot = jnp.asarray(rng.standard_normal((t, b, g)).astype(np.float32))
  ids = jnp.asarray(ids)
  gather = lambda table: jnp.take(table, ids, axis=0, mode="clip")
  want_fn = lambda table, w: scan_lib.time_major(gather(table)) @ w
  got_fn = lambda table, w: cpu_rnn.project(gather(table), ids, w)
  assert _rel(want_fn(table, w), jax.jit(got_fn)(table, w)) < 2e-6
  loss = lambda f: (lambda table, w: jnp.sum(jnp.sin(f(table, w)) * cot))
  want = jax.grad(loss(want_fn), argnums=(0, 1))(table, w)
  got = jax.jit(jax.grad(loss(got_fn), argnums=(0, 1)))(table, w)
  for name, x, y in zip(("table", "w"), want, got):
    assert _rel(x, y) < 1e-5, (name, _rel(x, y))
  text = jax.jit(jax.grad(loss(got_fn), argnums=(0, 1))).lower(table, w).as_text()
  assert "rnnbench_rows_project" in text and "rnnbench_rows_project_bwd" in text


def _train_steps(config, monkeypatch, ids: bool, steps=2):
  """``steps`` train steps of ``config``'s model on batches with repeated and padding
  tokens, the first layer given the embedding's tokens or not (``models.takes_ids``)."""
  with monkeypatch.context() as patch:
    if not ids:
      patch.setattr(models, "takes_ids", lambda layer: False)
    state = train.create_train_state(config, 20, jax.random.PRNGKey(0))
    step = _jitted_step()
    text = step.lower(state, _batch(0), train.zero_metrics()).as_text()
    assert ("rnnbench_rows_project" in text) == ids
    metrics = train.zero_metrics()
    for i in range(steps):
      state, metrics = step(state, _batch(i), metrics)
  return state, metrics


def _jitted_step():
  return jax.jit(functools.partial(train._train_step,
                                   loss_fn=optim.keras_categorical_crossentropy))


def _abstract_step(config):
  """The jitted train step, the shapes of ``config``'s train state and a notebook batch."""
  state = jax.eval_shape(lambda: train.create_train_state(config, 20, jax.random.key(0)))
  batch = (jnp.zeros((32, 100), jnp.int32), jnp.zeros(32, jnp.int32), jnp.ones(32))
  return _jitted_step(), state, batch


def _batch(seed):
  rng = np.random.default_rng(seed)
  x = np.minimum(rng.zipf(1.3, (32, 100)), 19999).astype(np.int32)  # words' frequencies
  x[1:4, :30] = 0  # padding
  return (jnp.asarray(x), jnp.asarray(rng.integers(0, 20, 32).astype(np.int32)),
          jnp.ones(32, jnp.float32))


@pytest.mark.parametrize("options", [
    {"model.cell": "lstm"},  # the notebook's
    {"model.cell": "gru"},
    {"model.cell": "lstm", "model.bidirectional": True},  # the backward cell's flipped ids
    {"model.cell": "lstm", "model.mask_padding": True, "model.bidirectional": True,
     "model.num_layers": 2},
])
def test_train_steps_with_the_rows_projection(options, monkeypatch):
  """The classifier's first layer projecting each distinct token once (impl "auto" on this
  host) trains as the plain matmul does: params and moments after two steps, and the
  metrics, to float32 rounding."""
  config = default_config_with(options)
  got, got_metrics = _train_steps(config, monkeypatch, ids=True)
  want, want_metrics = _train_steps(config, monkeypatch, ids=False)
  assert_same_training(want, got, want_metrics, got_metrics)


@pytest.mark.parametrize("options", [{"model.block": True},
                                     {"model.cell": "gru", "model.reset_after": True}])
def test_rows_projection_only_where_the_first_layer_reads_the_embedding(options):
  """A residual block (its cell reads LayerNorm(x), not the rows) and the reset_after=True
  GRU (its recurrence is not these kernels') project with the matmul."""
  step, state, batch = _abstract_step(default_config_with(options))
  assert "rnnbench_rows_project" not in step.lower(state, batch, train.zero_metrics()).as_text()


def test_rows_projection_not_in_a_cuda_export():
  """The train step exported for CUDA from this host has the XLA matmul, not the kernel."""
  step, state, batch = _abstract_step(default.get_config())
  triton = [jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
  cuda = jax.export.export(step, platforms=["cuda"], disabled_checks=triton)(
      state, batch, train.zero_metrics()).mlir_module()
  assert "rnnbench_" not in cuda and "__gpu$xla.gpu.triton" in cuda
  assert "rnnbench_rows_project" in step.lower(state, batch, train.zero_metrics()).as_text()


def _max_and_grad(pool, x, ct):
  return jax.jit(lambda x: (pool(x), jax.vjp(pool, x)[1](ct)[0]))(x)


@pytest.mark.parametrize("shape", [(32, 100, 50), (3, 1, 5), (5, 37, 11)])
def test_max_pool_is_jnp_max(shape):
  """The max over time (the kernel, and the XLA branch a CUDA export gets) equals jnp.max
  with its gradient, bit for bit: ties (split evenly, as autodiff splits them), signed zeros
  (the hard sigmoid's outputs) and infinities; a NaN propagates, as numpy's max (XLA:CPU's
  reduce drops it at some shapes)."""
  rng = np.random.default_rng(sum(shape))
  x = rng.integers(-3, 4, shape).astype(np.float32)  # many ties
  x[..., 0] = rng.standard_normal(shape[:2])
  x[0, ::2, -1], x[0, 1::2, -1] = 0.0, -0.0
  if shape[1] > 3:
    x[-1, 1, -1], x[0, 0, 0] = np.inf, -np.inf
  nan = x.copy()
  nan[-1, shape[1] // 2, 0] = np.nan
  np.testing.assert_array_equal(jax.jit(cpu_rnn.max_pool)(jnp.asarray(nan)), np.max(nan, axis=1))
  x = jnp.asarray(x)
  ct = jnp.asarray(rng.standard_normal((shape[0], shape[2])).astype(np.float32))
  want, want_grad = _max_and_grad(lambda x: jnp.max(x, axis=1), x, ct)

  def xla_branch(x):  # what platform_dependent runs when lowered for another platform
    m, count = cpu_rnn._max_xla(scan_lib.time_major(x))
    return m, (scan_lib.time_major(x), m, count)

  xla = jax.custom_vjp(lambda x: xla_branch(x)[0])
  xla.defvjp(xla_branch, lambda res, ct: (scan_lib.batch_major(cpu_rnn._max_bwd_xla(*res, ct)),))
  for pool in (cpu_rnn.max_pool, xla):
    got, got_grad = _max_and_grad(pool, x, ct)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_grad, want_grad)
  assert "rnnbench_max_over_time" in jax.jit(cpu_rnn.max_pool).lower(x).as_text()


def test_train_steps_with_the_max_pool_kernel(monkeypatch):
  """The notebook's model trains as with jnp.max's pooling, and its step reads the
  recurrence's time-major outputs directly (no transposed copy either way)."""
  config = default.get_config()
  got, got_metrics = _train_steps(config, monkeypatch, ids=True)
  step, state, batch = _abstract_step(config)
  text = step.lower(state, batch, train.zero_metrics()).compile().as_text()
  assert "rnnbench_max_over_time" in text
  assert not re.search(r"= f32\[[0-9,]+\]\S* (transpose|fusion)\(.*Classifier\._encode/rnn/transpose",
                       text)
  monkeypatch.setattr(cpu_rnn, "max_pool", lambda x: jnp.max(x, axis=1))
  want, want_metrics = _train_steps(config, monkeypatch, ids=True)
  assert_same_training(want, got, want_metrics, got_metrics)
