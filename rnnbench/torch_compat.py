"""PyTorch ``nn.LSTM`` / ``nn.GRU`` weights <-> rnnbench's ``lstm`` / ``gru`` cells.

``from_torch(module) -> (options, params)``: ``options`` are the ``config.model`` fields the
module implies (``cell``, ``hidden_size``, ``recurrent_activation="sigmoid"``, and for the
GRU ``reset_after=True``); ``params`` is the cell's own tree, so that::

    options, params = torch_compat.from_torch(torch_lstm)
    y = cells.create(options).apply({"params": params}, x)   # x, y: (B, T, D) / (B, T, H)

equals ``torch_lstm(x)[0]`` (with ``x`` transposed to ``(T, B, D)`` for a module built with
``batch_first=False``: rnnbench's cells are always batch-major). ``to_torch(options,
params)`` builds the module back. torch is optional (the ``references`` extra); only these
two functions import it.

The layouts (torch keeps ``W x``, rnnbench ``x W``, so every matrix is transposed):

* LSTM. torch: ``weight_ih_l0 (4H, D)``, ``weight_hh_l0 (4H, H)``, ``bias_ih_l0``,
  ``bias_hh_l0 (4H,)``, gates i, f, g, o. rnnbench: ``kernel (D, 4H)``,
  ``recurrent_kernel (H, 4H)``, ``bias (4H,)``, gates i, f, c, o (the same order). The
  two torch biases are only ever added, so ``bias = bias_ih + bias_hh``; ``to_torch``
  puts it in ``bias_ih`` and zeros in ``bias_hh`` (the same outputs).
* GRU. torch: gates r, z, n, ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
  ``h' = (1 - z) n + z h``: Keras' ``reset_after=True`` GRU. rnnbench: gates z, r, h
  and ``bias (2, 3H) = [input bias, recurrent bias]``, so each matrix and bias has its
  first two blocks swapped; both biases map one to one (exact both ways).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

_GATES = {"lstm": 4, "gru": 3}


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError("rnnbench.torch_compat needs PyTorch; install it with "
                      "pip install -e '.[references]'") from None
  return torch


def _check_module(module: Any) -> str:
  """The cell name for a supported module; a one-line ValueError naming the problem else."""
  torch = _torch()
  kinds = {torch.nn.LSTM: "lstm", torch.nn.GRU: "gru"}
  cell = kinds.get(type(module))
  if cell is None:
    raise ValueError(f"from_torch takes a torch.nn.LSTM or torch.nn.GRU, got "
                     f"{type(module).__name__}")
  problems = []
  if module.num_layers != 1:
    problems.append(f"num_layers={module.num_layers} (convert each layer as its own "
                    "one-layer module; rnnbench stacks them with config.model.num_layers)")
  if module.bidirectional:
    problems.append("bidirectional=True (convert each direction as its own module; "
                    "rnnbench's config.model.bidirectional wraps one cell per direction)")
  if getattr(module, "proj_size", 0):
    problems.append(f"proj_size={module.proj_size} (rnnbench's LSTM has no projection)")
  if not module.bias:
    problems.append("bias=False (rnnbench's cells always have a bias: use bias=True, "
                    "with zero biases for the same outputs)")
  if problems:
    raise ValueError(f"from_torch: unsupported {type(module).__name__}: " + "; ".join(problems))
  return cell


def _blocks(array: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
  """``array``'s leading axis split into equal gate blocks, put back in ``order``."""
  parts = np.split(array, len(order), axis=0)
  return np.concatenate([parts[i] for i in order], axis=0)


_GRU_ORDER = (1, 0, 2)  # torch r, z, n <-> rnnbench z, r, h (its own inverse)


def from_torch(module: Any) -> tuple[dict[str, Any], dict[str, jnp.ndarray]]:
  """``(options, params)`` for a one-layer, one-direction ``torch.nn.LSTM`` / ``nn.GRU``.

  Returns:
    options: ``config.model`` fields: ``cell``, ``hidden_size``, ``recurrent_activation``
      (``"sigmoid"``), and ``reset_after=True`` for a GRU.
    params: float32 ``kernel (D, G H)``, ``recurrent_kernel (H, G H)`` and ``bias``
      (``(4H,)`` LSTM, ``(2, 3H)`` GRU), for ``cells.create(options)``.
  """
  cell = _check_module(module)
  get = lambda name: getattr(module, name).detach().cpu().float().numpy()
  w_ih, w_hh = get("weight_ih_l0"), get("weight_hh_l0")
  b_ih, b_hh = get("bias_ih_l0"), get("bias_hh_l0")
  options: dict[str, Any] = dict(cell=cell, hidden_size=module.hidden_size,
                                 recurrent_activation="sigmoid")
  if cell == "lstm":
    params = dict(kernel=w_ih.T, recurrent_kernel=w_hh.T, bias=b_ih + b_hh)
  else:
    options["reset_after"] = True
    params = dict(kernel=_blocks(w_ih, _GRU_ORDER).T, recurrent_kernel=_blocks(w_hh, _GRU_ORDER).T,
                  bias=np.stack([_blocks(b_ih, _GRU_ORDER), _blocks(b_hh, _GRU_ORDER)]))
  return options, {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}


def to_torch(options: Mapping[str, Any], params: Mapping[str, Any], *,
             batch_first: bool = True) -> Any:
  """The ``torch.nn.LSTM`` / ``nn.GRU`` (float32, CPU) with the cell's weights.

  Args:
    options: ``config.model`` fields (``cell``; ``recurrent_activation`` must be
      ``"sigmoid"`` and, for a GRU, ``reset_after`` True: what torch's modules compute).
    params: the cell's ``kernel``, ``recurrent_kernel``, ``bias``.
    batch_first: the module's input layout.
  """
  torch = _torch()
  cell = options.get("cell")
  if cell not in _GATES:
    raise ValueError(f"to_torch converts the lstm and gru cells, not config.model.cell={cell!r}")
  if options.get("recurrent_activation", "hard_sigmoid") != "sigmoid":
    raise ValueError(
        f"to_torch: torch's {cell.upper()} gates are sigmoid; set "
        f"config.model.recurrent_activation='sigmoid' (got "
        f"{options.get('recurrent_activation', 'hard_sigmoid')!r})")
  if cell == "gru" and not options.get("reset_after", False):
    raise ValueError("to_torch: torch's GRU is the reset_after=True GRU; it cannot run "
                     "config.model.reset_after=False (the Keras 2.2 GRU)")
  kernel, recurrent, bias = (np.asarray(params[k], np.float32)
                             for k in ("kernel", "recurrent_kernel", "bias"))
  hidden = recurrent.shape[0]
  if kernel.shape[1] != _GATES[cell] * hidden:
    raise ValueError(f"to_torch: a {cell} kernel is (in, {_GATES[cell]} * {hidden}); got "
                     f"{kernel.shape}")
  if cell == "lstm":
    tensors = dict(weight_ih_l0=kernel.T, weight_hh_l0=recurrent.T, bias_ih_l0=bias,
                   bias_hh_l0=np.zeros_like(bias))
  else:
    tensors = dict(weight_ih_l0=_blocks(kernel.T, _GRU_ORDER),
                   weight_hh_l0=_blocks(recurrent.T, _GRU_ORDER),
                   bias_ih_l0=_blocks(bias[0], _GRU_ORDER), bias_hh_l0=_blocks(bias[1], _GRU_ORDER))
  module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](
      kernel.shape[0], hidden, batch_first=batch_first)
  with torch.no_grad():
    for name, value in tensors.items():
      getattr(module, name).copy_(torch.from_numpy(np.array(value, np.float32)))
  return module
