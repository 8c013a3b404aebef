"""The README's headline table is the one scripts/headline_table.py writes from results/."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _script(name: str = "headline_table"):
  spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_readme_and_results_headline_are_written_from_the_result_files():
  assert _script().main(["--check"]) == 0, "run: python scripts/headline_table.py"


def test_a_changed_figure_is_caught(tmp_path, monkeypatch, capsys):
  script = _script()
  readme, out = tmp_path / "README.md", tmp_path / "headline.md"
  readme.write_text(script.README.read_text().replace("0.194 ± 0.057", "0.200 ± 0.057"))
  out.write_text(script.OUT.read_text())  # results/headline.md current: only the README is stale
  monkeypatch.setattr(script, "README", readme)
  monkeypatch.setattr(script, "OUT", out)
  assert script.main(["--check"]) == 1
  assert "stale: README.md;" in capsys.readouterr().err
  assert script.main([]) == 0 and "0.194 ± 0.057" in readme.read_text()
  assert script.main(["--check"]) == 0


def test_readme_comparison_is_written_from_the_committed_report():
  assert _script("compare_table").main(["--check"]) == 0, "run: python scripts/compare_table.py"


def test_comparison_table_rows_and_winners(tmp_path, monkeypatch, capsys):
  """The table from a report: a row per cell, the TF-IDF row, each task's winner in bold and
  its Welch margin; a README that says otherwise is stale."""
  import json  # pylint: disable=g-import-not-at-top
  script = _script("compare_table")
  report = json.loads((ROOT / "results" / "compare_quick" / "report.json").read_text())
  paths = {name: tmp_path / name for name in ("report.json", "summary.md", "README.md")}
  paths["report.json"].write_text(json.dumps(report))
  paths["README.md"].write_text(f"intro\n{script.START}\nold\n{script.END}\nrest\n")
  monkeypatch.setattr(script, "REPORT", paths["report.json"])
  monkeypatch.setattr(script, "OUT", paths["summary.md"])
  monkeypatch.setattr(script, "README", paths["README.md"])
  assert script.main(["--check"]) == 1 and "stale" in capsys.readouterr().err
  assert script.main([]) == 0 and script.main(["--check"]) == 0
  table = paths["summary.md"].read_text()
  rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()
          if line.startswith("| ")}
  assert set(report["tasks"]["recall"]["cells"]) <= set(rows)
  for task, t in report["tasks"].items():
    w = t["winner"]
    best = 100 * t["cells"][w["cell"]]["test_accuracy"]["mean"]
    assert f"**{best:.1f}" in rows[w["cell"]]
    assert f"{w['cell']} by {100 * w['margin']['diff']:+.1f} over {w['runner_up']}" in table
    tfidf = 100 * t["baselines"]["tfidf_svm"]["test_accuracy"]
    assert f"{tfidf:.1f}" in rows["TF-IDF + LinearSVC"]
  text = paths["README.md"].read_text()
  assert text.startswith("intro\n") and text.endswith("rest\n") and "old" not in text
