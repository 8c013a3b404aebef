"""rnnbench.torch_compat against torch's own CPU nn.LSTM / nn.GRU on the same weights."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnbench import cells
from rnnbench import torch_compat

torch = pytest.importorskip("torch", reason="torch is not installed (the references extra)")

B, T, D, H = 3, 7, 5, 50
TOL = dict(rtol=1e-5, atol=1e-5)


def _module(cls, batch_first: bool = True, **kwargs):
  """A torch module with every weight and bias random (no zero biases to hide a swap)."""
  torch.manual_seed(0)
  module = cls(D, H, batch_first=batch_first, **kwargs)
  with torch.no_grad():
    for p in module.parameters():
      p.uniform_(-0.5, 0.5)
  return module


def _x(seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(B, T, D)).astype(np.float32)


def _torch_outputs(module, x: np.ndarray, batch_first: bool = True):
  """torch's outputs (B, T, H) and the gradient of sum(w * y) with respect to x."""
  xt = torch.from_numpy(x if batch_first else x.swapaxes(0, 1).copy()).requires_grad_()
  y = module(xt)[0]
  w = _w((B, T, H))
  w = torch.from_numpy(w if batch_first else w.swapaxes(0, 1).copy())
  (w * y).sum().backward()
  y, gx = y.detach().numpy(), xt.grad.numpy()
  return (y, gx) if batch_first else (y.swapaxes(0, 1), gx.swapaxes(0, 1))


def _w(shape) -> np.ndarray:
  """The loss weights, batch-major."""
  return np.random.default_rng(1).normal(size=shape).astype(np.float32)


def _rnnbench_outputs(options, params, x: np.ndarray, impl: str):
  cell = cells.create(dict(options, impl=impl))
  w = _w((B, T, H))
  y, vjp = jax.vjp(lambda x: cell.apply({"params": params}, x), jnp.asarray(x))
  return np.asarray(y), np.asarray(vjp(jnp.asarray(w))[0])


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "time_first"])
@pytest.mark.parametrize("impl", ["fused", "nn_scan"])
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_from_torch_matches_torch(name, impl, batch_first):
  module = _module({"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name], batch_first)
  options, params = torch_compat.from_torch(module)
  want = dict(cell=name, hidden_size=H, recurrent_activation="sigmoid")
  if name == "gru":
    want["reset_after"] = True
  assert options == want
  shapes = {k: v.shape for k, v in params.items()}
  gates = 4 if name == "lstm" else 3
  assert shapes == dict(kernel=(D, gates * H), recurrent_kernel=(H, gates * H),
                        bias=(gates * H,) if name == "lstm" else (2, gates * H))
  x = _x()
  y_torch, gx_torch = _torch_outputs(module, x, batch_first)
  y, gx = _rnnbench_outputs(options, params, x, impl)
  np.testing.assert_allclose(y, y_torch, **TOL)
  np.testing.assert_allclose(gx, gx_torch, **TOL)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_round_trips(name):
  """torch -> rnnbench -> torch: the same outputs; rnnbench -> torch -> rnnbench: the same
  params, exactly (the LSTM's two torch biases come back as their sum)."""
  module = _module({"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name])
  options, params = torch_compat.from_torch(module)
  again = torch_compat.to_torch(options, params)
  assert type(again) is type(module) and again.batch_first
  x = _x(2)
  np.testing.assert_allclose(_torch_outputs(again, x)[0], _torch_outputs(module, x)[0], **TOL)
  options_2, params_2 = torch_compat.from_torch(again)
  assert options_2 == options
  jax.tree.map(np.testing.assert_array_equal, params_2, params)
  if name == "gru":  # both biases map one to one
    for p in ("bias_ih_l0", "bias_hh_l0", "weight_ih_l0", "weight_hh_l0"):
      np.testing.assert_array_equal(getattr(again, p).detach(), getattr(module, p).detach())


def test_to_torch_from_an_initialised_cell():
  """A cell rnnbench initialised (nonzero biases set) -> torch gives the cell's outputs."""
  options = dict(cell="gru", hidden_size=H, recurrent_activation="sigmoid", reset_after=True)
  cell = cells.create(options)
  x = _x(3)
  params = cell.init(jax.random.key(0), jnp.asarray(x))["params"]
  params = dict(params, bias=jax.random.normal(jax.random.key(1), params["bias"].shape))
  module = torch_compat.to_torch(options, params, batch_first=False)
  y = np.asarray(cell.apply({"params": params}, jnp.asarray(x)))
  np.testing.assert_allclose(_torch_outputs(module, x, batch_first=False)[0], y, **TOL)


@pytest.mark.parametrize("make,match", [
    (lambda: torch.nn.LSTM(D, H, num_layers=2), "num_layers=2"),
    (lambda: torch.nn.GRU(D, H, bidirectional=True), "bidirectional=True"),
    (lambda: torch.nn.LSTM(D, H, proj_size=4), "proj_size=4"),
    (lambda: torch.nn.GRU(D, H, bias=False), "bias=False"),
    (lambda: torch.nn.RNN(D, H), "torch.nn.LSTM or torch.nn.GRU, got RNN"),
], ids=["num_layers", "bidirectional", "proj_size", "no_bias", "rnn"])
def test_from_torch_rejects_what_it_cannot_convert(make, match):
  with pytest.raises(ValueError, match=match) as info:
    torch_compat.from_torch(make())
  assert "\n" not in str(info.value)


@pytest.mark.parametrize("options,match", [
    (dict(cell="gru", recurrent_activation="sigmoid", reset_after=False), "reset_after=False"),
    (dict(cell="lstm", recurrent_activation="hard_sigmoid"), "recurrent_activation='sigmoid'"),
    (dict(cell="mingru", recurrent_activation="sigmoid"), "lstm and gru cells"),
], ids=["gru_reset_before", "hard_sigmoid", "other_cell"])
def test_to_torch_rejects_what_torch_cannot_run(options, match):
  params = dict(kernel=np.zeros((D, 3 * H)), recurrent_kernel=np.zeros((H, 3 * H)),
                bias=np.zeros((3 * H,)))
  with pytest.raises(ValueError, match=match):
    torch_compat.to_torch(options, params)
