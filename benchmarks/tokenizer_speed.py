"""rnnbench.tokenizer vs keras_preprocessing 1.1.2 on the 20 Newsgroups train texts.

Times, in one process and alternating which goes first, the notebook's preprocessing:
``Tokenizer(num_words).fit_on_texts(texts)``, ``texts_to_sequences(texts)`` and
``pad_sequences(seqs, maxlen)``; checks that both give identical outputs; prints the median
wall-clock and CPU time of each stage over the repeats and the speed-ups (CPU time is the
steadier on a shared machine), and the speed-up of the best total of each (the run least
disturbed by other processes), and writes them all as JSON with --json and as a page with
--markdown (the speed-up of the totals with its range over the repeats as the headline, the
seconds, the machine and the command); --from_json renders the page of a saved JSON without
measuring::

  python benchmarks/tokenizer_speed.py [--archive 20news-bydate.tar.gz] [--json out.json]
  python benchmarks/tokenizer_speed.py --json results/tokenizer_speed.json \\
      --markdown results/tokenizer_speed.md
"""

from __future__ import annotations

import argparse
import collections
import datetime
import gc
import importlib.metadata
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnbench import data  # pylint: disable=g-import-not-at-top,wrong-import-position
from rnnbench import runinfo  # pylint: disable=g-import-not-at-top,wrong-import-position
from rnnbench import tokenizer  # pylint: disable=g-import-not-at-top,wrong-import-position

STAGES = ("fit", "sequences", "pad", "total")
CLOCKS = ("wall", "cpu")  # time.perf_counter, time.process_time


def _default_archive() -> str | None:
  env = os.environ.get("RNNBENCH_20NEWS_ARCHIVE")
  if env:
    return env
  shared = ROOT.parent / "shared" / "data" / "20news-bydate.tar.gz"
  return str(shared) if shared.is_file() else None  # None: scikit-learn's fetcher


def run_once(tokenizer_cls, pad_fn, texts, num_words, maxlen):
  """Wall and CPU seconds of the three stages (and their sum), and the outputs."""
  gc.collect()
  marks = [(time.perf_counter(), time.process_time())]
  tok = tokenizer_cls(num_words=num_words)
  tok.fit_on_texts(texts)
  marks.append((time.perf_counter(), time.process_time()))
  seqs = tok.texts_to_sequences(texts)
  marks.append((time.perf_counter(), time.process_time()))
  x = pad_fn(seqs, maxlen=maxlen)
  marks.append((time.perf_counter(), time.process_time()))
  times = {}
  for clock in (0, 1):
    spans = [b[clock] - a[clock] for a, b in zip(marks[:-1], marks[1:])]
    times[CLOCKS[clock]] = dict(zip(STAGES, spans + [sum(spans)]))
  return times, (tok, seqs, x)


# What any tokenizer pays that keeps Keras' outputs (lower bounds: each part copies or makes
# only what those outputs are), to set the remaining time beside.
FLOOR_PARTS = {
    "text_pass": "lower-case and UTF-8-encode every text (one pass over the characters)",
    "keras_dicts": "build Keras' word_counts, word_docs, word_index, index_word and "
                   "index_docs dicts (copies of the fitted ones)",
    "sequence_lists": "build texts_to_sequences' lists of Python ints (copies of ours)",
}


def floor_times(texts, tok, seqs, repeats: int) -> dict[str, list[float]]:
  """CPU seconds of each ``FLOOR_PARTS`` part, per repeat."""
  parts = {
      "text_pass": lambda: [t.lower().encode("utf-8") for t in texts],
      "keras_dicts": lambda: (collections.OrderedDict(tok.word_counts.items()),
                              collections.defaultdict(int, tok.word_docs.items()),
                              dict(tok.word_index.items()), dict(tok.index_word.items()),
                              collections.defaultdict(int, tok.index_docs.items())),
      "sequence_lists": lambda: [list(q) for q in seqs],
  }
  out = {name: [] for name in parts}
  for _ in range(repeats):
    for name, fn in parts.items():
      gc.collect()
      t0 = time.process_time()
      made = fn()
      out[name].append(time.process_time() - t0)
      del made
  return out


def repeat_speedups(result: dict, clock: str) -> list[float]:
  """keras_preprocessing's total over rnnbench's, per repeat (each repeat ran both)."""
  totals = result["all_s"][clock]
  return [k / r for k, r in zip(totals["keras_preprocessing"]["total"],
                                totals["rnnbench"]["total"])]


