"""Every registered cell against the cell protocol, with no per-cell test code.

The shared checks are parametrised over ``rnnbench.cells.names()`` (read at collection), so a
newly registered cell is tested by dropping its file into ``rnnbench/cells/``. Cells that
set ``supports_parallel = True`` are also checked for sequential == parallel (outputs and
gradients); cells with an entry in ``REFERENCES`` against a step-by-step numpy loop of their
paper's equations. The README's "Adding a cell" example is exec'd and checked the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
import sys
import types
from collections.abc import Callable
from typing import ClassVar

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnbench.configs import default
from rnnbench import cells
from rnnbench import models
from rnnbench import optim

B, T, D, H = 2, 6, 5, 4  # the cell-level shapes: x (B, T, D) -> (B, T, H)
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"

NAMES = cells.names()


def _supports_parallel(name: str) -> bool:
  return bool(getattr(cells.get(name), "supports_parallel", False))


def _has_field(name: str, field: str) -> bool:
  return field in {f.name for f in dataclasses.fields(cells.get(name))}


# --------------------------------------------------------------------------- built cells
# Compiled with LLVM's optimisations off: these tiny programs then compile ~2x faster,
# which is most of this suite's time on CPU.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _compiled(fn: Callable, *args) -> Callable:
  """``jax.jit(fn)`` compiled for arguments shaped like ``args``."""
  return jax.jit(fn).lower(*args).compile(_FAST_COMPILE)


@dataclasses.dataclass(frozen=True)
class Built:
  cell: object
  variables: dict
  x: jax.Array
  y: jax.Array
  apply: Callable  # compiled (variables, x) -> y


@functools.cache
def _built(name: str, scan: str = "sequential", features: int = H, **options) -> Built:
  """The cell ``name`` with ``options``, initialised and run once on a fixed random x."""
  kwargs = dict(features=features, **options)
  if _has_field(name, "scan"):
    kwargs["scan"] = scan
  cell = cells.get(name)(**kwargs)
  x = jax.random.normal(jax.random.key(0), (B, T, D))
  variables = cell.init(jax.random.key(1), x)  # eager: its small ops are cached across cells
  apply = _compiled(cell.apply, variables, x)
  return Built(cell, variables, x, apply(variables, x), apply)


@functools.cache
def _grads(name: str, scan: str = "sequential", **options):
  """Gradients of ``sum(w * y)`` with respect to the variables and x."""
  built = _built(name, scan, **options)
  w = jax.random.normal(jax.random.key(2), built.y.shape)
  loss = lambda v, x: jnp.sum(w * built.cell.apply(v, x))
  args = (built.variables, built.x)
  return _compiled(jax.grad(loss, argnums=(0, 1)), *args)(*args)


# --------------------------------------------------------------------------- shared checks


def check_output(name: str) -> None:
  built = _built(name)
  assert built.y.shape == (B, T, H), built.y.shape
  assert built.y.dtype == jnp.float32
  assert np.all(np.isfinite(built.y))


def check_param_count(name: str) -> None:
  built = _built(name)
  created = sum(np.size(p) for p in jax.tree.leaves(built.variables["params"]))
  assert built.cell.param_count(D) == created


def check_gradients(name: str) -> None:
  """Finite gradients, and every param (and x) reaches the output."""
  grads, grad_x = _grads(name)
  flat = jax.tree_util.tree_flatten_with_path(grads["params"])[0]
  for path, g in flat + [(("x",), grad_x)]:
    assert np.all(np.isfinite(g)), path
    assert np.any(g != 0), f"{jax.tree_util.keystr(path)} gets no gradient"


def check_determinism(name: str) -> None:
  """Same key, same params; same params and x, same output, jitted or not."""
  built = _built(name)
  again = built.cell.init(jax.random.key(1), built.x)
  jax.tree.map(np.testing.assert_array_equal, again, built.variables)
  np.testing.assert_array_equal(built.apply(built.variables, built.x), built.y)
  np.testing.assert_allclose(built.cell.apply(built.variables, built.x), built.y,
                             rtol=1e-6, atol=1e-6)


def check_causal(name: str) -> None:
  """Step t sees x_1..x_t only, and the state carries x_1 to the last step.

  A cell that declares ``recurrent = False`` (the ``none`` baseline) must instead NOT carry
  x_1 anywhere past step 1.
  """
  built = _built(name)
  late = built.apply(built.variables, built.x.at[:, -1].add(1.0))
  np.testing.assert_array_equal(late[:, :-1], built.y[:, :-1])
  early = built.apply(built.variables, built.x.at[:, 0].add(1.0))
  if getattr(cells.get(name), "recurrent", True):
    assert np.any(np.abs(early[:, -1] - built.y[:, -1]) > 1e-6)
  else:
    np.testing.assert_array_equal(early[:, 1:], built.y[:, 1:])


def check_scan_modes(name: str) -> None:
  """config.model.scan='parallel' builds a parallel cell, and is an error otherwise."""
  model_config = dict(cell=name, hidden_size=H, scan="parallel")
  if _supports_parallel(name):
    cell = cells.create(model_config)
    assert cell.scan == "parallel"
    return
  assert _has_field(name, "scan"), (
      f"{name}: add a `scan` field so config.model.scan='parallel' is a clear error")
  cell = cells.create(model_config)
  with pytest.raises(ValueError, match="sequential"):
    cell.init(jax.random.key(0), jnp.zeros((1, 2, D)))


def small_config(name: str):
  config = default.get_config()
  config.data.num_words = 200
  config.model.cell = name
  config.model.embed_dim = 16
  config.model.hidden_size = 8
  config.model.dense_size = 8
  config.model.dropout = 0.0
  config.train.learning_rate = 3e-3
  return config


def check_train_step(name: str, steps: int = 4) -> None:
  """The full model (keras_adam, the configured loss) lowers its loss on a fixed batch."""
  config = small_config(name)
  model = models.create_model(config, num_classes=20)
  key_x, key_y, key_init = jax.random.split(jax.random.key(3), 3)
  tokens = jax.random.randint(key_x, (8, 12), 1, config.data.num_words)
  labels = jax.random.randint(key_y, (8,), 0, 20)
  tx = optim.make_optimizer(config.train)
  loss_fn = optim.make_loss(config.train.loss)

  def loss(params):  # dropout off (train=False), so the loss is a function of params
    logits = model.apply({"params": params}, tokens, train=False, return_logits=True)
    return jnp.mean(loss_fn(logits, labels))

  def train():  # init, then steps + 1 updates; one compile
    params = model.init(key_init, tokens)["params"]

    def step(carry, _):  # -> the loss BEFORE this update
      params, opt_state = carry
      value, grads = jax.value_and_grad(loss)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), value

    return jax.lax.scan(step, (params, tx.init(params)), length=steps + 1)[1]

  losses = [float(v) for v in _compiled(train)()]
  assert np.all(np.isfinite(losses)), losses
  assert losses[1] < losses[0] and losses[-1] < losses[1], losses


CORE_CHECKS = (check_output, check_param_count, check_gradients, check_determinism,
               check_causal, check_scan_modes, check_train_step)


@pytest.mark.parametrize("check", CORE_CHECKS, ids=lambda c: c.__name__[len("check_"):])
@pytest.mark.parametrize("name", NAMES)
def test_cell(name, check):
  check(name)


# --------------------------------------------------------------------------- parallel


PARALLEL_CASES = [(n, {}) for n in NAMES if _supports_parallel(n)]
PARALLEL_CASES += [(n, {"log_space": False}) for n in ("mingru", "minlstm") if n in NAMES]


def _case_id(case) -> str:
  name, options = case
  return "-".join([name] + [f"{k}={v}" for k, v in options.items()])


@pytest.mark.parametrize("case", PARALLEL_CASES, ids=_case_id)
def test_sequential_equals_parallel(case):
  name, options = case
  seq, par = _built(name, "sequential", **options), _built(name, "parallel", **options)
  np.testing.assert_allclose(par.y, seq.y, rtol=1e-5, atol=1e-5)
  for g_seq, g_par in zip(jax.tree.leaves(_grads(name, "sequential", **options)),
                          jax.tree.leaves(_grads(name, "parallel", **options))):
    np.testing.assert_allclose(g_par, g_seq, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- numpy references
# Each takes the cell's params (float64 numpy), x (B, T, D) and the cell, and runs the
# paper's equations one step at a time.


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _g(x):
  return np.where(x >= 0, x + 0.5, _sigmoid(x))


def _loop(step: Callable, h0, steps: int) -> np.ndarray:
  hs, h = [], h0
  for t in range(steps):
    h, y = step(h, t)
    hs.append(y)
  return np.stack(hs, axis=1)


def ref_mingru(p, x, cell):
  k_z, k_h = np.split(x @ p["kernel"] + p["bias"], 2, axis=-1)
  z = _sigmoid(k_z)
  h_tilde = _g(k_h) if cell.log_space else k_h

  def step(h, t):
    h = (1 - z[:, t]) * h + z[:, t] * h_tilde[:, t]
    return h, h

  return _loop(step, np.zeros(k_z.shape[:1] + k_z.shape[2:]), x.shape[1])


def ref_minlstm(p, x, cell):
  k_f, k_i, k_h = np.split(x @ p["kernel"] + p["bias"], 3, axis=-1)
  f, i = _sigmoid(k_f), _sigmoid(k_i)
  f, i = f / (f + i), i / (f + i)
  h_tilde = _g(k_h) if cell.log_space else k_h

  def step(h, t):
    h = f[:, t] * h + i[:, t] * h_tilde[:, t]
    return h, h

  return _loop(step, np.zeros(k_f.shape[:1] + k_f.shape[2:]), x.shape[1])


def ref_lru(p, x, cell):
  lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
  b = p["B_re"] + 1j * p["B_im"]  # (in, N): x_t B, i.e. B x_t with B stored transposed
  c = p["C_re"] + 1j * p["C_im"]  # (N, out)
  skip = x * p["D"] if p["D"].ndim == 1 else x @ p["D"]

  def step(h, t):
    h = lam * h + np.exp(p["gamma_log"]) * (x[:, t] @ b)
    return h, (h @ c).real + skip[:, t]

  return _loop(step, np.zeros((x.shape[0], lam.shape[0]), complex), x.shape[1])


def ref_indrnn(p, x, cell):
  u = p["recurrent_kernel"]
  if cell.max_length > 0:
    bound = 2.0 ** (1.0 / cell.max_length)
    u = np.clip(u, -bound, bound)

  def step(h, t):
    h = np.maximum(x[:, t] @ p["kernel"] + u * h + p["bias"], 0.0)
    return h, h

  return _loop(step, np.zeros((x.shape[0], u.shape[0])), x.shape[1])


def ref_qrnn(p, x, cell):
  k = cell.window
  padded = np.concatenate([np.zeros((x.shape[0], k - 1, x.shape[2])), x], axis=1)

  def step(c, t):
    window = padded[:, t:t + k].reshape(x.shape[0], -1)  # x_{t-k+1}, ..., x_t
    k_z, k_f, k_o = np.split(window @ p["kernel"] + p["bias"], 3, axis=-1)
    f = _sigmoid(k_f)
    c = f * c + (1 - f) * np.tanh(k_z)
    return c, _sigmoid(k_o) * c

  return _loop(step, np.zeros((x.shape[0], p["bias"].shape[0] // 3)), x.shape[1])


def ref_simple_rnn(p, x, cell):
  def step(h, t):
    h = np.tanh(x[:, t] @ p["kernel"] + h @ p["recurrent_kernel"] + p["bias"])
    return h, h

  return _loop(step, np.zeros((x.shape[0], p["bias"].shape[0])), x.shape[1])


REFERENCES = {"mingru": ref_mingru, "minlstm": ref_minlstm, "lru": ref_lru,
              "indrnn": ref_indrnn, "qrnn": ref_qrnn, "simple_rnn": ref_simple_rnn}

REFERENCE_CASES = [(n, {}) for n in NAMES if n in REFERENCES] + [
    (n, o) for n, o in [("mingru", {"log_space": False}), ("minlstm", {"log_space": False}),
                        ("lru", {"features": D, "state_size": 7}),  # in == out, N != out
                        ("indrnn", {"max_length": 3}),   # |u| <= 2^(1/3)
                        ("qrnn", {"window": 3})] if n in NAMES]


def check_reference(name: str, **options) -> None:
  modes = ["sequential"] + (["parallel"] if _supports_parallel(name) else [])
  for mode in modes:
    built = _built(name, mode, **options)
    variables = built.variables
    if name == "indrnn" and options.get("max_length"):  # u past the bound, to be clipped
      u = jnp.linspace(-2.0, 2.0, H)
      variables = {"params": dict(variables["params"], recurrent_kernel=u)}
    params = jax.tree.map(lambda v: np.asarray(v, np.float64), variables["params"])
    want = REFERENCES[name](params, np.asarray(built.x, np.float64), built.cell)
    got = built.apply(variables, built.x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=mode)


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=_case_id)
def test_reference(case):
  name, options = case
  check_reference(name, **options)


def test_indrnn_init_within_bound():
  if "indrnn" not in NAMES:
    pytest.skip("indrnn is not registered")
  u = _built("indrnn", max_length=3).variables["params"]["recurrent_kernel"]
  assert np.all((u >= 0) & (u <= 2.0 ** (1 / 3)))


# --------------------------------------------------------------------------- registry guard


def test_register_refuses_classifier_option_fields():
  """A cell field named like a classifier option would silently get its value: refused."""
  with pytest.raises(ValueError, match=r"'clash'.*dropout.*classifier_options"):

    @cells.register("clash")
    class Clash(flax.linen.Module):  # pylint: disable=unused-variable
      features: int
      dropout: float = 0.0  # a recurrent dropout, say

  assert "clash" not in cells.names()


def test_register_accepts_declared_classifier_option():

  @cells.register("clash_ok")
  class ClashOk(flax.linen.Module):
    features: int
    dropout: float = 0.0
    classifier_options: ClassVar[tuple[str, ...]] = ("dropout",)

  try:
    assert cells.cell_options(ClashOk, default.get_config().model) == {"dropout": 0.5}
  finally:
    cells._REGISTRY.pop("clash_ok", None)  # pylint: disable=protected-access


def test_classifier_options_cover_the_model_config():
  """Every config.model field is the classifier's or some registered cell's, never both."""
  model = default.get_config().model
  cell_fields = set().union(*(cells._init_fields(cells.get(n)) for n in NAMES))  # pylint: disable=protected-access
  classifier = set(cells.CLASSIFIER_OPTIONS)
  assert set(model) <= classifier | cell_fields, set(model) - classifier - cell_fields
  assert not classifier & cell_fields
  used = {f.name for f in dataclasses.fields(models.Classifier)} - {"parent", "name", "rnn"}
  assert used - {"num_words", "num_classes"} <= classifier  # the data's, not config.model's


# --------------------------------------------------------------------------- README example


def _readme_example() -> str:
  text = README.read_text()
  section = re.search(r"<!-- adding-a-cell:start -->(.*?)<!-- adding-a-cell:end -->",
                      text, re.S)
  assert section, "README.md lacks the adding-a-cell markers"
  code = re.search(r"```python\n(.*?)```", section[1], re.S)
  assert code, "the README's Adding a cell section has no python code block"
  return code[1]


def test_readme_example():
  """The README's example cell registers under its name and passes the shared checks."""
  code = _readme_example()
  name = re.search(r"@register\(\"(\w+)\"\)", code)[1]
  was_registered = name in cells.names()
  module = types.ModuleType(f"readme_{name}")  # a real module, as the cell's file would be
  sys.modules[module.__name__] = module
  try:
    exec(compile(code, f"README.md:{name}", "exec", dont_inherit=True), module.__dict__)
    assert name in cells.names()
    for check in CORE_CHECKS:
      check(name)
    if name in REFERENCES:
      check_reference(name)
  finally:
    del sys.modules[module.__name__]
    if not was_registered:  # the registry is global: leave it as collection saw it
      cells._REGISTRY.pop(name, None)  # pylint: disable=protected-access
