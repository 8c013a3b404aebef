"""What every measured run records, with no JAX: its environment, step-time statistics, the
synthetic batch it ran on, and its JSON written atomically.

The benchmark (``rnnbench.bench``), training (``summary.json``'s ``environment``) and the
framework references (``benchmarks/references/``, which must not start JAX) all use it;
importing this module pulls in numpy and the standard library only (``jax_environment``
imports JAX when it is called).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

# The environment variables that change the compiled code or the devices it runs on.
ENV_VARS = ("XLA_FLAGS", "JAX_PLATFORMS", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


def cpu_model() -> str:
  """/proc/cpuinfo's first 'model name', else what platform knows."""
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def git_commit(path: str | os.PathLike = pathlib.Path(__file__).parent) -> dict[str, Any]:
  """The commit of the repository holding ``path``, and whether the tree has changes."""
  def git(*args: str) -> str | None:
    try:
      out = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True,
                           timeout=10, check=True)
      return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
      return None
  commit = git("rev-parse", "HEAD")
  status = git("status", "--porcelain") if commit else None
  return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment(**framework: Any) -> dict[str, Any]:
  """Versions, CPU, the flags that change XLA's code and the git commit; plus ``framework``
  (the versions and devices of whatever ran: ``jax_environment``'s, or a reference's)."""
  try:
    affinity = len(os.sched_getaffinity(0))
  except AttributeError:
    affinity = os.cpu_count()
  return {"numpy": np.__version__, "python": platform.python_version(),
          "platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
          "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "cpu_affinity": affinity,
          "env": {k: os.environ.get(k) for k in ENV_VARS}, "git": git_commit(), **framework}


def jax_environment() -> dict[str, Any]:
  """``environment()`` with JAX's side: versions, backend, device kind and counts."""
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  device = jax.devices()[0]
  return environment(
      jax=jax.__version__, jaxlib=jaxlib.__version__, flax=flax.__version__,
      optax=optax.__version__, sklearn=_version("scikit-learn"),
      backend=jax.default_backend(), device_kind=device.device_kind,
      device_count=jax.device_count(), process_count=jax.process_count())


def _version(distribution: str) -> str | None:
  try:
    return importlib.metadata.version(distribution)
  except importlib.metadata.PackageNotFoundError:
    return None


def step_stats(times: Sequence[float]) -> dict[str, float]:
  """Median, p10, p90, mean, min and max of step times in seconds."""
  t = np.asarray(times, np.float64)
  return {"median": float(np.median(t)), "p10": float(np.percentile(t, 10)),
          "p90": float(np.percentile(t, 90)), "mean": float(t.mean()),
          "min": float(t.min()), "max": float(t.max())}


def peak_rss() -> dict[str, Any]:
  """The process's peak resident memory, in bytes."""
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return {"bytes": int(rss) * (1 if sys.platform == "darwin" else 1024),
          "source": "process_peak_rss"}


# How the benchmarks' synthetic token ids are drawn: "uniform" in [1, num_words), or "zipf",
# word ranks with p(rank) ~ 1 / rank, as text's (a 20 Newsgroups batch of 32 x 100 has
# ~1,200 distinct ids, a Zipf one ~1,250, a uniform one ~2,970).
TOKENS = ("uniform", "zipf")


def zipf_tokens(rng: np.random.Generator, shape: tuple[int, ...], num_words: int) -> np.ndarray:
  """Token ids in [1, num_words) of ``shape``, id k drawn with probability ~ 1 / k."""
  p = 1.0 / np.arange(1, num_words)
  return 1 + rng.choice(num_words - 1, shape, p=p / p.sum())


def synthetic_batch(batch_size: int, seq_len: int, num_words: int, num_classes: int,
                    seed: int = 0, padded_size: int | None = None, tokens: str = "uniform"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The benchmarks' batch: token ids (P, T) int32 in [1, num_words) (``tokens``: uniform,
  or "zipf": ``zipf_tokens``), labels (P,) int32 uniform in [0, num_classes) and weights
  (P,) float32, from ``numpy.random.default_rng(seed)``.

  P is ``padded_size`` (default ``batch_size``): rows past ``batch_size`` are zeros of
  weight 0 (a batch padded to a multiple of the devices).
  """
  padded_size = batch_size if padded_size is None else padded_size
  if padded_size < batch_size:
    raise ValueError(f"padded_size {padded_size} < batch_size {batch_size}")
  if tokens not in TOKENS:
    raise ValueError(f"unknown tokens {tokens!r}: choose one of {', '.join(TOKENS)}")
  rng = np.random.default_rng(seed)
  x = np.zeros((padded_size, seq_len), np.int32)
  y = np.zeros((padded_size,), np.int32)
  if tokens == "zipf":
    x[:batch_size] = zipf_tokens(rng, (batch_size, seq_len), num_words)
  else:
    x[:batch_size] = rng.integers(1, num_words, size=(batch_size, seq_len), dtype=np.int64)
  y[:batch_size] = rng.integers(0, num_classes, size=(batch_size,), dtype=np.int64)
  w = (np.arange(padded_size) < batch_size).astype(np.float32)
  return x, y, w


def error_text(e: BaseException) -> str:
  """``Type: first line of the message``, at most 500 characters: a failed record's error."""
  text = str(e).strip().splitlines()
  return f"{type(e).__name__}: {text[0] if text else ''}"[:500]