def markdown(result: dict) -> str:
  """The JSON report as a page: speed-ups with their range over repeats, seconds, machine."""
  lines = ["# rnnbench.tokenizer against keras_preprocessing (CPU)", "",
           f"`Tokenizer(num_words={result['num_words']}).fit_on_texts`, `texts_to_sequences` "
           f"and `pad_sequences(maxlen={result['maxlen']})` on the {result['documents']} "
           f"{result['subset']} documents, both in one process, alternating which goes first, "
           f"{result['repeats']} repeats; outputs checked identical. speed-up = "
           "keras_preprocessing / rnnbench (above 1: rnnbench is faster), median "
           "[lowest, highest] of the repeats' own speed-ups; seconds: medians. CPU time "
           "(`time.process_time`) is the steadier on a shared machine.", "",
           "| clock | speed-up, total | keras_preprocessing s | rnnbench s |",
           "|---|--:|--:|--:|"]
  for clock in CLOCKS:
    ups = repeat_speedups(result, clock)
    med = result["median_s"][clock]
    lines.append(f"| {clock} | **{statistics.median(ups):.2f}** [{min(ups):.2f}, "
                 f"{max(ups):.2f}] | {med['keras_preprocessing']['total']:.3f} | "
                 f"{med['rnnbench']['total']:.3f} |")
  lines += ["", "Per stage (medians; speed-up of the medians):", "",
            "| stage | clock | speed-up | keras_preprocessing s | rnnbench s |",
            "|---|---|--:|--:|--:|"]
  for stage in STAGES[:-1]:
    for clock in CLOCKS:
      med = result["median_s"][clock]
      lines.append(f"| {stage} | {clock} | {result['speedup'][clock][stage]:.2f} | "
                   f"{med['keras_preprocessing'][stage]:.3f} | {med['rnnbench'][stage]:.3f} |")
  if "floor_s" in result:
    floor = result["floor_s"]
    total = sum(floor.values())
    ours = result["median_s"]["cpu"]["rnnbench"]["total"]
    keras = result["median_s"]["cpu"]["keras_preprocessing"]["total"]
    lines += ["", "What any tokenizer with Keras' outputs pays (CPU s, medians; lower bounds, "
              "each part making only what those outputs are):", "",
              "| part | what | s |", "|---|---|--:|"]
    lines += [f"| {k} | {FLOOR_PARTS.get(k, k)} | {v:.3f} |" for k, v in floor.items()]
    lines += [f"| all | of rnnbench's total {ours:.3f} s | {total:.3f} |", "",
              f"At that floor the speed-up over keras_preprocessing would be at most "
              f"{keras / total:.2f}; rnnbench's remaining time above it is "
              f"{ours - total:.3f} s (the fit's byte pass, grouping sort and key check, padding)."]
  env = result.get("environment") or {"python": result.get("python"),
                                      "numpy": result.get("numpy"),
                                      "cpu": result.get("machine"), "cpus": result.get("cpus")}
  lines += ["", *runinfo.machine_markdown(env, load=result.get("load_average"),
                                          command=result.get("command"),
                                          created=result.get("created_utc"))]
  return "\n".join(lines)


