"""The whole run against the notebook, back to back on one machine: cold, warm, alternating.

Every round runs, per cell and in alternating order, three fresh processes on the real data:

* ``notebook``: the Keras notebook as it runs (``benchmarks/references/keras_notebook.py``:
  scikit-learn's fetcher from its downloaded cache, keras_preprocessing, Keras 3 on TensorFlow,
  2 epochs), from process start to exit;
* ``rnnbench cold``: ``python run.py --config=configs/<cell>.py`` with an empty prepared-array
  cache (the archive unpacked already, as the notebook's download is): load, tokenize, compile,
  train 2 epochs, validate, test, checkpoint;
* ``rnnbench warm``: the same run again, its data read back from the prepared-array cache.

rnnbench's C++ CPU kernels (``rnnbench/cpu_kernels.cc``, compiled on first use, once per install
and machine) are built once before the rounds, in a folder of their own
(``$RNNBENCH_KERNELS``), and that build is timed and reported on its own: like the
notebook's installed TensorFlow, it is not part of a cold run.

The ratio is rnnbench's wall time over the notebook's in the same round; the report gives its
median and range over the rounds, and each run's phases (rnnbench's ``summary.json``: data,
compile, epochs; the notebook's cells)::

    python benchmarks/whole_run.py --rounds=3 --json=results/whole_run_cpu.json \
        --markdown=results/whole_run_cpu.md
"""

from __future__ import annotations

import argparse
import codecs
import datetime
import importlib.metadata
import json
import os
import pathlib
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnbench import cpu_kernels  # pylint: disable=wrong-import-position
from rnnbench import runinfo  # pylint: disable=wrong-import-position
from rnnbench.data import newsgroups  # pylint: disable=wrong-import-position

NOTEBOOK = ROOT / "benchmarks" / "references" / "keras_notebook.py"
VARIANTS = ("notebook", "rnnbench cold", "rnnbench warm")


def _versions() -> dict[str, str | None]:
  out = {}
  for name in ("jax", "jaxlib", "flax", "keras", "tensorflow", "tensorflow-cpu",
               "keras-preprocessing", "scikit-learn"):
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


def default_archive() -> str:
  return (os.environ.get(newsgroups.ARCHIVE_ENV)
          or str(ROOT.parent / "shared" / "data" / "20news-bydate.tar.gz"))


def set_up(archive: str, tmp: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """The unpacked archive (for rnnbench) and a scikit-learn data home holding the cache its
  downloader would write from the same archive (for the notebook)."""
  import sklearn.datasets  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import _base, _twenty_newsgroups  # pylint: disable=g-import-not-at-top
  base = tmp / "base_cache"
  unpacked = newsgroups.unpack_archive(archive, newsgroups.cache_root(base))
  home = tmp / "sklearn_home"
  home.mkdir()
  cache = {subset: sklearn.datasets.load_files(unpacked / f"20news-bydate-{subset}",
                                               encoding="latin1") for subset in ("train", "test")}
  # scikit-learn's own cache format (a zlib-compressed pickle), which the notebook's fetcher
  # reads; written here from the archive, never read by rnnbench.
  with open(_base._pkl_filepath(home, _twenty_newsgroups.CACHE_NAME), "wb") as f:
    f.write(codecs.encode(pickle.dumps(cache), "zlib_codec"))
  return newsgroups.cache_root(base), home


def _timed(cmd: list[str], env: dict[str, str], timeout: int) -> tuple[float, str]:
  start = time.perf_counter()
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
  wall = time.perf_counter() - start
  if proc.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
  return wall, proc.stdout


def run_notebook(cell: str, home: pathlib.Path, timeout: int) -> dict[str, Any]:
  env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
  wall, out = _timed([sys.executable, str(NOTEBOOK), f"--cell={cell}", f"--data_home={home}"],
                     env, timeout)
  (line,) = [l for l in out.splitlines() if l.startswith("RESULT ")][-1:]
  result = json.loads(line[len("RESULT "):])
  return {"wall_s": wall, "phases_s": result["marks_s"], "val_accuracy": result["val_accuracy"]}


def build_kernels(kernels: pathlib.Path, timeout: int) -> float | None:
  """Seconds to build rnnbench's CPU kernels into ``kernels`` in a fresh process (the
  library the runs then load), or None where they do not build (the runs use fused_rnn)."""
  env = {**os.environ, cpu_kernels.KERNELS_ENV: str(kernels)}
  code = "from rnnbench import cpu_kernels; cpu_kernels.load()"
  start = time.perf_counter()
  done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        timeout=timeout, check=False, cwd=ROOT)
  if done.returncode != 0:
    print(f"the CPU kernels do not build here:\n{done.stderr[-2000:]}", file=sys.stderr)
    return None
  return time.perf_counter() - start