def write_text(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` to ``path`` atomically (a reader sees the old file or the new one)."""
  path = pathlib.Path(path)
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def replace_block(text: str, start: str, end: str, block: str, where: str = "the text") -> str:
  """``text`` with what lies between the markers ``start`` and ``end`` replaced by ``block``
  (a generated table in a README or doc); a clear error if a marker is missing."""
  head, sep, rest = text.partition(start)
  _, sep2, tail = rest.partition(end)
  if not (sep and sep2):
    raise ValueError(f"{where} has no {start} ... {end} block; add the two markers where the "
                     "generated text goes")
  return f"{head}{start}\n{block}{end}{tail}"


def write_generated(outputs: Sequence[tuple[str | os.PathLike, str]], check: bool,
                    command: str) -> int:
  """Writes each ``(path, text)``; with ``check``, only says (on stderr) which files differ
  from their text and returns 1, so a stale generated file is caught (e.g. by a test). 0 when
  written or current."""
  if check:
    stale = [pathlib.Path(p).name for p, text in outputs
             if not pathlib.Path(p).exists() or pathlib.Path(p).read_text() != text]
    if stale:
      print(f"stale: {', '.join(stale)}; run {command}", file=sys.stderr)
      return 1
    return 0
  for p, text in outputs:
    write_text(p, text)
  return 0


def write_readme_block(readme: str | os.PathLike, start: str, end: str, block: str,
                       outputs: Sequence[tuple[str | os.PathLike, str]], check: bool,
                       command: str) -> int:
  """A generated README block (``replace_block``) and its other ``outputs``, written or, with
  ``check``, checked (``write_generated``); a missing marker is a one-line exit."""
  try:
    new = replace_block(pathlib.Path(readme).read_text(), start, end, block, where=str(readme))
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None
  return write_generated([*outputs, (readme, new)], check, command)


def render_saved(parser: Any, from_json: str | None, markdown_path: str | None,
                 markdown: Any) -> dict[str, Any] | None:
  """A benchmark's ``--from_json``: its page (``markdown(report)``) of a saved JSON report,
  written to ``markdown_path``, measuring nothing; the report, or None without
  ``from_json``. A missing ``--markdown`` is ``parser``'s one-line error."""
  if not from_json:
    return None
  if not markdown_path:
    parser.error("--from_json needs --markdown PATH (where to write the page)")
  report = json.loads(pathlib.Path(from_json).read_text())
  write_text(markdown_path, markdown(report))
  print(f"wrote {markdown_path}")
  return report


def write_json(path: str | os.PathLike, obj: Any) -> None:
  """``obj`` as indented JSON at ``path``, atomically (``write_text``); makes the parent
  folder."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  write_text(path, json.dumps(obj, indent=2) + "\n")


VERSION_KEYS = ("jax", "jaxlib", "flax", "optax", "torch", "keras", "tensorflow",
                "keras_preprocessing", "numpy")


def load_text(load: Any) -> str:
  """Load averages as text, two decimals: a number, a list (1, 5, 15 min) or ``{start, end}``
  of those."""
  if isinstance(load, dict):
    return ", ".join(f"{k} {load_text(v)}" for k, v in load.items())
  if isinstance(load, (list, tuple)):
    return "[" + ", ".join(load_text(x) for x in load) + "]"
  return f"{load:.2f}" if isinstance(load, (int, float)) else str(load)


def machine_markdown(env: dict[str, Any], *, load: Any = None, command: str | None = None,
                     created: str | None = None) -> list[str]:
  """A results page's "Machine and command" section, as Markdown lines.

  ``env``: ``environment()``'s dict (or an older, smaller one: what it lacks reads "not
  recorded"); ``load``: the load averages (any JSON value); ``command``: the exact command
  line that wrote the page's JSON.
  """
  missing = "not recorded"
  versions = {**env.get("versions", {}), **{k: env[k] for k in VERSION_KEYS if env.get(k)}}
  git = env.get("git") or {}
  commit = (git.get("commit") or missing)[:12]
  cpu = env.get("cpu_model") or env.get("cpu") or missing
  cores = env.get("cpu_count") or env.get("cpus")
  lines = ["## Machine and command", "",
           f"- CPU: {cpu}, {f'{cores} cores' if cores else f'cores {missing}'}; "
           f"Python {env.get('python') or missing}",
           f"- Load average (1, 5, 15 min; one value: 1 min): "
           f"{missing if load is None else load_text(load)}",
           f"- Versions: {', '.join(f'{k} {v}' for k, v in versions.items()) or missing}",
           f"- git {commit}{' (uncommitted changes)' if git.get('dirty') else ''}"
           + (f", run {created}" if created else ""), "",
           "```sh", command or f"# command {missing} in the JSON; see docs/results.md", "```",
           ""]
  return lines
