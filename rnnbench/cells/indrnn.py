"""IndRNN, the independently recurrent neural network (Li et al. 2018, "Independently
Recurrent Neural Network (IndRNN): Building A Longer and Deeper RNN", CVPR,
arXiv:1803.04831).

Each unit has one recurrent weight of its own, an elementwise product instead of a matrix::

    h_t = relu(W x_t + u * h_{t-1} + b),    h_0 = 0

The relu makes the recurrence nonlinear in h, so IndRNN runs only with
``scan='sequential'`` (``nn.scan`` via ``rnnbench.scan.run``); ``W x_t + b`` is hoisted
out of the scan.

Initialisation: ``u ~ U(0, 1)`` (the paper's default for the recurrent weights);
``W`` lecun-normal and ``b = 0`` (our choice; the paper does not fix them). With
``max_length = T > 0`` the paper's bound for relu against exploding gradients applies:
``u`` is drawn from ``U(0, 2^(1/T))`` and clipped to ``|u| <= 2^(1/T)`` in the forward
pass (the paper clips the weight after each update instead; the effect is the same bound).
Params: ``kernel (D, H)``, ``recurrent_kernel (H,)``, ``bias (H,)``.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import flax.linen as nn

from rnnbench import scan as scan_lib
from rnnbench.cells import register


@register("indrnn")
class IndRNN(nn.Module):
  """IndRNN (relu) over a whole sequence: ``(B, T, D) -> (B, T, H)``."""

  features: int
  scan: str = "sequential"
  unroll: int = 1
  max_length: int = 0

  supports_parallel: ClassVar[bool] = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scan_lib.check_scan_mode("indrnn", self.scan, self.supports_parallel)
    bound = 2.0 ** (1.0 / self.max_length) if self.max_length > 0 else None
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (x.shape[-1], self.features))
    u = self.param("recurrent_kernel", nn.initializers.uniform(bound or 1.0),
                   (self.features,))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    if bound is not None:
      u = jnp.clip(u, -bound, bound)

    def step(h, xw_t, u):
      h = jax.nn.relu(xw_t + u * h)
      return h, h

    xw = x @ kernel + bias  # the input projection for every step at once
    h0 = jnp.zeros(x.shape[:1] + (self.features,), xw.dtype)
    _, hs = scan_lib.run(self, step, h0, xw, consts=(u,), unroll=self.unroll)
    return hs

  def param_count(self, in_features: int) -> int:
    return (in_features + 2) * self.features
