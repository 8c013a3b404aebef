"""benchmarks/regenerate_cpu.py: every step's script and flags exist, every output is in
results/, every results page the README and docs link to is written by a step (or is listed
below as not a CPU speed result), and a failing step stops the run with one line."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# results pages the docs link to that hold no CPU speed figure: what writes them instead
NOT_SPEED = {
    "results/lstm_vs_gru.md": "accuracy: python -m rnnbench.sweep (docs/results.md)",
    "results/headline.md": "accuracy: python scripts/headline_table.py",
    "results/cells.md": "accuracy of every cell: python scripts/cells_table.py",
    "results/cells_parallel.md": "accuracy with scan='parallel': python scripts/cells_table.py",
    "results/mingru_study.md": "accuracy study: python scripts/mingru_study.py",
    "results/compare_quick/report.md": "python -m rnnbench.compare --quick (its report)",
    "results/compare_cpu/report.md": "python -m rnnbench.compare --root=runs/compare_cpu",
    "results/compare_cpu/summary.md": "python scripts/compare_table.py, from the report above",
}


def _load(name: str, path: pathlib.Path):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module  # dataclasses look their module up while the class is made
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def regen():
  return _load("regenerate_cpu", ROOT / "benchmarks" / "regenerate_cpu.py")


def test_dry_run_prints_every_command_and_list_every_output(regen, capsys):
  assert regen.main(["--dry-run"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines == [s.command() for s in regen.STEPS] and len(lines) == len(regen.STEPS)
  assert "XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m rnnbench.bench" in \
      "\n".join(lines)
  assert regen.STEPS[-1].name == "speed_summary"  # the generated block from what ran before
  assert regen.main(["--list", "--only", "whole_run,tokenizer_speed"]) == 0
  assert capsys.readouterr().out.splitlines() == [
      "whole_run: results/whole_run_cpu.json, results/whole_run_cpu.md",
      "tokenizer_speed: results/tokenizer_speed.json, results/tokenizer_speed.md"]


def test_every_script_and_flag_exists_and_every_output_is_in_results(regen):
  runner = (ROOT / "rnnbench" / "bench" / "runner.py").read_text()
  for step in regen.STEPS:
    args = list(step.args)
    if args[:2] == ["-m", "rnnbench.bench"]:
      assert (ROOT / "rnnbench" / "bench" / "__main__.py").is_file()
      for flag in (a.split("=")[0] for a in args[2:] if a.startswith("--bench.")):
        assert f"bench.{flag.removeprefix('--bench.')} = " in runner, (step.name, flag)
    else:
      script = ROOT / args[0]
      assert script.is_file(), step.name
      source = script.read_text()
      for flag in (a.split("=")[0] for a in args[1:] if a.startswith("--")):
        assert f'"{flag}"' in source, f"{step.name}: {args[0]} has no {flag}"
    for out in step.outputs:
      assert out.startswith("results/") or (step.name, out) == ("speed_summary", "README.md")


def _linked_results_pages() -> dict[str, list[str]]:
  """results/*.md (any depth) linked from README.md and docs/*.md -> the files linking it."""
  found: dict[str, list[str]] = {}
  for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
    for target in re.findall(r"\]\(([^)#\s]+)", doc.read_text()):
      path = (doc.parent / target).resolve()
      if path.suffix == ".md" and (ROOT / "results") in path.parents:
        found.setdefault(str(path.relative_to(ROOT)), []).append(doc.name)
  return found


def test_every_linked_results_page_is_written_by_a_step(regen):
  written = {out for step in regen.STEPS for out in step.outputs}
  linked = _linked_results_pages()
  assert "results/side_by_side_cpu.md" in linked  # the parse finds the docs' links
  orphans = {page: docs for page, docs in linked.items()
             if page not in written and page not in NOT_SPEED}
  assert not orphans, f"linked results pages no regenerate step writes: {orphans}"


def test_speed_summary_names_the_same_commands(regen):
  summary = _load("speed_summary", ROOT / "scripts" / "speed_summary.py")
  by_output = {out.removeprefix("results/"): s.command() for s in regen.STEPS
               for out in s.outputs}
  for source, command in summary.MAKES.items():
    assert by_output[source] == command, source


def test_unknown_step_and_missing_archive_are_one_line(regen, tmp_path, monkeypatch):
  with pytest.raises(SystemExit, match=r"^error: --only: unknown step\(s\) nope; --list"):
    regen.main(["--only", "nope"])
  monkeypatch.setenv(regen.ARCHIVE_ENV, str(tmp_path / "absent.tar.gz"))
  with pytest.raises(SystemExit) as e:
    regen.main(["--only", "tokenizer_speed"])
  assert f"export {regen.ARCHIVE_ENV}=/path/to/20news-bydate.tar.gz" in str(e.value)
  assert "\n" not in str(e.value)


def test_run_stops_at_the_first_failure(regen, tmp_path, capsys):
  marker = tmp_path / "ran"
  steps = [regen.Step("ok", ("-c", "pass"), ()),
           regen.Step("bad", ("-c", "import sys; sys.exit(3)"), ()),
           regen.Step("never", ("-c", f"open({str(marker)!r}, 'w')"), ())]
  assert regen.run(steps) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("error: step bad failed (exit 3)")
  assert not marker.exists()
  assert regen.run(steps[:1]) == 0


def test_docs_results_lists_every_output_and_its_command(regen):
  """docs/results.md names every file a step writes, on a row that names its script."""
  rows = [l for l in (ROOT / "docs" / "results.md").read_text().splitlines()
          if l.startswith("| `")]
  for step in regen.STEPS:
    script = step.args[1] if step.args[0] == "-m" else step.args[0]
    for out in step.outputs:
      if out == "README.md":
        continue
      stem = pathlib.Path(out).stem
      mine = [r for r in rows if r.split("|")[1].strip().startswith(f"`{stem}.")]
      assert mine, f"docs/results.md has no row for {out}"
      assert any(script in r for r in mine), f"{out}: its row does not name {script}"
