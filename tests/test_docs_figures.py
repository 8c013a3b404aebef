"""No speed figure is typed into README.md or docs/*.md: times (ms, µs, s, min) and speed ratios
(N.Nx, N×) appear only inside generated blocks; each figure lives in the results/ page the
command that measured it writes (benchmarks/regenerate_cpu.py), and the docs link to it."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# blocks a script writes (scripts/headline_table.py, speed_summary.py, compare_table.py)
GENERATED = (("<!-- headline:start -->", "<!-- headline:end -->"),
             ("<!-- speed:start -->", "<!-- speed:end -->"),
             ("<!-- compare:start -->", "<!-- compare:end -->"))
_NUM = r"(?<![\w.])\d+(?:[.,]\d+)?"
FIGURE = re.compile(
    rf"{_NUM}\s?(?:ms|µs|us|ns|s|secs?|seconds?|min|minutes?)\b"  # a time
    rf"|{_NUM}\s?[x×](?![\w×])(?!\s*\d)"  # a ratio; not a shape such as 32x200 or 20000 x 128
    rf"|{_NUM}\s?(?:sequences|tokens|steps|samples|GFLOP|TFLOP)/s\b")  # a throughput
# a table column of times or ratios: its numbers are figures even without a unit
TIMED_HEADER = re.compile(r"(?:^|[\s_(])(?:ms|µs|us|s|seconds|speed-up|ratio|x)(?:$|[\s),])",
                          re.IGNORECASE)
# (file, text on the line, why it is not a measurement): keep it short, each with its reason
ALLOWED = (
    ("docs/benchmark.md", "is counted as 2x the forward",
     "the FLOP convention of the estimate, not a measurement"),
    ("docs/training.md", "clip(0.2x + 0.5, 0, 1)", "the hard sigmoid's formula"),
    ("docs/training.md", '"data ready in 0.0s from the cache"',
     "the log line's wording, quoted so a reader recognises it"),
    ("docs/gpu.md", "(default 420 s)", "a flag's default, the suite's time budget"),
    ("docs/gpu.md", "One command, within 8 minutes on one H200",
     "the suite's time budget (its --budget_s), a limit it is built to, not a measurement"),
    ("docs/gpu.md", "about 1 to 2 minutes to start the machine",
     "the device tool's start-up, what a run call costs, not rnnbench's speed"),
    ("docs/gpu.md", "about 8 minutes for the command", "the same budget as above"),
    ("docs/benchmark.md", "the 1, 5 and 15 minute load averages", "the load averages' windows"),
)


def _figures(text: str, rel: str, allowed=ALLOWED) -> list[tuple[int, str, str]]:
  """(line number, the figure, the line) of every figure of ``text`` (the file ``rel``)
  outside the generated blocks and the allowed lines: a time, a ratio or a throughput with
  its unit, or any number in a table column whose header names a time or a ratio."""
  found, inside, timed, previous = [], None, set(), ""
  for number, line in enumerate(text.splitlines(), 1):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    header = line.startswith("|") and not previous.startswith("|")
    body = line.startswith("|") and not header and not set(line.strip()) <= set("|-: ")
    if header:
      timed = {i for i, c in enumerate(cells) if TIMED_HEADER.search(c)}
    previous = line
    for start, end in GENERATED:
      if start in line:
        inside = end
    if inside:
      if inside in line:
        inside = None
      continue
    if any(rel == f and part in line for f, part, _ in allowed):
      continue
    if body:
      found += [(number, cells[k], line.strip()) for k in sorted(timed)
                if k < len(cells) and re.search(r"\d", cells[k])]
    found += [(number, m.group(0), line.strip()) for m in FIGURE.finditer(line)]
  return found


def test_no_speed_figure_is_typed_into_the_docs():
  hits = [f"{p.relative_to(ROOT)}:{n}: {fig!r} in: {line[:120]}"
          for p in DOCS for n, fig, line in _figures(p.read_text(), str(p.relative_to(ROOT)))]
  assert not hits, ("speed figures typed by hand (link the results/ page that writes them, "
                    "or explain in words):\n" + "\n".join(hits))


def test_the_scanner_finds_figures_and_spares_shapes():
  text = ("LSTM 12.3 ms, 7.9 us per step, 15.9 s warm, 0.6x torch, 3.1× faster,\n"
                  "3080 sequences/s\na (32x200 by 200x50) matmul, 20000 x 128 floats, 2 epochs,"
                  " --bench.steps=30, 5 seeds\n<!-- speed:start -->\n9.75 ms\n<!-- speed:end -->\n"
          "allowed 1.5 ms here\n\n| cell | T | sequential ms | speed-up |\n|---|--:|--:|--:|\n"
          "| lru | 100 | 5.81 | 1.52 |\n")
  got = [(n, fig) for n, fig, _ in _figures(text, "p.md", [("p.md", "allowed", "a test")])]
  assert got == [(1, "12.3 ms"), (1, "7.9 us"), (1, "15.9 s"), (1, "0.6x"), (1, "3.1×"),
                 (2, "3080 sequences/s"), (11, "5.81"), (11, "1.52")]


def test_every_allowed_line_still_exists():
  """A stale allow-list entry would hide nothing today but excuse a figure tomorrow."""
  for rel, text, reason in ALLOWED:
    assert reason and text in (ROOT / rel).read_text(), (rel, text)
