"""The GPU suite: rnnbench's recurrences against PyTorch cuDNN, in one command.

On one H200 (docs/gpu.md has the ``run`` call; benchmarks/gpu_run.sh installs what the GPU
image lacks), at most ``--budget_s`` seconds of cases (default 420: the command fits in 8
minutes), writing ``results/gpu_suite.json`` and ``results/gpu_suite.md``::

    python benchmarks/gpu_suite.py
    python benchmarks/gpu_suite.py --smoke --out /tmp/suite   # tiny shapes, any machine, seconds

What it times, at the notebook's shape (B 32, T 100, H 50) and the large ones (B 256,
T 1000, H 256 and 512), in float32 and bfloat16 (``config.train.dtype``, mixed precision
on float32 params; torch: ``torch.autocast``):

* ``rnn``: the notebook's classifier with an LSTM, the cuDNN-style GRU (``reset_after``,
  sigmoid gates) and the Keras 2.2 GRU (``reset_after=False``, hard sigmoid, which cuDNN
  cannot run: it is timed against cuDNN's GRU), with ``config.model.impl`` nn_scan, fused
  and pallas (where this checkout has it), and PyTorch's ``nn.LSTM``/``nn.GRU`` (cuDNN on a
  GPU) in the same classifier (benchmarks/references/torch_bench.py) with the same
  recurrent weights (``rnnbench.torch_compat.to_torch``).
* ``linear``: the same classifier with mingru and lru, ``config.model.scan`` sequential,
  parallel and pallas.

Per case and mode (``train``: the full train step, forward, backward and Keras-Adam update;
``forward_backward``): the median step time, the compile time, XLA's memory analysis of the
compiled step (arguments + outputs + temporaries; torch: ``max_memory_allocated``), which
implementation ran (the Pallas kernels counted in the lowered train step: compiled Triton /
Mosaic GPU calls, or interpret mode) and, for the LSTM and the cuDNN GRU, the largest
difference of rnnbench's layer outputs from torch's on the same weights and input (float32,
full-precision matmuls on both sides). Cases run in priority order (float32 first); those
past the budget are recorded as skipped, so one run always finishes and says what it left.
"""

from __future__ import annotations

import os

# torch and JAX share the GPU: JAX must not take 75% of it up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse  # pylint: disable=wrong-import-position
import datetime  # pylint: disable=wrong-import-position
import pathlib  # pylint: disable=wrong-import-position
import platform  # pylint: disable=wrong-import-position
import sys  # pylint: disable=wrong-import-position
import time  # pylint: disable=wrong-import-position
from collections.abc import Sequence  # pylint: disable=wrong-import-position
from typing import Any  # pylint: disable=wrong-import-position

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

ROOT = pathlib.Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks" / "references"):
  if str(path) not in sys.path:
    sys.path.insert(0, str(path))

from rnnbench import cells  # pylint: disable=wrong-import-position
from rnnbench import optim  # pylint: disable=wrong-import-position
from rnnbench import pallas_scan  # pylint: disable=wrong-import-position
from rnnbench import runinfo  # pylint: disable=wrong-import-position
from rnnbench import scan as scan_lib  # pylint: disable=wrong-import-position
from rnnbench import torch_compat  # pylint: disable=wrong-import-position
from rnnbench import train  # pylint: disable=wrong-import-position
from rnnbench.bench import runner  # pylint: disable=wrong-import-position
from rnnbench.configs import default  # pylint: disable=wrong-import-position

SHAPES = (("notebook", 32, 100, 50), ("large", 256, 1000, 256), ("large", 256, 1000, 512))
SMOKE_SHAPES = (("smoke", 3, 5, 8),)
DTYPES = ("float32", "bfloat16")
MODES = ("train", "forward_backward")
# The recurrent layers timed against torch: config.model fields, and torch's module.
RNN_VARIANTS = {
    "lstm": (dict(cell="lstm", recurrent_activation="sigmoid"), "lstm"),
    "gru": (dict(cell="gru", recurrent_activation="sigmoid", reset_after=True), "gru"),
    "gru_keras22": (dict(cell="gru", recurrent_activation="hard_sigmoid", reset_after=False),
                    "gru"),  # no cuDNN equivalent: against cuDNN's (reset_after) GRU
}
LINEAR_CELLS = ("mingru", "lru")
SCANS = ("sequential", "parallel", "pallas")
# Kernel custom calls in a lowered step: Pallas' Triton and Mosaic GPU backends.
KERNEL_CALLS = {"triton": "__gpu$xla.gpu.triton", "mosaic_gpu": "mosaic_gpu"}


