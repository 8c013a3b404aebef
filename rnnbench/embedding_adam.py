"""Keras' Adam update of the embedding table in one pass, from the gradient of the rows a batch
gathered (a C++ kernel of ``rnnbench.cpu_kernels``, on one CPU device).

The table is ``num_words x embed_dim`` (the notebook's: 20000 x 128, 10 MB) and a batch
touches a few thousand of its rows, but Keras' Adam is dense: every row's moments decay and
every row moves, every step. Through autodiff and ``optax`` that is several passes over 10 MB
arrays: the table's gradient (a zero fill and a scatter-add), then the new ``m``, the new
``v`` and the new table, each XLA:CPU loop reading its inputs again (it has no multi-output
fusion). Here the step differentiates with respect to the gathered rows instead of the table
(``gathered_rows``: the ``Embedding``'s output gets a zero summand whose gradient is the rows'
gradient, the table's own gradient is stopped), and one kernel sums each row's gradient and
updates ``p``, ``m`` and ``v`` in place, each read and written once, with
``optim.keras_adam``'s ops in its order (rows no token touched decay, as in Keras).

Equal to the dense update to float32 rounding (the sum of a row's repeated tokens' gradients
may be in another order, and XLA may fuse a multiply and an add that the kernel rounds apart):
``tests/test_embedding_adam.py``. The train step uses it when ``applies`` (Keras' Adam
without gradient clipping, a float32 step, a model with an ``embedding`` table, one CPU
device, and the kernels build here) and only where it is lowered for cpu
(``jax.lax.platform_dependent``: a CUDA export made on a CPU host has the dense update);
else the dense update.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnbench import cpu_kernels
from rnnbench import models
from rnnbench import optim

TABLE = ("embedding", "embeddings")  # the table's path in the params


def applies(state) -> bool:
  """Whether ``state``'s train step can update its embedding table with the kernel."""
  table = state.params.get(TABLE[0], {}).get(TABLE[1])
  return (optim.keras_adam_hyperparams(state.tx) is not None and table is not None
          and table.dtype == jnp.float32
          and getattr(state.apply_fn, "compute_dtype", "float32") == "float32"
          and cpu_kernels.runs_here())


def _gather(table: jax.Array, tokens: jax.Array) -> jax.Array:
  return cpu_kernels.call("rnnbench_gather_rows", [tokens.shape + table.shape[-1:]], table,
                          tokens.astype(jnp.int32))[0]


@jax.custom_vjp
def lookup_at_zero(table: jax.Array, tokens: jax.Array, rows: jax.Array) -> jax.Array:
  """``stop_gradient(jnp.take(table, tokens, axis=0)) + rows`` where ``rows`` is zeros (its
  value is not read): the rows (a C++ kernel's copies, not XLA's gather with its per-element
  bounds select and the add), whose gradient goes to ``rows`` alone."""
  del rows
  return _gather(table, tokens)


lookup_at_zero.defvjp(lambda table, tokens, rows: (_gather(table, tokens), None),
                      lambda _, g: (None, None, g))


@contextlib.contextmanager
def gathered_rows(rows: jax.Array, tokens: list[jax.Array]) -> Iterator[None]:
  """While active, every ``models.Embedding`` call returns its rows plus ``rows`` (zeros of
  its output's shape, ``lookup_at_zero``), with the gradient to the table stopped, and
  appends the tokens it looked up to ``tokens``: the gradient of ``rows`` is then the
  gathered rows' gradient."""
  def interceptor(next_fun, args, kwargs, context):
    if isinstance(context.module, models.Embedding) and context.method_name == "__call__":
      tokens.append(args[0])
      return lookup_at_zero(context.module.get_variable("params", TABLE[1]), args[0], rows)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    yield


def update(table: jax.Array, mu: jax.Array, nu: jax.Array, tokens: jax.Array,
           rows_grad: jax.Array, lr_t: jax.Array, hyper: optim.KerasAdamHyperparams
           ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Keras' Adam of ``table`` (V, E) and its moments from ``rows_grad`` (..., E), the gradient
  of the rows gathered at ``tokens`` (...), with step size ``lr_t``; the new (table, mu, nu).
  """
  width = table.shape[-1]
  f32 = lambda x: np.float32(x)  # the constants as jnp rounds Python floats into float32 ops
  return cpu_kernels.call(
      "rnnbench_embedding_adam", [table.shape] * 3, table, mu, nu,
      tokens.reshape(-1).astype(jnp.int32), rows_grad.reshape(-1, width).astype(jnp.float32),
      jnp.asarray(lr_t, jnp.float32), aliases={0: 0, 1: 1, 2: 2},
      beta_1=f32(hyper.beta_1), one_minus_beta_1=f32(1.0 - hyper.beta_1),
      beta_2=f32(hyper.beta_2), one_minus_beta_2=f32(1.0 - hyper.beta_2),
      epsilon=f32(hyper.epsilon))


def apply_gradients(state, grads, tokens: jax.Array, rows_grad: jax.Array):
  """``state.apply_gradients(grads=...)`` with the table's update from its gathered rows'
  gradient: the other params through ``state.tx`` (the same Keras Adam, the same count),
  the table through ``update``. ``grads`` holds the other params' gradients (the table's
  entry is ignored)."""
  hyper = optim.keras_adam_hyperparams(state.tx)
  opt = state.opt_state
  rest = lambda tree: {k: v for k, v in tree.items() if k != TABLE[0]}
  updates, new_opt = state.tx.update(rest(grads), optim.KerasAdamState(
      count=opt.count, mu=rest(opt.mu), nu=rest(opt.nu)))
  params = optax.apply_updates(rest(state.params), updates)
  lr = hyper.learning_rate(opt.count) if callable(hyper.learning_rate) else hyper.learning_rate
  lr_t = optim.keras_adam_lr_t(lr, new_opt.count, hyper.beta_1, hyper.beta_2)
  name, leaf = TABLE
  table, mu, nu = update(state.params[name][leaf], opt.mu[name][leaf], opt.nu[name][leaf],
                         tokens, rows_grad, lr_t, hyper)
  with_table = lambda tree, full, value: {**tree, name: {**full[name], leaf: value}}
  return state.replace(
      step=state.step + 1, params=with_table(params, state.params, table),
      opt_state=optim.KerasAdamState(count=new_opt.count,
                                     mu=with_table(new_opt.mu, opt.mu, mu),
                                     nu=with_table(new_opt.nu, opt.nu, nu)))