def run_rnnbench(cell: str, archive: str, cache: pathlib.Path, workdir: pathlib.Path,
                 timeout: int, kernels: pathlib.Path) -> dict[str, Any]:
  env = {**os.environ, newsgroups.ARCHIVE_ENV: archive, "RNNBENCH_CACHE": str(cache),
         cpu_kernels.KERNELS_ENV: str(kernels)}
  wall, _ = _timed([sys.executable, "run.py", f"--config=configs/{cell}.py",
                    f"--workdir={workdir}"], env, timeout)
  summary = json.loads((workdir / "summary.json").read_text())
  return {"wall_s": wall, "val_accuracy": summary["val_accuracy"],
          "phases_s": {"data": summary["load_time_s"], "compile": summary["compile_time_s"],
                       "epochs": summary["epoch_time_s"]}}


def _range(values: list[float]) -> dict[str, float]:
  return {"median": statistics.median(values), "min": min(values), "max": max(values),
          "n": len(values)}


def summarize(runs: list[dict[str, Any]], cells: list[str]) -> dict[str, Any]:
  out = {}
  for cell in cells:
    mine = [r for r in runs if r["cell"] == cell]
    rounds = sorted({r["round"] for r in mine})
    by = {(r["round"], r["variant"]): r for r in mine}
    out[cell] = {}
    for variant in VARIANTS:
      walls = [by[k, variant]["wall_s"] for k in rounds]
      entry = {"wall_s": _range(walls)}
      if variant != "notebook":
        entry["ratio_to_notebook"] = _range(
            [by[k, variant]["wall_s"] / by[k, "notebook"]["wall_s"] for k in rounds])
        entry["data_s"] = _range([by[k, variant]["phases_s"]["data"] for k in rounds])
      out[cell][variant] = entry
  return out