def impls() -> list[str]:
  """The LSTM/GRU implementations timed (every one of rnnbench.scan.IMPLS but "auto")."""
  return [i for i in ("nn_scan", "fused", "pallas") if i in scan_lib.IMPLS]


def case_config(variant: dict[str, Any], batch: int, steps: int, hidden: int,
                dtype: str) -> Any:
  config = default.get_config()
  config.model.update(hidden_size=hidden, **variant)
  config.data.maxlen = steps
  config.train.update(batch_size=batch, dtype=dtype)
  return config


def _timing(shape_name: str, smoke: bool) -> Any:
  settings = runner.default_bench_config()
  settings.steps, settings.warmup = ((2, 1) if smoke else (20, 3) if shape_name == "notebook"
                                     else (5, 1))
  return settings


def kernels_in(config: Any, num_classes: int) -> dict[str, Any]:
  """The Pallas kernels in the lowered train step: compiled calls, or interpret mode."""
  state = train.create_train_state(config, num_classes, jax.random.key(0))
  batch = tuple(jnp.asarray(a) for a in runinfo.synthetic_batch(
      config.train.batch_size, config.data.maxlen, config.data.num_words, num_classes))
  text = train.train_step.lower(state, batch, train.zero_metrics(),
                                loss_fn=optim.make_loss(config.train.loss)).as_text(
                                    debug_info=True)  # op names: pallas_call where interpreted
  found = {name: text.count(call) for name, call in KERNEL_CALLS.items()}
  found["interpreted"] = sum(found.values()) == 0 and "pallas_call" in text
  found["platform"] = jax.default_backend()
  return found


def parity(variant: dict[str, Any], impl: str, hidden: int, batch: int, steps: int,
           embed: int) -> float:
  """max |rnnbench layer - torch layer| on the same weights and x, float32, full precision."""
  import torch  # pylint: disable=g-import-not-at-top
  options = dict(variant, hidden_size=hidden, impl=impl)
  cell = cells.create(options)
  x = jax.random.normal(jax.random.key(7), (batch, steps, embed))
  params = cell.init(jax.random.key(8), x[:, :1])["params"]
  params = dict(params, bias=0.1 * jax.random.normal(jax.random.key(9), params["bias"].shape))
  device = "cuda" if torch.cuda.is_available() else "cpu"
  module = torch_compat.to_torch(options, params).to(device)
  tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
  torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
  try:
    with torch.no_grad():
      want = module(torch.from_numpy(np.array(x)).to(device))[0].cpu().numpy()
  finally:
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
  with jax.default_matmul_precision("highest"):
    got = np.asarray(jax.jit(cell.apply)({"params": params}, x))
  return float(np.max(np.abs(got - want)))


