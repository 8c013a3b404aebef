"""LRU, the Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural
Networks for Long Sequences", ICML, arXiv:2303.06349).

A complex diagonal linear recurrence with an exponential parameterisation::

    lambda = exp(-exp(nu_log) + i exp(theta_log))            (|lambda| < 1 always)
    h_t    = lambda * h_{t-1} + exp(gamma_log) * (B x_t),    h_0 = 0,  h_t in C^N
    y_t    = Re(C h_t) + D x_t

Initialisation (section 3 of the paper): ``|lambda|`` uniform on the ring
``[r_min, r_max]`` and phase uniform on ``[0, max_phase]``, i.e.
``nu_log = log(-log(u1 (r_max^2 - r_min^2) + r_min^2) / 2)``,
``theta_log = log(max_phase u2)``; the normalisation
``gamma_log = log(sqrt(1 - |lambda|^2))`` (trained); ``B = B_re + i B_im`` with entries
``N(0, 1 / (2 in))``; ``C = C_re + i C_im`` with entries ``N(0, 1 / N)``; ``D ~ N(0, 1)``.

Shapes: the state size ``N`` is ``state_size``, or ``features`` when 0 (the default,
so ``config.model.hidden_size`` sets both). The paper's layer maps ``H -> H`` with a
diagonal ``D``; here ``in_features`` may differ from ``features``, and then ``D`` is a
real ``(in, features)`` matrix with entries ``N(0, 1 / in)`` (diagonal when they match).
``B x`` is hoisted out of the scan. ``scan='parallel'`` runs ``jax.lax.associative_scan``
over time, ``'sequential'`` runs ``nn.scan``; both give the same ``y``. The defaults
``r_min=0.9, r_max=0.999`` are the paper's long-range settings.
"""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import flax.linen as nn

from rnnbench import linear_scan
from rnnbench import scan as scan_lib
from rnnbench.cells import register


@register("lru")
class LRU(nn.Module):
  """LRU over a whole sequence: ``(B, T, D) -> (B, T, H)``."""

  features: int
  scan: str = "sequential"
  unroll: int = 1
  state_size: int = 0
  r_min: float = 0.9
  r_max: float = 0.999
  max_phase: float = 2 * math.pi

  supports_parallel: ClassVar[bool] = True

  def _nu_log_init(self, key, shape, dtype=jnp.float32):
    u = jax.random.uniform(key, shape, dtype)
    return jnp.log(-0.5 * jnp.log(u * (self.r_max**2 - self.r_min**2) + self.r_min**2))

  def _theta_log_init(self, key, shape, dtype=jnp.float32):
    return jnp.log(self.max_phase * jax.random.uniform(key, shape, dtype))

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scan_lib.check_scan_mode("lru", self.scan, self.supports_parallel)
    d_in, n = x.shape[-1], self.state_size or self.features
    nu_log = self.param("nu_log", self._nu_log_init, (n,))
    theta_log = self.param("theta_log", self._theta_log_init, (n,))
    # log sqrt(1 - |lambda|^2), with |lambda|^2 = exp(-2 exp(nu_log)), from nu_log's init.
    gamma_log = self.param(
        "gamma_log", lambda _: 0.5 * jnp.log(-jnp.expm1(-2.0 * jnp.exp(nu_log))))
    b_re = self.param("B_re", nn.initializers.normal((2 * d_in) ** -0.5), (d_in, n))
    b_im = self.param("B_im", nn.initializers.normal((2 * d_in) ** -0.5), (d_in, n))
    c_re = self.param("C_re", nn.initializers.normal(n**-0.5), (n, self.features))
    c_im = self.param("C_im", nn.initializers.normal(n**-0.5), (n, self.features))
    if d_in == self.features:
      d = self.param("D", nn.initializers.normal(1.0), (self.features,))
      skip = x * d
    else:
      d = self.param("D", nn.initializers.normal(d_in**-0.5), (d_in, self.features))
      skip = x @ d

    lam = jnp.exp(-jnp.exp(nu_log) + 1j * jnp.exp(theta_log))
    bx = jnp.exp(gamma_log) * (x @ b_re + 1j * (x @ b_im))
    h = linear_scan.linear_scan(lam, bx, mode=self.scan, unroll=self.unroll)
    return h.real @ c_re - h.imag @ c_im + skip

  def param_count(self, in_features: int) -> int:
    n = self.state_size or self.features
    d = self.features if in_features == self.features else in_features * self.features
    return 3 * n + 2 * in_features * n + 2 * n * self.features + d
