"""rnnbench.pallas_scan: the chunked Pallas linear scan (interpret mode here) vs 'sequential'.

Every linear cell with config.model.scan='pallas' equals scan='sequential' (outputs and
gradients, 1e-5) at odd shapes; the kernel itself over real and complex states, odd tiles,
a remainder chunk and h0; and a train step with scan='pallas' exported for CUDA from this
CPU machine carries the compiled Triton kernel and no interpreted grid loop.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnbench import cells
from rnnbench import linear_scan
from rnnbench import models
from rnnbench import optim
from rnnbench import pallas_scan
from rnnbench.configs import default

TOL = dict(rtol=1e-5, atol=1e-5)
# Compiled with LLVM's optimisations off (as in test_cells): the interpreted kernels'
# programs then compile about twice as fast, which is most of this file's time.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}
# (cell, options): every cell whose recurrence is linear, and both mingru/minlstm forms.
LINEAR_CASES = [("mingru", {}), ("mingru", {"log_space": False}), ("minlstm", {}),
                ("minlstm", {"log_space": False}), ("lru", {}), ("lru", {"state_size": 9}),
                ("qrnn", {}), ("qrnn", {"window": 3})]


def _case_id(case) -> str:
  name, options = case
  return "-".join([name] + [f"{k}={v}" for k, v in options.items()])


def test_every_linear_cell_is_covered():
  linear = {n for n in cells.names() if getattr(cells.get(n), "supports_parallel", False)
            and getattr(cells.get(n), "recurrent", True)}  # 'none' has no recurrence to scan
  assert linear == {name for name, _ in LINEAR_CASES}


def _outputs_and_grads(fn, w, *args):
  """``fn(*args)`` and the gradients of ``sum(w * Re fn) + sum(Im fn)``, one compile."""
  def loss(*args):
    y = fn(*args)
    return jnp.sum(w * jnp.real(y)) + jnp.sum(jnp.imag(y)), y

  grad = jax.grad(loss, argnums=tuple(range(len(args))), has_aux=True)
  grads, y = jax.jit(grad).lower(*args).compile(_FAST_COMPILE)(*args)
  return y, grads


def _random(key, shape, complex_: bool):
  """a in (0.2, 1) (times a phase when complex), b and h0 normal, w the loss weights."""
  k = jax.random.split(key, 6)
  a = jax.random.uniform(k[0], shape, minval=0.2, maxval=1.0)
  b = jax.random.normal(k[1], shape)
  h0 = jax.random.normal(k[2], shape[:1] + shape[2:])
  if complex_:
    a = a * jnp.exp(1j * jax.random.uniform(k[3], shape, maxval=3.0))
    b = b + 1j * jax.random.normal(k[4], shape)
    h0 = h0 - 0.5j * h0
  return a, b, h0, jax.random.normal(k[5], shape)


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("shape,chunk", [((3, 1, 5), 16), ((3, 7, 50), 4), ((5, 23, 33), 8)],
                         ids=["T1", "T7-H50", "T23-H33"])
def test_kernel_equals_sequential(shape, chunk, complex_):
  """Outputs and the gradients of a, b, h0; odd B, T and F, a partial last chunk, h0."""
  a, b, h0, w = _random(jax.random.key(0), shape, complex_)
  fns = {"pallas": lambda a, b, h0: pallas_scan.linear_scan(a, b, h0, chunk=chunk),
         "sequential": linear_scan.sequential_scan}
  got, grads = {}, {}
  for k, fn in fns.items():
    got[k], grads[k] = _outputs_and_grads(fn, w, a, b, h0)
  assert got["pallas"].shape == b.shape and got["pallas"].dtype == b.dtype
  np.testing.assert_allclose(got["pallas"], got["sequential"], **TOL)
  for name, g_pallas, g_seq in zip("a b h0".split(), grads["pallas"], grads["sequential"]):
    assert np.any(g_seq != 0), name
    np.testing.assert_allclose(g_pallas, g_seq, err_msg=name, **TOL)


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_constant_a_zero_h0_and_tiles(complex_):
  """A time-invariant a (the LRU's lambda, read once), h0 omitted, tiles smaller than the
  array; the gradient of a sums over steps and rows."""
  _, b, _, w = _random(jax.random.key(1), (6, 9, 20), complex_)
  a = jnp.linspace(-0.9, 0.95, 20)
  if complex_:
    a = a * jnp.exp(1j * jnp.linspace(0.0, 3.0, 20))
  want = linear_scan.sequential_scan(a, b)
  for tiles in (dict(block_b=2, block_f=8, chunk=2), dict(block_b=1, block_f=1, chunk=1), {}):
    np.testing.assert_allclose(pallas_scan.linear_scan(a, b, **tiles), want, **TOL)
  tiled = lambda a, b: pallas_scan.linear_scan(a, b, block_b=2, chunk=4)
  _, g_pallas = _outputs_and_grads(tiled, w, a, b)
  _, g_seq = _outputs_and_grads(linear_scan.sequential_scan, w, a, b)
  assert g_pallas[0].shape == a.shape
  for name, gp, gs in zip("ab", g_pallas, g_seq):
    np.testing.assert_allclose(gp, gs, err_msg=name, **TOL)
  with pytest.raises(ValueError, match="power of two"):
    pallas_scan.linear_scan(a, b, block_f=12)


def test_bfloat16_keeps_dtype_and_is_close():
  """bfloat16 in and out; the state runs in float32 inside, so it is near the float32 scan."""
  a, b, h0, _ = _random(jax.random.key(2), (3, 7, 13), False)
  got = jax.jit(pallas_scan.linear_scan)(*(v.astype(jnp.bfloat16) for v in (a, b, h0)))
  assert got.dtype == jnp.bfloat16
  want = linear_scan.sequential_scan(*(v.astype(jnp.bfloat16).astype(jnp.float32)
                                       for v in (a, b, h0)))
  np.testing.assert_allclose(got.astype(jnp.float32), want, rtol=1e-2, atol=1e-2)


CELL_CASES = [(case, 7) for case in LINEAR_CASES]
CELL_CASES += [(case, 1) for case in LINEAR_CASES if not case[1]]  # T = 1, default options


@pytest.mark.parametrize("case,steps", CELL_CASES, ids=lambda c: _case_id(c) if isinstance(
    c, tuple) else f"T{c}")
def test_cell_pallas_equals_sequential(case, steps):
  """Each linear cell at B 3, D 7, H 13: outputs and the gradients of every param and x."""
  name, options = case
  x = jax.random.normal(jax.random.key(3), (3, steps, 7))
  built = {scan: cells.create(dict(cell=name, hidden_size=13, scan=scan, **options))
           for scan in ("sequential", "pallas")}
  variables = built["sequential"].init(jax.random.key(4), x)
  w = jax.random.normal(jax.random.key(5), (3, steps, 13))
  out, grads = {}, {}
  for scan, cell in built.items():
    out[scan], grads[scan] = _outputs_and_grads(cell.apply, w, variables, x)
  np.testing.assert_allclose(out["pallas"], out["sequential"], **TOL)
  flat_seq = jax.tree_util.tree_flatten_with_path(grads["sequential"])[0]
  for (path, g_seq), g_pallas in zip(flat_seq, jax.tree.leaves(grads["pallas"])):
    np.testing.assert_allclose(g_pallas, g_seq, err_msg=jax.tree_util.keystr(path), **TOL)


def test_nonlinear_cells_reject_pallas():
  cell = cells.create(dict(cell="gru", hidden_size=4, scan="pallas"))
  with pytest.raises(ValueError, match=r"'gru'.*sequential.*'pallas'"):
    cell.init(jax.random.key(0), jnp.zeros((1, 2, 3)))


def test_one_warning_off_gpu(caplog, monkeypatch):
  monkeypatch.setattr(pallas_scan, "_warned", False)
  a, b, _, _ = _random(jax.random.key(6), (2, 3, 4), False)
  with caplog.at_level(logging.WARNING, logger="rnnbench"):
    for _ in range(3):
      jax.jit(pallas_scan.linear_scan)(a, b + 1.0)  # a new trace each time
  lines = [r.getMessage() for r in caplog.records if "interpret mode" in r.getMessage()]
  assert len(lines) == 1 and "\n" not in lines[0], lines


def test_train_step_exports_for_cuda_with_the_kernel():
  """The full train step (mingru, scan='pallas') lowered for CUDA on this CPU machine."""
  config = default.get_config()
  config.model.update(cell="mingru", scan="pallas", embed_dim=8, hidden_size=13,
                      dense_size=8)
  config.data.num_words = 50
  model = models.create_model(config, num_classes=4)
  tokens = jnp.ones((3, 7), jnp.int32)
  labels = jnp.zeros((3,), jnp.int32)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens)["params"])
  tx = optim.make_optimizer(config.train)
  loss_fn = optim.make_loss(config.train.loss)

  def step(params, opt_state, tokens, labels, key):
    def loss(params):
      logits = model.apply({"params": params}, tokens, train=True, return_logits=True,
                           rngs={"dropout": key})
      return jnp.mean(loss_fn(logits, labels))
    value, grads = jax.value_and_grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  opt_state = jax.eval_shape(tx.init, params)
  exported = jax.export.export(
      jax.jit(step), platforms=["cuda"],
      disabled_checks=[jax.export.DisabledSafetyCheck.custom_call(pallas_scan.TRITON_CALL)])(
          params, opt_state, tokens, labels, jax.random.key(1))
  text = exported.mlir_module()
  assert exported.platforms == ("cuda",)
  calls = text.count(f"@{pallas_scan.TRITON_CALL}(")
  assert calls == 2, calls  # the forward scan and the backward (reverse) scan
  assert 'name = "linear_scan"' in text and 'name = "linear_scan_reverse"' in text
  assert "stablehlo.while" not in text  # no interpreted grid loop: the CPU branch is gone


@pytest.mark.parametrize("name,dtype", [("lru", jnp.float32), ("qrnn", jnp.bfloat16)])
def test_cell_gradients_export_for_cuda(name, dtype):
  """The lru's constant complex a and a bfloat16 qrnn lower to the Triton kernels too."""
  cell = cells.create(dict(cell=name, hidden_size=50, scan="pallas"))
  x = jnp.ones((3, 7, 5), dtype)
  variables = jax.eval_shape(lambda: cell.init(jax.random.key(0), x))
  grad = jax.grad(lambda v, x: jnp.sum(cell.apply(v, x).astype(jnp.float32)), argnums=(0, 1))
  exported = jax.export.export(
      jax.jit(grad), platforms=["cuda"],
      disabled_checks=[jax.export.DisabledSafetyCheck.custom_call(pallas_scan.TRITON_CALL)])(
          variables, x)
  assert exported.mlir_module().count(f"@{pallas_scan.TRITON_CALL}(") == 2