def run_jax(section: str, name: str, knob: dict[str, Any], variant: dict[str, Any],
            shape: tuple[str, int, int, int], dtype: str, smoke: bool,
            num_classes: int) -> list[dict[str, Any]]:
  """One rnnbench case: a record per mode (rnnbench.bench.runner's measurements)."""
  shape_name, b, t, h = shape
  config = case_config({**variant, **knob}, b, t, h, dtype)
  settings = _timing(shape_name, smoke)
  settings.num_classes = num_classes
  case = runner.Case(config.model.cell, b, t, h)
  extra = dict(section=section, variant=name, shape=shape_name, dtype=dtype, **knob,
               framework="rnnbench")
  if "pallas" in (knob.get("impl"), knob.get("scan")) or knob.get("impl") == "auto":
    try:
      extra["kernels"] = kernels_in(config, num_classes)
    except Exception as e:  # pylint: disable=broad-except
      extra["kernels"] = {"error": runinfo.error_text(e)}  # pylint: disable=protected-access
  if jax.default_backend() == "gpu" and extra.get("kernels", {}).get("interpreted"):
    # Interpreted kernels at T = 1000 would take the whole budget: record, do not time.
    return [{**runner.empty_record(case, mode), **extra,
             "error": "Pallas ran in interpret mode on a GPU (the kernel did not compile)"}
            for mode in MODES]
  if section == "rnn" and name != "gru_keras22" and dtype == "float32":
    try:
      extra["max_abs_vs_torch"] = parity(variant, knob["impl"], h, min(b, 32), min(t, 100),
                                         config.model.embed_dim)
    except Exception as e:  # pylint: disable=broad-except
      extra["max_abs_vs_torch"] = None
      extra["parity_error"] = runinfo.error_text(e)
  records = runner.run_case(config, settings, case, MODES)
  # The runner's "impl" is what ran; this report keys its rows on the knob (impl or scan).
  return [{**r, "impl_ran": r["impl"], "impl": knob.get("impl"), **extra} for r in records]


def run_torch(name: str, variant: dict[str, Any], torch_cell: str,
              shape: tuple[str, int, int, int], dtype: str, smoke: bool,
              num_classes: int) -> list[dict[str, Any]]:
  """PyTorch's classifier (cuDNN nn.LSTM/GRU on a GPU), its RNN given rnnbench's weights."""
  import torch  # pylint: disable=g-import-not-at-top
  import common  # pylint: disable=g-import-not-at-top  (benchmarks/references/)
  import torch_bench  # pylint: disable=g-import-not-at-top
  shape_name, b, t, h = shape
  config = case_config(variant, b, t, h, dtype)
  settings = _timing(shape_name, smoke)
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
  m = config.model
  model = torch_bench.Classifier(torch_cell, config.data.num_words, m.embed_dim, h,
                                 m.dense_size, num_classes, m.dropout)
  state = train.create_train_state(
      case_config(dict(RNN_VARIANTS[torch_cell][0]), b, t, h, dtype), num_classes,
      jax.random.key(0))
  weights = torch_compat.to_torch(dict(RNN_VARIANTS[torch_cell][0]), state.params["rnn"])
  model.rnn.load_state_dict(weights.state_dict())
  model = model.to(device).train()
  x_np, y_np, _ = runinfo.synthetic_batch(b, t, config.data.num_words, num_classes)
  x, y = torch.from_numpy(x_np).long().to(device), torch.from_numpy(y_np).long().to(device)
  loss_fn = torch_bench.keras_crossentropy
  optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate,
                               eps=torch_bench.KERAS_EPSILON,
                               fused=device.type == "cuda")
  autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

  def forward_backward():
    optimizer.zero_grad(set_to_none=True)
    with autocast:
      loss = loss_fn(model(x).float(), y)
    loss.backward()

  def train_step():
    forward_backward()
    optimizer.step()
    sync()

  def fwd_bwd():
    forward_backward()
    sync()

  records = []
  for mode, fn in (("train", train_step), ("forward_backward", fwd_bwd)):
    record = dict(section="rnn", variant=name, shape=shape_name, dtype=dtype, mode=mode,
                  framework="torch", impl="cudnn" if device.type == "cuda" else "torch-cpu",
                  cell=torch_cell, batch_size=b, seq_len=t, hidden_size=h, status="ok",
                  error=None)
    try:
      if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
      first, times = common.time_calls(fn, settings.steps, settings.warmup)
      record.update(compile_s=first, step_time_s=runinfo.step_stats(times), step_times_s=times,
                    peak_memory={"bytes": torch.cuda.max_memory_allocated(),
                                 "source": "torch_cuda_max_allocated"}
                    if device.type == "cuda" else None)
    except Exception as e:  # pylint: disable=broad-except
      record.update(status="error", error=runinfo.error_text(e))  # pylint: disable=protected-access
    records.append(record)
  return records


