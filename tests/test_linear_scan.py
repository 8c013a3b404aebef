"""rnnbench.linear_scan: sequential, parallel and log-space forms of h_t = a_t h_{t-1} + b_t."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnbench import linear_scan
from rnnbench import scan

B, T, H = 2, 9, 3


def _reference(a: np.ndarray, b: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
  """The recurrence one step at a time, in numpy (float64 / complex128)."""
  a = np.broadcast_to(a, b.shape)
  h = np.zeros_like(b[:, 0]) if h0 is None else h0
  hs = []
  for t in range(b.shape[1]):
    h = a[:, t] * h + b[:, t]
    hs.append(h)
  return np.stack(hs, axis=1)


def _random(seed: int, complex_: bool = False):
  rng = np.random.default_rng(seed)
  a = rng.uniform(0.2, 1.1, (B, T, H))
  b = rng.normal(size=(B, T, H))
  h0 = rng.normal(size=(B, H))
  if complex_:
    a = a * np.exp(1j * rng.uniform(0, np.pi, a.shape))
    b = b + 1j * rng.normal(size=b.shape)
    h0 = h0 + 1j * rng.normal(size=h0.shape)
  return a, b, h0


@pytest.mark.parametrize("complex_,with_h0", [(False, False), (True, True)],
                         ids=["real-zero_h0", "complex-h0"])
def test_forms_match_numpy(complex_, with_h0):
  a, b, h0 = _random(0, complex_)
  h0 = h0 if with_h0 else None
  want = _reference(a, b, h0)
  dtype = jnp.complex64 if complex_ else jnp.float32
  args = (jnp.asarray(a, dtype), jnp.asarray(b, dtype),
          None if h0 is None else jnp.asarray(h0, dtype))
  for mode in scan.SCAN_MODES:
    got = jax.jit(linear_scan.linear_scan, static_argnames="mode")(*args, mode=mode)
    assert got.shape == b.shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=mode)


def test_broadcast_a_and_unroll():
  """A time-invariant ``a`` (the LRU's lambda) broadcasts; ``unroll`` changes nothing."""
  _, b, _ = _random(1)
  a = np.array([0.5, 0.9, -0.3])
  want = _reference(a, b)
  for unroll in (1, 4):
    got = linear_scan.sequential_scan(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32),
                                      unroll=unroll)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  got = linear_scan.parallel_scan(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gradients_match():
  a, b, h0 = (jnp.asarray(v, jnp.float32) for v in _random(2))
  w = jax.random.normal(jax.random.key(0), b.shape)

  def loss(mode):
    return lambda a, b, h0: jnp.sum(w * linear_scan.linear_scan(a, b, h0, mode=mode))

  seq = jax.jit(jax.grad(loss("sequential"), argnums=(0, 1, 2)))(a, b, h0)
  par = jax.jit(jax.grad(loss("parallel"), argnums=(0, 1, 2)))(a, b, h0)
  for s, p in zip(seq, par):
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(s, p, rtol=1e-5, atol=1e-5)


def test_log_space_matches_and_does_not_underflow():
  """Gates of 1e-3 over 200 steps: prod(a) underflows float32, log h stays exact."""
  rng = np.random.default_rng(3)
  log_a = np.log(rng.uniform(1e-3, 1.0, (B, 200, H)))
  log_b = rng.normal(size=(B, 200, H))
  log_h0 = rng.normal(size=(B, H))
  # numpy reference, in log space, float64.
  lh, want = log_h0, []
  for t in range(log_b.shape[1]):
    lh = np.logaddexp(log_a[:, t] + lh, log_b[:, t])
    want.append(lh)
  want = np.stack(want, axis=1)
  got = jax.jit(linear_scan.log_parallel_scan)(jnp.asarray(log_a, jnp.float32),
                                      jnp.asarray(log_b, jnp.float32),
                                      jnp.asarray(log_h0, jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # Without h0 it is log of the plain recurrence.
  short = (slice(None), slice(0, T))
  got = jnp.exp(linear_scan.log_parallel_scan(jnp.asarray(log_a[short], jnp.float32),
                                              jnp.asarray(log_b[short], jnp.float32)))
  np.testing.assert_allclose(got, _reference(np.exp(log_a[short]), np.exp(log_b[short])),
                             rtol=1e-5, atol=1e-6)


def test_g_and_log_g():
  x = jnp.array([-200.0, -30.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 30.0])
  g = linear_scan.g(x)
  np.testing.assert_allclose(g[4], 0.5)
  assert np.all(np.asarray(g)[1:] > 0)  # positive (sigmoid(-200) underflows float32)
  log_g = linear_scan.log_g(x)
  np.testing.assert_allclose(log_g[0], -200.0, rtol=1e-6)  # finite where g underflows
  np.testing.assert_allclose(np.exp(log_g[1:]), g[1:], rtol=1e-6)
  grads = jax.vmap(jax.grad(linear_scan.log_g))(x)
  assert np.all(np.isfinite(grads))


def test_check_scan_mode():
  scan.check_scan_mode("mingru", "parallel", True)
  scan.check_scan_mode("indrnn", "sequential", False)
  with pytest.raises(ValueError, match=r"'indrnn'.*sequential"):
    scan.check_scan_mode("indrnn", "parallel", False)
  with pytest.raises(ValueError, match="not a scan mode"):
    scan.check_scan_mode("mingru", "paralel", True)
