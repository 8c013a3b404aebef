"""The README's headline table is the one scripts/headline_table.py writes from results/."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _script():
  spec = importlib.util.spec_from_file_location("headline_table",
                                                ROOT / "scripts" / "headline_table.py")
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