def plan(shapes: Sequence[tuple[str, int, int, int]], dtypes: Sequence[str],
         variants: Sequence[str], linear_cells: Sequence[str]
         ) -> list[tuple[str, dict[str, Any]]]:
  """Every case, in priority order: float32 before bfloat16, then by shape."""
  cases = []
  for dtype in dtypes:
    for shape in shapes:
      for torch_cell in dict.fromkeys(RNN_VARIANTS[name][1] for name in variants):
        cases.append(("torch", dict(name=torch_cell, variant=RNN_VARIANTS[torch_cell][0],
                                    torch_cell=torch_cell, shape=shape, dtype=dtype)))
      for name in variants:
        variant = RNN_VARIANTS[name][0]
        for impl in impls():
          cases.append(("jax", dict(section="rnn", name=name, knob={"impl": impl},
                                    variant=variant, shape=shape, dtype=dtype)))
      for cell in linear_cells:
        for scan in SCANS:
          cases.append(("jax", dict(section="linear", name=cell, knob={"scan": scan},
                                    variant={"cell": cell}, shape=shape, dtype=dtype)))
  return cases


def _skipped(kind: str, case: dict[str, Any], reason: str) -> list[dict[str, Any]]:
  shape_name, b, t, h = case["shape"]
  knob = case.get("knob", {"impl": "cudnn"})
  return [dict(section=case.get("section", "rnn"), variant=case["name"], shape=shape_name,
               dtype=case["dtype"], mode=mode, framework="torch" if kind == "torch" else
               "rnnbench", batch_size=b, seq_len=t, hidden_size=h, status="skipped",
               error=reason, **knob) for mode in MODES]


def environment() -> dict[str, Any]:
  env = runinfo.jax_environment()
  try:
    import torch  # pylint: disable=g-import-not-at-top
    env.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
               cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None,
               torch_device=(torch.cuda.get_device_name() if torch.cuda.is_available()
                             else "cpu"))
  except ImportError:
    env["torch"] = None
  env["impls"] = impls()
  env["python_executable"] = sys.executable
  env["machine"] = platform.node()
  return env


def _ms(record: dict[str, Any] | None) -> float | None:
  if not record or record.get("status") != "ok":
    return None
  return record["step_time_s"]["median"] * 1e3


def _memory_mb(record: dict[str, Any]) -> float | None:
  xla = record.get("xla_memory")
  if xla:
    return (xla["argument_bytes"] + xla["output_bytes"] - xla["alias_bytes"]
            + xla["temp_bytes"]) / 2**20
  peak = record.get("peak_memory")
  return peak["bytes"] / 2**20 if peak and peak.get("source", "").startswith("torch") else None


def _fmt(value: float | None, spec: str = ".3g") -> str:
  return "" if value is None else format(value, spec)


def _key(r: dict[str, Any]) -> tuple[Any, ...]:
  return (r["section"], r["variant"], r["shape"], r["batch_size"], r["seq_len"],
          r["hidden_size"], r["dtype"])