def markdown(report: dict[str, Any]) -> str:
  env = report["environment"]
  lines = ["# The whole run against the notebook (CPU)", "",
           f"{report['rounds']} rounds, each tool in its own process, alternating; wall time "
           "from process start to exit. ratio = rnnbench / notebook in the same round "
           "(below 1: rnnbench is faster): median [lowest, highest].", "",
           "| cell | run | ratio to the notebook | wall s, median [range] | data ready s |",
           "|---|---|--:|--:|--:|"]
  for cell, variants in report["summary"].items():
    for variant, e in variants.items():
      w = e["wall_s"]
      ratio = (f"**{e['ratio_to_notebook']['median']:.2f}** "
               f"[{e['ratio_to_notebook']['min']:.2f}, {e['ratio_to_notebook']['max']:.2f}]"
               if "ratio_to_notebook" in e else "1")
      data = (f"{e['data_s']['median']:.2f} [{e['data_s']['min']:.2f}, {e['data_s']['max']:.2f}]"
              if "data_s" in e else "-")
      lines.append(f"| {cell} | {variant} | {ratio} | {w['median']:.1f} "
                   f"[{w['min']:.1f}, {w['max']:.1f}] | {data} |")
  lines += ["", "Phases of each run (s):", "",
            "| round | cell | run | wall | phases |", "|--:|---|---|--:|---|"]
  for r in report["runs"]:
    phases = ", ".join(f"{k} {v:.1f}" for k, v in r["phases_s"].items())
    lines.append(f"| {r['round']} | {r['cell']} | {r['variant']} | {r['wall_s']:.1f} | "
                 f"{phases} |")
  lines += ["", "rnnbench's phases are its summary.json's (`data`: load + tokenize, or the "
            "cache read; `compile`; `epochs`: the training epochs' mean). The notebook's are "
            "times since its process started, at the end of each cell (`imports`, `fetch`, "
            "`tokenize`, `build`, `fit`). rnnbench also evaluates the 7,532 test documents and "
            "writes checkpoints; the notebook does neither.", "",
            ("rnnbench's C++ CPU kernels (rnnbench/cpu_kernels.cc), built once per install and "
             f"machine, were built before the rounds in {report['kernel_build_s']:.1f} s "
             "(not part of any run, as the notebook's installed TensorFlow is not)."
             if report.get("kernel_build_s") is not None else
             "rnnbench's C++ CPU kernels did not build here: its runs used fused_rnn."), "",
            "## Machine and command", "",
            f"- CPU: {env.get('cpu_model') or env.get('cpu')}, {env.get('cpu_count')} cores; "
            f"Python {env.get('python')}",
            f"- Load average at the start: {report['loadavg_start']}, at the end: "
            f"{report['loadavg_end']}",
            f"- Versions: {', '.join(f'{k} {v}' for k, v in env['versions'].items())}",
            f"- Run {report['created_utc']}, {report['wall_s'] / 60:.1f} minutes, git "
            f"{(env['git']['commit'] or '?')[:12]}"
            f"{' (uncommitted changes)' if env['git']['dirty'] else ''}", "", "```sh",
            report["command"], "```", ""]
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cells", default="lstm,gru")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--archive", default=default_archive())
  parser.add_argument("--timeout", type=int, default=900, help="seconds per run")
  parser.add_argument("--json", default="")
  parser.add_argument("--markdown", default="")
  args = parser.parse_args(argv)
  if not pathlib.Path(args.archive).is_file():
    sys.exit(f"error: the 20news-bydate archive is not at {args.archive}; pass --archive=PATH "
             f"or set ${newsgroups.ARCHIVE_ENV}")
  cells = [c for c in args.cells.split(",") if c]
  start = time.perf_counter()
  report: dict[str, Any] = {
      "rounds": args.rounds, "cells": cells,
      "command": " ".join(["python benchmarks/whole_run.py", *(argv or sys.argv[1:])]),
      "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "environment": runinfo.environment(versions=_versions()),
      "loadavg_start": [round(x, 2) for x in os.getloadavg()], "runs": []}
  with tempfile.TemporaryDirectory(prefix="whole_run.") as tmp:
    tmp = pathlib.Path(tmp)
    unpacked, home = set_up(args.archive, tmp)
    kernels = tmp / "kernels"
    report["kernel_build_s"] = build_kernels(kernels, args.timeout)
    for k in range(args.rounds):
      for i, cell in enumerate(cells):
        cache = tmp / f"cache{k}{cell}"
        cache.mkdir()
        (cache / unpacked.name).symlink_to(unpacked, target_is_directory=True)
        rnnbench = [("rnnbench cold", tmp / f"r{k}{cell}cold"), ("rnnbench warm",
                                                                 tmp / f"r{k}{cell}warm")]
        order = ["notebook", *rnnbench] if (k + i) % 2 == 0 else [*rnnbench, "notebook"]
        for item in order:
          if item == "notebook":
            variant, result = item, run_notebook(cell, home, args.timeout)
          else:
            variant, workdir = item
            result = run_rnnbench(cell, args.archive, cache, workdir, args.timeout, kernels)
          report["runs"].append({"round": k, "cell": cell, "variant": variant, **result})
          print(f"round {k} {cell} {variant}: {result['wall_s']:.1f} s", flush=True)
  report["wall_s"] = time.perf_counter() - start
  report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
  report["summary"] = summarize(report["runs"], cells)
  text = markdown(report)
  if args.json:
    runinfo.write_json(pathlib.Path(args.json), report)
  if args.markdown:
    runinfo.write_text(pathlib.Path(args.markdown), text)
  print(text)
  return report


if __name__ == "__main__":
  main()
