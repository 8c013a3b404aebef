"""scripts/speed_summary.py: the README's speed block is written from results/ JSONs, its ratios
are per round with their range, a stale README is caught and a missing JSON is one line."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _script():
  spec = importlib.util.spec_from_file_location("speed_summary",
                                                ROOT / "scripts" / "speed_summary.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


ENV = {"cpu_model": "Fake CPU", "cpu_count": 2, "git": {"commit": "a" * 40, "dirty": False}}


def _side_by_side():
  # rnnbench 10 ms / torch 20, 40 ms in rounds 1, 2; Keras-TF 30 ms both rounds
  runs = [{"round": k, "cell": "lstm", "tool": t, "median_s": s} for k, t, s in (
      (1, "rnnbench", 0.010), (2, "rnnbench", 0.010), (1, "torch-eager", 0.020),
      (2, "torch-eager", 0.040), (1, "keras-tensorflow", 0.030), (2, "keras-tensorflow", 0.030))]
  return {"runs": runs, "summary": [{"cell": "lstm", "tool": "rnnbench"}], "environment": ENV,
          "load_average": {"start": [1.0], "end": [1.0]}, "created_utc": "2026-01-01T00:00:00"}


def _side_by_side_zipf():
  report = _side_by_side()
  report["runs"] = [dict(r, median_s=r["median_s"] / 2) if r["tool"] == "rnnbench" else r
                    for r in report["runs"]]
  report["settings"] = {"tokens": "zipf"}
  return report


def _whole_run():
  ratio = {"median": 0.5, "min": 0.4, "max": 0.6, "n": 3}
  wall = lambda m: {"median": m, "min": m, "max": m, "n": 3}
  return {"summary": {"gru": {"notebook": {"wall_s": wall(30.0)},
                              "rnnbench cold": {"wall_s": wall(15.0), "ratio_to_notebook": ratio},
                              "rnnbench warm": {"wall_s": wall(12.0),
                                                "ratio_to_notebook": ratio}}},
          "environment": ENV, "loadavg_start": [1.0], "created_utc": "2026-01-01T00:00:00"}


def _tokenizer():
  return {"all_s": {"cpu": {"rnnbench": {"total": [1.0, 1.0, 2.0]},
                            "keras_preprocessing": {"total": [4.0, 5.0, 4.0]}}},
          "environment": ENV, "load_average": 1.0}


@pytest.fixture
def fake(tmp_path, monkeypatch):
  script = _script()
  for name, obj in (("SIDE_BY_SIDE", _side_by_side()), ("SIDE_BY_SIDE_ZIPF", _side_by_side_zipf()),
                    ("WHOLE_RUN", _whole_run()),
                    ("TOKENIZER", _tokenizer())):
    path = tmp_path / f"{name.lower()}.json"
    path.write_text(json.dumps(obj))
    monkeypatch.setattr(script, name, path)
  readme = tmp_path / "README.md"
  readme.write_text(f"# x\n\ntext\n\n{script.START}\nold 9.99 ms\n{script.END}\n\nafter\n")
  monkeypatch.setattr(script, "README", readme)
  monkeypatch.setattr(script, "OUT", tmp_path / "speed_summary.md")
  return script


def test_block_has_the_ratios_per_round_with_their_range_and_the_machine(fake):
  assert fake.main(["--check"]) == 1
  assert fake.main([]) == 0
  text = fake.README.read_text()
  block = text.split(fake.START)[1].split(fake.END)[0]
  assert "old 9.99 ms" not in text and text.endswith(f"{fake.END}\n\nafter\n")
  # torch: 10/20 and 10/40 -> median 0.375 [0.25, 0.50]; Keras-TF 1/3 both rounds
  assert "| train step, LSTM, uniform ids | PyTorch eager | **0.38** [0.25, 0.50] (2 rounds) " \
         "| 10.00 ms | 30.00 ms |" in block
  # the zipf page: rnnbench at half the time, its own page linked
  assert "| train step, LSTM, zipf ids | PyTorch eager | **0.19** [0.12, 0.25] (2 rounds) " \
         "| 5.00 ms | 30.00 ms | [side_by_side_cpu_zipf.md](results/side_by_side_cpu_zipf.md) |" \
         in block
  assert "| Keras 3 TF `fit` | **0.33** [0.33, 0.33] (2 rounds) | 10.00 ms | 30.00 ms |" in block
  assert "| whole `run.py`, GRU, cold | the Keras notebook | **0.50** [0.40, 0.60] (3 rounds) " \
         "| 15.0 s | 30.0 s |" in block
  assert "| whole `run.py`, GRU, warm |" in block
  # tokenizer: 1/4, 1/5, 2/4 -> median 0.25 [0.20, 0.50]
  assert "**0.25** [0.20, 0.50] (3 repeats) | 1.00 s | 4.00 s |" in block
  assert "- train step: Fake CPU, 2 cores, load average start [1.00], end [1.00], git " \
         "aaaaaaaaaaaa, 2026-01-01T00:00:00" in block
  assert "](results/side_by_side_cpu.md)" in block
  page = fake.OUT.read_text()
  assert "](side_by_side_cpu.md)" in page and "](results/" not in page
  assert fake.main(["--check"]) == 0


def test_a_changed_figure_is_caught(fake, capsys):
  fake.main([])
  fake.README.write_text(fake.README.read_text().replace("15.0 s", "14.0 s"))
  assert fake.main(["--check"]) == 1
  assert "stale: README.md;" in capsys.readouterr().err


def test_a_missing_source_names_the_command_that_makes_it(fake, tmp_path, monkeypatch):
  monkeypatch.setattr(fake, "WHOLE_RUN", tmp_path / "whole_run_cpu.json")
  with pytest.raises(SystemExit) as e:
    fake.main([])
  assert str(e.value).startswith("error: ") and "\n" not in str(e.value)
  assert "is missing; make it with: python benchmarks/whole_run.py --rounds=3" in str(e.value)


def test_readme_block_is_current_or_says_which_command_is_missing(capsys):
  """The real README: current, or (sources not measured yet) the one line naming the command."""
  script = _script()
  missing = [p for p in (script.SIDE_BY_SIDE, script.SIDE_BY_SIDE_ZIPF, script.WHOLE_RUN,
                         script.TOKENIZER)
             if not p.exists()]
  if missing:
    with pytest.raises(SystemExit) as e:
      script.main(["--check"])
    assert f"{missing[0]} is missing; make it with: {script.MAKES[missing[0].name]}" \
        == str(e.value).removeprefix("error: ")
  else:
    assert script.main(["--check"]) == 0, "run: python scripts/speed_summary.py"