def targets(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Issue 15's target ratios, from this run's medians (train step unless said)."""
  ms = {(*_key(r), r.get("impl") or r.get("scan"), r["mode"]): _ms(r) for r in results}
  rows = []

  def ratio(what: str, num: tuple[Any, ...], den: tuple[Any, ...], goal: str) -> None:
    a, b = ms.get(num), ms.get(den)
    rows.append(dict(target=what, goal=goal, value=(a / b) if a and b else None))

  for r in results:
    if r["mode"] != "train" or r.get("framework") != "rnnbench":
      continue
    k = _key(r)
    if r["section"] == "rnn" and r.get("impl") == "pallas":
      torch_key = (*k[:1], "gru" if r["variant"] == "gru_keras22" else r["variant"], *k[2:])
      if r["shape"] == "notebook":
        ratio(f"{r['variant']} {r['dtype']} notebook: nn_scan / pallas", (*k, "nn_scan", "train"),
              (*k, "pallas", "train"), ">= 5")
      goal = "<= 1.2" if r["variant"] == "gru_keras22" and r["shape"] == "large" else "<= 1.0"
      ratio(f"{r['variant']} {r['dtype']} {r['shape']} H{r['hidden_size']}: pallas / cuDNN",
            (*k, "pallas", "train"), (*torch_key, "cudnn", "train"), goal)
    if r["section"] == "linear" and r.get("scan") == "pallas" and r["seq_len"] >= 1000:
      ratio(f"{r['variant']} {r['dtype']} T{r['seq_len']} H{r['hidden_size']}: sequential / "
            "pallas", (*k, "sequential", "train"), (*k, "pallas", "train"), ">= 3")
  return rows


def format_markdown(report: dict[str, Any]) -> str:
  """The report as markdown: one row per case and implementation, then the targets."""
  env = report["environment"]
  lines = [f"# GPU suite: {env.get('device_kind')} ({env.get('backend')}), jax "
           f"{env.get('jax')}, torch {env.get('torch')} (cuDNN {env.get('cudnn')})", "",
           f"{report['created_utc']}; `{' '.join(report['command'])}`; "
           f"{report['wall_s']:.0f} s. ms: median step; compile: s (torch: first call); "
           "MB: XLA's arguments + outputs + temporaries (torch: max allocated); "
           "x torch: train step over torch's (cuDNN's GRU for gru_keras22).", "",
           "| section | variant | B | T | H | dtype | impl/scan | ran | train ms | fwd+bwd ms "
           "| compile s | MB | x torch | max abs vs torch |",
           "| --- | --- | ---: | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | "
           "---: | ---: |"]
  by_case: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
  for r in report["results"]:
    knob = r.get("impl") or r.get("scan")
    by_case.setdefault((*_key(r), knob), {})[r["mode"]] = r
  torch_train = {(*k[:1], k[1], *k[2:-1]): _ms(v.get("train")) for k, v in by_case.items()
                 if k[-1] in ("cudnn", "torch-cpu")}
  for k, modes in by_case.items():
    tr, fb = modes.get("train"), modes.get("forward_backward")
    first = tr or fb
    variant = "gru" if k[1] == "gru_keras22" else k[1]
    ref = torch_train.get((k[0], variant, *k[2:-1])) if k[0] == "rnn" else None
    kernels = first.get("kernels") or {}
    ran = (first.get("impl_ran") or k[-1]).removesuffix("_interpret")  # kernels say so below
    if kernels.get("triton") or kernels.get("mosaic_gpu"):
      ran += f" ({kernels.get('triton', 0)} triton, {kernels.get('mosaic_gpu', 0)} mosaic)"
    elif kernels.get("interpreted"):
      ran += " (interpret)"
    status = "" if first["status"] == "ok" else f" **{first['status']}**"
    x_torch = _ms(tr) / ref if _ms(tr) and ref and first.get("framework") == "rnnbench" else None
    lines.append(
        f"| {k[0]} | {k[1]} | {k[3]} | {k[4]} | {k[5]} | {k[6]} | {k[-1]}{status} | {ran} | "
        f"{_fmt(_ms(tr))} | {_fmt(_ms(fb))} | {_fmt(first.get('compile_s'), '.2f')} | "
        f"{_fmt(_memory_mb(first), '.0f')} | {_fmt(x_torch, '.2f')} | "
        f"{_fmt(first.get('max_abs_vs_torch'), '.1e')} |")
  lines += ["", "## Targets (this run)", "", "| target | goal | value |", "| --- | --- | ---: |"]
  lines += [f"| {t['target']} | {t['goal']} | {_fmt(t['value'], '.2f')} |"
            for t in report["targets"]]
  errors = [r for r in report["results"] if r["status"] == "error"]
  if errors:
    lines += ["", "## Errors", ""] + [
        f"- {r['section']} {r['variant']} {r.get('impl') or r.get('scan')} {r['shape']} "
        f"{r['dtype']} {r['mode']}: {r['error']}" for r in errors]
  skipped = sum(r["status"] == "skipped" for r in report["results"])
  if skipped:
    lines += ["", f"{skipped} records skipped (past --budget_s); rerun with --dtypes / "
              "--variants / --linear_cells / --shapes to time them."]
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true",
                      help="tiny shapes and 2 timed steps: checks the suite on any machine")
  parser.add_argument("--out", default=str(ROOT / "results"),
                      help="folder for gpu_suite.json and gpu_suite.md (smoke: gpu_suite_smoke.*)")
  parser.add_argument("--budget_s", type=float, default=420.0,
                      help="start no case after this many seconds; the rest are recorded "
                      "as skipped")
  parser.add_argument("--dtypes", default=",".join(DTYPES))
  parser.add_argument("--variants", default=",".join(RNN_VARIANTS),
                      help=f"LSTM/GRU cases, of {list(RNN_VARIANTS)}; '' for none")
  parser.add_argument("--linear_cells", default=",".join(LINEAR_CELLS),
                      help=f"scan cases, of {list(LINEAR_CELLS)}; '' for none")
  parser.add_argument("--shapes", default="", help="indices into the shape list, e.g. 0,2")
  parser.add_argument("--num_classes", type=int, default=20)
  args = parser.parse_args(argv)
  dtypes = [d for d in args.dtypes.split(",") if d]
  bad = sorted(set(dtypes) - set(DTYPES))
  if bad:
    parser.error(f"--dtypes: {bad} not among {list(DTYPES)}")
  variants = [v for v in args.variants.split(",") if v]
  linear_cells = [c for c in args.linear_cells.split(",") if c]
  for flag, got, known in (("--variants", variants, RNN_VARIANTS),
                           ("--linear_cells", linear_cells, LINEAR_CELLS)):
    if set(got) - set(known):
      parser.error(f"{flag}: {sorted(set(got) - set(known))} not among {list(known)}")
  shapes = SMOKE_SHAPES if args.smoke else SHAPES
  if args.shapes:
    shapes = tuple(shapes[int(i)] for i in args.shapes.split(","))

  start = time.perf_counter()
  env = environment()
  cases = plan(shapes, dtypes, variants, linear_cells)
  results = []
  for i, (kind, case) in enumerate(cases, 1):
    elapsed = time.perf_counter() - start
    label = (f"[{i}/{len(cases)} {elapsed:.0f}s] {case.get('section', 'rnn')} {case['name']} "
             f"{case.get('knob', {'impl': 'torch'})} {case['shape']} {case['dtype']}")
    if elapsed > args.budget_s:
      records = _skipped(kind, case, f"skipped: past --budget_s={args.budget_s:g}")
    elif kind == "torch":
      records = run_torch(case["name"], case["variant"], case["torch_cell"], case["shape"],
                          case["dtype"], args.smoke, args.num_classes)
    else:
      records = run_jax(case["section"], case["name"], case["knob"], case["variant"],
                        case["shape"], case["dtype"], args.smoke, args.num_classes)
    results += records
    print(label, " ".join(f"{r['mode']}={_fmt(_ms(r))}ms" if r["status"] == "ok" else
                          f"{r['mode']}={r['status']}" for r in records), flush=True)
  report = {
      "tool": "rnnbench-gpu-suite", "smoke": args.smoke,
      "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": ["python", *sys.argv] if argv is None else ["gpu_suite.py", *argv],
      "environment": env, "pallas_scan": {"block_b": pallas_scan.BLOCK_B,
                                          "block_f": pallas_scan.BLOCK_F,
                                          "chunk": pallas_scan.CHUNK},
      "results": [{k: v for k, v in r.items() if k != "step_times_s"} for r in results],
      "wall_s": time.perf_counter() - start,
  }
  report["targets"] = targets(report["results"])
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  stem = "gpu_suite_smoke" if args.smoke else "gpu_suite"
  runinfo.write_json(out / f"{stem}.json", report)
  markdown = format_markdown(report)
  runinfo.write_text(out / f"{stem}.md", markdown)
  print(markdown)
  return report


if __name__ == "__main__":
  main()
