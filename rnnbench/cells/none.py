"""``none``: the no-recurrence baseline, each step a function of its own token only.

``h_t = tanh(W x_t + b)``: a simple RNN with its recurrent kernel removed, so the classifier
is embedding -> a per-step projection to ``hidden_size`` -> the same pooling and head. Any
accuracy it reaches needs no memory (a bag of tokens under max/mean pooling; the last token
alone under ``pooling='last'``): the floor a recurrent cell must beat.

``scan`` is accepted for the config's sake; there is nothing to scan, so 'sequential' and
'parallel' are the same computation. Initialisation: PyTorch's ``nn.Linear`` defaults,
``U(-1/sqrt(in), 1/sqrt(in))``, as the other new cells. Params: ``kernel (in, features)``,
``bias (features,)``.
"""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp
import flax.linen as nn

from rnnbench import scan as scan_lib
from rnnbench.cells import register


@register("none")
class NoRecurrence(nn.Module):
  """A per-step ``tanh`` projection: ``(B, T, D) -> (B, T, features)``, no state."""

  features: int
  scan: str = "sequential"

  supports_parallel: ClassVar[bool] = True
  recurrent: ClassVar[bool] = False  # step t sees x_t only (tests/test_cells.py)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scan_lib.check_scan_mode("none", self.scan, self.supports_parallel)
    bound = x.shape[-1] ** -0.5  # PyTorch's nn.Linear init
    init = scan_lib.uniform(-bound, bound)
    kernel = self.param("kernel", init, (x.shape[-1], self.features))
    bias = self.param("bias", init, (self.features,))
    return jnp.tanh(x @ kernel + bias)

  def param_count(self, in_features: int) -> int:
    return (in_features + 1) * self.features
