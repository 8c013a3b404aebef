"""Keras' GRU: kernel (D, 3H), recurrent_kernel (H, 3H); gate order z, r, h.

reset_after=False (Keras 2.2's default, the notebook's): bias (3H,),
  h~ = tanh(x W_h + b_h + (r * h) U_h).
reset_after=True (Keras >= 2.3, cuDNN): bias (2, 3H) = [input bias, recurrent bias],
  h~ = tanh(x W_h + b_in_h + r * (h U_h + b_rec_h)).
Both: h_t = z * h_{t-1} + (1 - z) * h~.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from rnnbench import activations
from rnnbench import cpu_rnn
from rnnbench import fused_rnn
from rnnbench import pallas_rnn
from rnnbench import scan as scan_lib
from rnnbench.cells import register


@register("gru")
class GRU(nn.Module):
  """A Keras GRU layer with ``return_sequences=True`` and zero initial state.

  ``impl``: "fused" (default) runs the recurrence with ``rnnbench.fused_rnn.gru`` /
  ``gru_reset_after``, pure-JAX loops with a hand-written backward (the same forward ops,
  gradients equal to autodiff's to float32 rounding, faster on CPU: docs/speed.md;
  reverse-mode only); "nn_scan" scans the step with Flax's ``nn.scan`` and differentiates
  it with autodiff; "pallas" runs ``rnnbench.pallas_rnn.gru`` / ``gru_reset_after`` (GPU
  kernels; interpret mode on CPU) and "auto" (config.model's default) Pallas on GPU, fused
  elsewhere (``rnnbench.pallas_rnn.resolve_impl``). ``unroll``: loop steps per iteration, or
  "auto" (``rnnbench.scan.AUTO_UNROLL``).
  """
  features: int
  recurrent_activation: str = "hard_sigmoid"
  reset_after: bool = False
  scan: str = "sequential"
  unroll: int | str = 1
  impl: str = "fused"
  supports_parallel: ClassVar[bool] = False  # the recurrence is nonlinear
  takes_ids: ClassVar[bool] = True  # __call__'s ids: the tokens of an embedding's rows

  @nn.compact
  def __call__(self, x: jax.Array, ids: jax.Array | None = None) -> jax.Array:
    """(B, T, D) -> hidden states for every step, (B, T, H). ``ids`` (B, T): the tokens
    whose embedding rows ``x`` is, if it is (``pallas_rnn.input_projection``)."""
    scan_lib.check_scan_mode("gru", self.scan, self.supports_parallel)
    u = self.features
    kernel = self.param("kernel", nn.initializers.glorot_uniform(), (x.shape[-1], 3 * u))
    recurrent_kernel = self.param("recurrent_kernel", nn.initializers.orthogonal(), (u, 3 * u))
    bias_shape = (2, 3 * u) if self.reset_after else (3 * u,)
    bias = self.param("bias", nn.initializers.zeros_init(), bias_shape)
    gate = activations.get_activation(self.recurrent_activation)
    unroll = scan_lib.resolve_unroll(self.unroll)
    impl = pallas_rnn.cell_mode("gru_reset_after" if self.reset_after else "gru",
                                scan_lib.check_impl("gru", self.impl), u,
                                recurrent_kernel.dtype)
    if impl != "nn_scan":
      # the biases are added inside the kernel's loop; the C++ kernels run reset_after=False
      xw = pallas_rnn.input_projection(impl, gate, x, kernel,
                                       None if self.reset_after else ids)
      if self.reset_after:
        if impl == "cpu":
          raise ValueError("config.model.impl='cpu' has no kernel for the reset_after=True "
                           "GRU; use config.model.impl='auto' or 'fused'")
        args = (gate, xw, bias[0], recurrent_kernel, bias[1], unroll)
        hs = (fused_rnn.gru_reset_after(*args) if impl == "fused"
              else pallas_rnn.gru_reset_after(*args, impl))
      else:
        args = (gate, xw, bias, recurrent_kernel, unroll)
        if impl == "cpu":
          cpu_rnn.check("gru", gate, recurrent_kernel.dtype)
          hs = cpu_rnn.gru(*args)
        else:
          hs = fused_rnn.gru(*args) if impl == "fused" else pallas_rnn.gru(*args, impl)
      return scan_lib.batch_major(hs)

    if self.reset_after:
      input_bias, recurrent_bias = bias[0], bias[1]

      def step(h, xw_t, recurrent_kernel, recurrent_bias):
        x_z, x_r, x_h = jnp.split(xw_t, 3, axis=-1)
        h_z, h_r, h_h = jnp.split(h @ recurrent_kernel + recurrent_bias, 3, axis=-1)
        z, r = gate(x_z + h_z), gate(x_r + h_r)
        h = z * h + (1 - z) * jnp.tanh(x_h + r * h_h)
        return h, h

      consts = (recurrent_kernel, recurrent_bias)
    else:
      input_bias = bias

      def step(h, xw_t, recurrent_kernel):
        x_z, x_r, x_h = jnp.split(xw_t, 3, axis=-1)
        h_z, h_r = jnp.split(h @ recurrent_kernel[:, :2 * u], 2, axis=-1)
        z, r = gate(x_z + h_z), gate(x_r + h_r)
        h_tilde = jnp.tanh(x_h + (r * h) @ recurrent_kernel[:, 2 * u:])
        h = z * h + (1 - z) * h_tilde
        return h, h

      consts = (recurrent_kernel,)

    xw = x @ kernel + input_bias  # the input projection for every step at once
    h0 = jnp.zeros(x.shape[:1] + (u,), xw.dtype)
    _, hs = scan_lib.run(self, step, h0, xw, consts=consts, unroll=unroll)
    return hs

  def param_count(self, in_features: int) -> int:
    """3u (in + u + 1), or 3u (in + u + 2) with reset_after."""
    return 3 * self.features * (in_features + self.features + (2 if self.reset_after else 1))
