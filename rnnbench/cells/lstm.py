"""Keras' LSTM: kernel (D, 4H), recurrent_kernel (H, 4H), bias (4H,); gate order i, f, c, o."""

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


def unit_forget_bias(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
  """Keras' LSTM bias init (unit_forget_bias=True): zeros with the forget block set to 1."""
  del key
  units = shape[-1] // 4
  return jnp.zeros(shape, dtype).at[units:2 * units].set(1.0)


@register("lstm")
class LSTM(nn.Module):
  """A Keras LSTM layer with ``return_sequences=True`` and zero initial state.

  c_t = f * c_{t-1} + i * tanh(z_c); h_t = o * tanh(c_t), where
  [z_i, z_f, z_c, z_o] = x_t W + h_{t-1} U + b and i, f, o = recurrent_activation(z).

  ``impl``: "fused" (default) runs the recurrence with ``rnnbench.fused_rnn.lstm``, a
  pure-JAX loop with a hand-written backward (the same forward ops, gradients equal to
  autodiff's to float32 rounding, faster on CPU: docs/speed.md; reverse-mode only);
  "nn_scan" scans the step with Flax's ``nn.scan`` and differentiates it with autodiff;
  "pallas" runs ``rnnbench.pallas_rnn.lstm`` (GPU kernels; interpret mode on CPU) and
  "auto" (config.model's default) Pallas on GPU, fused elsewhere
  (``rnnbench.pallas_rnn.resolve_impl``).
  ``unroll``: loop steps per iteration, or "auto" (``rnnbench.scan.AUTO_UNROLL``).
  """
  features: int
  recurrent_activation: str = "hard_sigmoid"
  scan: str = "sequential"
  unroll: int | str = 1
  impl: str = "fused"
  supports_parallel: ClassVar[bool] = False  # the recurrence is nonlinear
  takes_ids: ClassVar[bool] = True  # __call__'s ids: the tokens of an embedding's rows

  @nn.compact
  def __call__(self, x: jax.Array, ids: jax.Array | None = None) -> jax.Array:
    """(B, T, D) -> hidden states for every step, (B, T, H). ``ids`` (B, T): the tokens
    whose embedding rows ``x`` is, if it is (``pallas_rnn.input_projection``)."""
    scan_lib.check_scan_mode("lstm", self.scan, self.supports_parallel)
    u = self.features
    kernel = self.param("kernel", nn.initializers.glorot_uniform(), (x.shape[-1], 4 * u))
    recurrent_kernel = self.param("recurrent_kernel", nn.initializers.orthogonal(), (u, 4 * u))
    bias = self.param("bias", unit_forget_bias, (4 * u,))
    gate = activations.get_activation(self.recurrent_activation)
    unroll = scan_lib.resolve_unroll(self.unroll)
    impl = pallas_rnn.cell_mode("lstm", scan_lib.check_impl("lstm", self.impl), u,
                                recurrent_kernel.dtype)
    if impl != "nn_scan":
      # the bias is added inside the kernel's loop
      xw = pallas_rnn.input_projection(impl, gate, x, kernel, ids)
      if impl == "fused":
        return scan_lib.batch_major(fused_rnn.lstm(gate, xw, bias, recurrent_kernel, unroll))
      if impl == "cpu":
        cpu_rnn.check("lstm", gate, recurrent_kernel.dtype)
        return scan_lib.batch_major(cpu_rnn.lstm(gate, xw, bias, recurrent_kernel, unroll))
      return scan_lib.batch_major(
          pallas_rnn.lstm(gate, xw, bias, recurrent_kernel, unroll, impl))

    def step(carry, xw_t, recurrent_kernel):
      h, c = carry
      z = xw_t + h @ recurrent_kernel
      z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
      c = gate(z_f) * c + gate(z_i) * jnp.tanh(z_c)
      h = gate(z_o) * jnp.tanh(c)
      return (h, c), h

    xw = x @ kernel + bias  # the input projection for every step at once
    zeros = jnp.zeros(x.shape[:1] + (u,), xw.dtype)
    _, hs = scan_lib.run(self, step, (zeros, zeros), xw, consts=(recurrent_kernel,),
                         unroll=unroll)
    return hs

  def param_count(self, in_features: int) -> int:
    """4u (in + u + 1)."""
    return 4 * self.features * (in_features + self.features + 1)
