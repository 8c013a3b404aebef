"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv:2410.01201).

An LSTM whose gates see only the input, with normalised (length-independent) gates and
no output gate, so the recurrence is linear in h::

    f_t = sigmoid(W_f x_t + b_f),   i_t = sigmoid(W_i x_t + b_i)
    f'_t = f_t / (f_t + i_t),       i'_t = i_t / (f_t + i_t)
    h~_t = g(W_h x_t + b_h)         (log_space=True, the paper's default; plain W_h x_t + b_h
                                     when log_space=False)
    h_t  = f'_t * h_{t-1} + i'_t * h~_t,          h_0 = 0

In log space (the parallel form): ``d = softplus(-k_f) - softplus(-k_i)``,
``log f' = -softplus(d)``, ``log i' = -softplus(-d)``, ``log h~ = log_g(k_h)``.

``scan='parallel'`` runs ``jax.lax.associative_scan`` over time; ``'sequential'`` runs
``nn.scan``; both give the same ``h``. Initialisation: PyTorch's ``nn.Linear`` defaults,
``U(-1/sqrt(in), 1/sqrt(in))``, as in the paper's models. Params: ``kernel (in, 3 features)``
and ``bias (3 features,)`` (f, i, h~), hoisted out of the scan.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import flax.linen as nn

from rnnbench import linear_scan
from rnnbench import scan as scan_lib
from rnnbench.cells import register


@register("minlstm")
class MinLSTM(nn.Module):
  """minLSTM over a whole sequence: ``(B, T, D) -> (B, T, H)``."""

  features: int
  scan: str = "sequential"
  unroll: int = 1
  log_space: bool = True

  supports_parallel: ClassVar[bool] = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scan_lib.check_scan_mode("minlstm", self.scan, self.supports_parallel)
    bound = x.shape[-1] ** -0.5  # PyTorch's nn.Linear init
    init = scan_lib.uniform(-bound, bound)
    kernel = self.param("kernel", init, (x.shape[-1], 3 * self.features))
    bias = self.param("bias", init, (3 * self.features,))
    k = x @ kernel + bias  # the input projection for every step at once
    k_f, k_i, k_h = jnp.split(k, 3, axis=-1)
    # f' = f / (f + i) = sigmoid(-d) and i' = sigmoid(d), with d = log(i / f).
    d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
    if self.scan == "parallel" and self.log_space:
      log_h = linear_scan.log_parallel_scan(
          -jax.nn.softplus(d), -jax.nn.softplus(-d) + linear_scan.log_g(k_h))
      return jnp.exp(log_h)
    h_tilde = linear_scan.g(k_h) if self.log_space else k_h
    return linear_scan.linear_scan(jax.nn.sigmoid(-d), jax.nn.sigmoid(d) * h_tilde,
                                   mode=self.scan, unroll=self.unroll)

  def param_count(self, in_features: int) -> int:
    return (in_features + 1) * 3 * self.features
