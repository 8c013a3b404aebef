"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201).

A GRU whose gate and candidate see only the input, so the recurrence is linear in h::

    z_t  = sigmoid(W_z x_t + b_z)
    h~_t = g(W_h x_t + b_h)         (log_space=True, the paper's default; plain W_h x_t + b_h
                                     when log_space=False)
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t,      h_0 = 0

with ``g(x) = x + 0.5 if x >= 0 else sigmoid(x)`` (positive, so the parallel form can run
in log space: ``log(1 - z) = -softplus(k_z)``, ``log z = -softplus(-k_z)``,
``log h~ = log_g(k_h)``; ``rnnbench.linear_scan.log_parallel_scan``).

``scan='parallel'`` runs ``jax.lax.associative_scan`` over time; ``'sequential'`` runs
``nn.scan``; both give the same ``h``. Initialisation: the paper's models use PyTorch's
``nn.Linear`` defaults, ``U(-1/sqrt(in), 1/sqrt(in))`` for kernel and bias, as here.
Params: ``kernel (D, 2H)`` and ``bias (2H,)`` (z then h~), hoisted out
of the scan.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import flax.linen as nn

from rnnbench import linear_scan
from rnnbench import scan as scan_lib
from rnnbench.cells import register


@register("mingru")
class MinGRU(nn.Module):
  """minGRU over a whole sequence: ``(B, T, D) -> (B, T, H)``."""

  features: int
  scan: str = "sequential"
  unroll: int = 1
  log_space: bool = True

  supports_parallel: ClassVar[bool] = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scan_lib.check_scan_mode("mingru", self.scan, self.supports_parallel)
    bound = x.shape[-1] ** -0.5  # PyTorch's nn.Linear init
    init = scan_lib.uniform(-bound, bound)
    kernel = self.param("kernel", init, (x.shape[-1], 2 * self.features))
    bias = self.param("bias", init, (2 * self.features,))
    k = x @ kernel + bias  # the input projection for every step at once
    k_z, k_h = jnp.split(k, 2, axis=-1)
    if self.scan == "parallel" and self.log_space:
      log_h = linear_scan.log_parallel_scan(
          -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + linear_scan.log_g(k_h))
      return jnp.exp(log_h)
    z = jax.nn.sigmoid(k_z)
    h_tilde = linear_scan.g(k_h) if self.log_space else k_h
    return linear_scan.linear_scan(1.0 - z, z * h_tilde, mode=self.scan, unroll=self.unroll)

  def param_count(self, in_features: int) -> int:
    return (in_features + 1) * 2 * self.features
