"""QRNN, the quasi-recurrent neural network (Bradbury et al. 2017, "Quasi-Recurrent
Neural Networks", ICLR, arXiv:1611.01576), with fo-pooling.

A masked (causal) convolution of width ``window`` over time gives every gate at once;
only the elementwise pooling is recurrent, and it is linear in c::

    Z = tanh(W_z * X + b_z),  F = sigmoid(W_f * X + b_f),  O = sigmoid(W_o * X + b_o)
    c_t = f_t * c_{t-1} + (1 - f_t) * z_t,    c_0 = 0
    h_t = o_t * c_t

where ``W * X`` at step t sees ``x_{t-window+1}, ..., x_t`` (zeros before the start).
The convolution is hoisted out of the scan; ``scan='parallel'`` runs the pooling with
``jax.lax.associative_scan``, ``'sequential'`` with ``nn.scan``. Initialisation: the
authors' implementation is a PyTorch ``nn.Linear`` over the window, so
``U(-1/sqrt(window in), 1/sqrt(window in))`` for kernel and bias. Zoneout (the paper's
regulariser on F) is not implemented.
Params: ``kernel (window in, 3 features)`` (rows: oldest step first; columns: z, f, o)
and ``bias (3 features,)``.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import flax.linen as nn

from rnnbench import linear_scan
from rnnbench import scan as scan_lib
from rnnbench.cells import register


@register("qrnn")
class QRNN(nn.Module):
  """QRNN (fo-pooling) over a whole sequence: ``(B, T, D) -> (B, T, H)``."""

  features: int
  scan: str = "sequential"
  unroll: int = 1
  window: int = 2

  supports_parallel: ClassVar[bool] = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scan_lib.check_scan_mode("qrnn", self.scan, self.supports_parallel)
    t = x.shape[1]
    padded = jnp.pad(x, ((0, 0), (self.window - 1, 0), (0, 0)))
    windows = jnp.concatenate([padded[:, k:k + t] for k in range(self.window)], axis=-1)
    bound = windows.shape[-1] ** -0.5  # PyTorch's nn.Linear init
    init = scan_lib.uniform(-bound, bound)
    kernel = self.param("kernel", init, (windows.shape[-1], 3 * self.features))
    bias = self.param("bias", init, (3 * self.features,))
    gates = windows @ kernel + bias  # the convolution, for every step at once
    k_z, k_f, k_o = jnp.split(gates, 3, axis=-1)
    f = jax.nn.sigmoid(k_f)
    c = linear_scan.linear_scan(f, (1.0 - f) * jnp.tanh(k_z), mode=self.scan,
                                unroll=self.unroll)
    return jax.nn.sigmoid(k_o) * c

  def param_count(self, in_features: int) -> int:
    return (self.window * in_features + 1) * 3 * self.features