def _keras_preprocessing_version() -> str | None:
  try:
    return importlib.metadata.version("keras_preprocessing")
  except importlib.metadata.PackageNotFoundError:
    return None


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--archive", default=_default_archive(),
                      help="20news-bydate.tar.gz (default: $RNNBENCH_20NEWS_ARCHIVE, "
                      "../shared/data, else scikit-learn's fetcher)")
  parser.add_argument("--data-home", default=None, help="cache folder for the unpacked data")
  parser.add_argument("--subset", default="train", choices=("train", "test", "all"))
  parser.add_argument("--num-words", type=int, default=20000)
  parser.add_argument("--maxlen", type=int, default=100)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--json", dest="json_path", default=None, help="write the results here")
  parser.add_argument("--markdown", default=None, help="write the results page here")
  parser.add_argument("--from_json", default=None,
                      help="render --markdown from this saved JSON; measures nothing")
  args = parser.parse_args()
  if runinfo.render_saved(parser, args.from_json, args.markdown, markdown) is not None:
    return

  from keras_preprocessing import sequence as keras_sequence  # pylint: disable=g-import-not-at-top
  from keras_preprocessing import text as keras_text  # pylint: disable=g-import-not-at-top
  if not hasattr(np, "unicode_"):  # keras_preprocessing's pad_sequences names it
    np.unicode_ = np.str_

  texts = data.fetch_20newsgroups(args.subset, archive=args.archive,
                                  data_home=args.data_home).data
  print(f"{len(texts)} documents ({sum(map(len, texts)) / 1e6:.1f} M characters), "
        f"num_words={args.num_words}, maxlen={args.maxlen}, {args.repeats} repeats")

  contenders = {
      "keras_preprocessing": (keras_text.Tokenizer, keras_sequence.pad_sequences),
      "rnnbench": (tokenizer.Tokenizer, tokenizer.pad_sequences),
  }
  times = {clock: {name: {stage: [] for stage in STAGES} for name in contenders}
           for clock in CLOCKS}
  for repeat in range(args.repeats):
    names = list(contenders) if repeat % 2 == 0 else list(contenders)[::-1]
    outputs = {}
    for name in names:
      got, outputs[name] = run_once(*contenders[name], texts, args.num_words, args.maxlen)
      for clock in CLOCKS:
        for stage in STAGES:
          times[clock][name][stage].append(got[clock][stage])
    (k_tok, k_seqs, k_x), (r_tok, r_seqs, r_x) = (outputs["keras_preprocessing"],
                                                  outputs["rnnbench"])
    if not (list(k_tok.word_index.items()) == list(r_tok.word_index.items())
            and k_seqs == r_seqs and k_x.dtype == r_x.dtype and np.array_equal(k_x, r_x)):
      raise SystemExit("the outputs differ from keras_preprocessing's")

  # texts_to_sequences on texts it did not just fit (no reuse of the fit's token ids).
  fresh = []
  for _ in range(args.repeats):
    texts_copy = [(t + " ")[:-1] for t in texts]  # equal strings, other objects
    t0 = time.process_time()
    r_tok.texts_to_sequences(texts_copy)
    fresh.append(time.process_time() - t0)

  floor = {part: statistics.median(ts) for part, ts in floor_times(texts, r_tok, r_seqs,
                                                                   args.repeats).items()}

  medians = {clock: {name: {s: statistics.median(v) for s, v in by_stage.items()}
                     for name, by_stage in by_name.items()}
             for clock, by_name in times.items()}
  speedup = {clock: {s: m["keras_preprocessing"][s] / m["rnnbench"][s] for s in STAGES}
             for clock, m in medians.items()}
  load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
  print(f"median of {args.repeats}; wall = time.perf_counter, cpu = time.process_time "
        f"(load average {load:.1f} on {os.cpu_count()} CPUs)")
  print(f"{'stage':<11}{'keras wall':>11}{'ours wall':>11}{'speed-up':>10}"
        f"{'keras cpu':>11}{'ours cpu':>10}{'speed-up':>10}")
  for stage in STAGES:
    row = f"{stage:<11}"
    for clock in CLOCKS:
      keras, ours = (medians[clock][n][stage] for n in contenders)
      row += f"{keras:>10.3f}s{ours:>9.3f}s{speedup[clock][stage]:>9.1f}x"
    print(row)
  print("(rnnbench texts_to_sequences on other text objects, so without the fit's token ids: "
        f"{statistics.median(fresh):.3f} s cpu)")
  best = {clock: {name: min(by_name[name]["total"]) for name in contenders}
          for clock, by_name in times.items()}
  best_speedup = {clock: b["keras_preprocessing"] / b["rnnbench"] for clock, b in best.items()}
  print(f"best of {args.repeats} (the least disturbed by other processes): total "
        f"{best_speedup['wall']:.1f}x wall, {best_speedup['cpu']:.1f}x cpu "
        f"({best['cpu']['keras_preprocessing']:.3f}s vs {best['cpu']['rnnbench']:.3f}s cpu)")
  print("outputs identical: yes")

  if args.json_path or args.markdown:
    result = {
        "documents": len(texts), "subset": args.subset, "num_words": args.num_words,
        "maxlen": args.maxlen, "repeats": args.repeats, "median_s": medians,
        "all_s": times, "speedup": speedup, "best_total_s": best,
        "best_total_speedup": best_speedup,
        "rnnbench_sequences_other_texts_cpu_s": statistics.median(fresh), "floor_s": floor,
        "load_average": load, "python": platform.python_version(), "numpy": np.__version__,
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "command": " ".join(["python benchmarks/tokenizer_speed.py", *sys.argv[1:]]),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "environment": runinfo.environment(keras_preprocessing=_keras_preprocessing_version()),
    }
    for path, text in ((args.json_path, lambda: json.dumps(result, indent=2) + "\n"),
                       (args.markdown, lambda: markdown(result))):
      if path:
        runinfo.write_text(path, text())
        print(f"wrote {path}")


if __name__ == "__main__":
  main()
