"""The command-line plumbing every entry point shares (rnnbench.cli)."""

import ast
import subprocess
import sys

from conftest import ROOT

ENTRY_POINTS = ("run.py", "rnnbench/evaluate.py", "rnnbench/predict.py", "rnnbench/sweep.py",
                "rnnbench/bench/__main__.py", "rnnbench/compare.py")


def _calls(path):
  tree = ast.parse((ROOT / path).read_text())
  return {f"{n.func.value.id}.{n.func.attr}" for n in ast.walk(tree)
          if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
          and isinstance(n.func.value, ast.Name)}


def test_every_entry_point_runs_through_cli_run():
  for path in ENTRY_POINTS:
    calls = _calls(path)
    assert "cli.run" in calls, path
    assert not calls & {"app.run", "logging.set_verbosity", "flags.mark_flags_as_required"}, path


def _predict(*flags):
  return subprocess.run([sys.executable, "-m", "rnnbench.predict", "--workdir=/nonexistent/run",
                         "some text", *flags], capture_output=True, text=True, cwd=ROOT,
                        timeout=300, check=False)


def test_an_expected_error_is_one_line_and_traceback_shows_it():
  quiet = _predict()
  assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
  assert quiet.stderr.strip().splitlines() == [
      quiet.stderr.strip()] and quiet.stderr.startswith("error: /nonexistent/run does not exist")
  loud = _predict("--traceback")
  assert loud.returncode != 0 and "Traceback" in loud.stderr and "RunError" in loud.stderr
