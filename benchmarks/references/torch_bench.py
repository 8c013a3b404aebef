"""The notebook's classifier in PyTorch, timed like ``python -m rnnbench.bench``.

Eager with ``torch.optim.Adam(fused=True)``, or ``--compile`` (``torch.compile`` of the
model; the optimizer step stays the fused kernel). Dynamo does not trace nn.LSTM/GRU by
default (``allow_rnn=False``): they run eagerly between the compiled embedding and dense
parts. (With ``allow_rnn=True`` it unrolls the time loop: minutes to compile, and no faster
on CPU.)::

    python benchmarks/references/torch_bench.py --config=configs/gru.py --json=/tmp/t.json
    python benchmarks/references/torch_bench.py --config=configs/lstm.py --compile

Not the same cell math as rnnbench's: PyTorch's GRU is the reset_after=True variant, its
gates are sigmoid (not Keras 2's hard sigmoid), and its LSTM/GRU have two bias vectors.
Each result's ``notes`` says which of these apply.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.nn import functional as F

import common  # the sibling module: a script's folder is first on sys.path
from rnnbench import runinfo

MODES = ("train", "forward", "forward_backward", "optimizer")
KERAS_EPSILON = 1e-7


class Classifier(nn.Module):
  """Embedding -> LSTM|GRU (every step) -> max over time -> Dropout -> Dense(relu) -> ..."""

  def __init__(self, cell: str, num_words: int, embed_dim: int, hidden_size: int,
               dense_size: int, num_classes: int, dropout: float):
    super().__init__()
    self.embedding = nn.Embedding(num_words, embed_dim)
    rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
    self.rnn = rnn_cls(embed_dim, hidden_size, batch_first=True)
    self.dropout = nn.Dropout(dropout)
    self.dense_1 = nn.Linear(hidden_size, dense_size)
    self.dense_2 = nn.Linear(dense_size, num_classes)

  def forward(self, tokens: torch.Tensor) -> torch.Tensor:
    x, _ = self.rnn(self.embedding(tokens))
    x = self.dropout(x.amax(dim=1))
    x = self.dropout(F.relu(self.dense_1(x)))
    return self.dense_2(x)


def keras_crossentropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
  """rnnbench's 'keras' loss: clipped cross-entropy on the softmax probabilities."""
  probs = torch.softmax(logits, dim=-1).clamp(KERAS_EPSILON, 1.0 - KERAS_EPSILON)
  return -torch.log(probs.gather(1, labels[:, None].long())).mean()


def _notes(config, compiled: bool) -> list[str]:
  m = config.model
  notes = ["PyTorch LSTM/GRU keep two bias vectors (b_ih, b_hh): 2*G*H more params than Keras"]
  if m.recurrent_activation != "sigmoid":
    notes.append(f"PyTorch gates are sigmoid; the config asks {m.recurrent_activation}")
  if m.cell == "gru" and not m.reset_after:
    notes.append("PyTorch's GRU is reset_after=True style; the config asks reset_after=False")
  if config.train.optimizer == "keras_adam":
    notes.append("torch Adam adds eps (1e-7) to sqrt(v_hat), Keras' Adam to sqrt(v)")
  if compiled:
    notes.append("torch.compile(model): Dynamo leaves nn.LSTM/GRU eager (a graph break; "
                 "allow_rnn=False) and compiles the rest; optimizer.step stays eager")
  return notes


def main() -> None:
  def extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads; 0: PyTorch's default")
  args = common.parse_args(__doc__.splitlines()[0], MODES, extra)
  if args.threads:
    torch.set_num_threads(args.threads)
  config = common.load_config(args)
  m = config.model
  torch.manual_seed(args.seed)
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
  x_np, y_np = common.synthetic_batch(config.train.batch_size, config.data.maxlen,
                                      config.data.num_words, args.num_classes, args.seed,
                                      tokens=args.tokens)
  x = torch.from_numpy(x_np).to(device)
  y = torch.from_numpy(y_np).long().to(device)
  loss_fn = keras_crossentropy if config.train.loss == "keras" else F.cross_entropy
  tool = "torch-compile" if args.compile else "torch-eager"
  fused = True
  env = runinfo.environment(
      torch=torch.__version__, backend=device.type,
      device_kind=(torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
      device_count=torch.cuda.device_count() if device.type == "cuda" else 1,
      torch_threads=torch.get_num_threads(), torch_interop_threads=torch.get_num_interop_threads())

  results = []
  for mode in args.modes:
    model = Classifier(m.cell, config.data.num_words, m.embed_dim, m.hidden_size,
                       m.dense_size, args.num_classes, m.dropout).to(device).train()
    try:
      optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate,
                                   eps=KERAS_EPSILON, fused=fused)
    except (RuntimeError, ValueError):  # no fused kernel for this device
      fused = False
      optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate,
                                   eps=KERAS_EPSILON, foreach=True)
    run = torch.compile(model) if args.compile else model
    params = {name: sum(p.numel() for p in child.parameters())
              for name, child in model.named_children() if name != "dropout"}
    params["total"] = sum(params.values())

    def loss_of() -> torch.Tensor:
      return loss_fn(run(x), y)

    def train_step() -> None:
      optimizer.zero_grad(set_to_none=True)
      loss_of().backward()
      optimizer.step()
      sync()

    def forward() -> None:
      with torch.no_grad():
        loss_of()
      sync()

    def forward_backward() -> None:
      optimizer.zero_grad(set_to_none=True)
      loss_of().backward()
      sync()

    def optimizer_step() -> None:
      optimizer.step()
      sync()

    if mode == "optimizer":
      for p in model.parameters():
        p.grad = torch.full_like(p, 1e-3)
    step = {"train": train_step, "forward": forward, "forward_backward": forward_backward,
            "optimizer": optimizer_step}[mode]
    notes = _notes(config, args.compile) + [
        f"torch.optim.Adam({'fused' if fused else 'foreach'}=True)"]
    try:
      first, times = common.time_calls(step, args.steps, args.warmup)
      peak = ({"bytes": torch.cuda.max_memory_allocated(), "source": "torch_cuda_max_allocated"}
              if device.type == "cuda" else None)
      results.append(common.record(
          config, mode, first_call_s=first, times=times,
          forward_passes={"forward": 1, "optimizer": 0}.get(mode, 3),
          num_classes=args.num_classes, params=params, peak_memory=peak, notes=notes,
          steps=args.steps, warmup=args.warmup))
    except Exception as e:  # pylint: disable=broad-except
      results.append(common.record(config, mode, error=runinfo.error_text(e), notes=notes))
  common.finish(common.report(tool, config, args, env, results), args.json)


if __name__ == "__main__":
  main()
