"""PyTorch eager (CPU) counterparts of ``step_breakdown``'s parts, on the same batch and shapes.

The model is ``references/torch_bench.Classifier`` and the optimizer
``torch.optim.Adam(fused=True)`` with Keras' epsilon, as ``torch_bench.py`` runs them. Each
part is a zero-argument call that returns when its work is done. Importing this module
raises ImportError when torch is missing.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "references"))
import torch_bench  # pylint: disable=wrong-import-position

NUM_CLASSES = 20


def environment() -> dict[str, Any]:
  """torch's version and thread counts (for the report's environment)."""
  return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
          "torch_interop_threads": torch.get_num_interop_threads()}


def _adam(params, lr: float) -> tuple[torch.optim.Optimizer, str]:
  """``Adam(fused=True)`` (``foreach=True`` where there is no fused kernel) and which."""
  try:
    return torch.optim.Adam(params, lr=lr, eps=torch_bench.KERAS_EPSILON, fused=True), "fused"
  except (RuntimeError, ValueError):
    return torch.optim.Adam(params, lr=lr, eps=torch_bench.KERAS_EPSILON,
                            foreach=True), "foreach"


def parts(config, batches, threads: int = 0
          ) -> tuple[dict[str, Callable[[], None]], list[str]]:
  """``{part: call}`` for ``step_breakdown.PARTS`` but the recurrence alone, and notes.

  The parts run on ``batches[0]`` (the step cycles through ``batches``); cotangents are
  fixed normal draws, the optimizer rows' gradients 1e-3 everywhere. ``threads``:
  ``torch.set_num_threads`` (0: PyTorch's default, one per core).
  """
  if threads:
    torch.set_num_threads(threads)
  m = config.model
  v, e = config.data.num_words, m.embed_dim
  torch.manual_seed(0)
  new = lambda: torch_bench.Classifier(m.cell, v, e, m.hidden_size, m.dense_size,
                                       NUM_CLASSES, m.dropout).train()
  model, opt_model = new(), new()  # opt_model: the optimizer rows' own params and grads
  loss_fn = (torch_bench.keras_crossentropy if config.train.loss == "keras"
             else F.cross_entropy)
  lr = config.train.learning_rate
  xs = [torch.from_numpy(b[0]) for b in batches]
  ys = [torch.from_numpy(b[1]).long() for b in batches]
  x, y = xs[0], ys[0]
  b, t = x.shape
  with torch.no_grad():
    emb = model.embedding(x)
    hs, _ = model.rnn(emb)
  w_ih = model.rnn.weight_ih_l0.detach()  # (G H, E)
  d_emb, d_hs = torch.randn_like(emb), torch.randn_like(hs)
  d_z = torch.randn(b * t, w_ih.shape[0])
  x2d = emb.reshape(b * t, e)
  emb_leaf, hs_leaf = emb.clone().requires_grad_(), hs.clone().requires_grad_()
  rnn_params = list(model.rnn.parameters())
  head_params = [*model.dense_1.parameters(), *model.dense_2.parameters()]

  def no_grad(fn):
    def call():
      with torch.no_grad():
        fn()
    return call

  def rnn_fwd_bwd():
    out, _ = model.rnn(emb_leaf)
    torch.autograd.grad(out, [emb_leaf, *rnn_params], d_hs)

  def head_fwd_bwd():
    z = model.dropout(hs_leaf.amax(dim=1))  # torch_bench.Classifier.forward after the RNN
    z = model.dropout(F.relu(model.dense_1(z)))
    torch.autograd.grad(loss_fn(model.dense_2(z), y), [hs_leaf, *head_params])

  for p in opt_model.parameters():
    p.grad = torch.full_like(p, 1e-3)
  table = [opt_model.embedding.weight]
  rest = [p for name, p in opt_model.named_parameters() if not name.startswith("embedding.")]
  adams = {"optimizer_embedding": _adam(table, lr)[0], "optimizer_rest": _adam(rest, lr)[0],
           "optimizer_all": _adam(list(opt_model.parameters()), lr)[0]}
  optimizer, kind = _adam(model.parameters(), lr)
  cycle = [0]

  def fwd_bwd(i: int = 0):
    optimizer.zero_grad(set_to_none=True)
    loss_fn(model(xs[i]), ys[i]).backward()

  def train_step():  # torch_bench's train step, cycling through the batches
    fwd_bwd(cycle[0])
    optimizer.step()
    cycle[0] = (cycle[0] + 1) % len(xs)

  fns = {
      "embedding_fwd": no_grad(lambda: model.embedding(x)),
      "embedding_bwd": no_grad(lambda: torch.ops.aten.embedding_dense_backward(
          d_emb, x, v, -1, False)),
      "projection_fwd": no_grad(lambda: torch.mm(x2d, w_ih.t())),
      "projection_bwd": no_grad(lambda: (torch.mm(d_z.t(), x2d), torch.mm(d_z, w_ih))),
      "rnn_layer_fwd": no_grad(lambda: model.rnn(emb)),
      "rnn_layer_fwd_bwd": rnn_fwd_bwd,
      "head_fwd_bwd": head_fwd_bwd,
      **{name: opt.step for name, opt in adams.items()},
      "model_fwd": no_grad(lambda: loss_fn(model(x), y)),
      "model_fwd_bwd": fwd_bwd,
      "train_step": train_step,
  }
  notes = torch_bench._notes(config, False) + [  # pylint: disable=protected-access
      f"torch.optim.Adam({kind}=True); torch {torch.__version__}, "
      f"{torch.get_num_threads()} threads"]
  return {name: _returns_none(fn) for name, fn in fns.items()}, notes


def _returns_none(fn: Callable[[], Any]) -> Callable[[], None]:
  def call() -> None:
    fn()
  return call
