"""The markdown pages of tokenizer_speed.py, speed_leads.py and parallel_scan.py: the ratio with
its range as the headline, the times, the machine and the command; --from_json renders the
page of a saved JSON without measuring (parallel_scan: a tiny real run, JSON and page)."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import parallel_scan  # pylint: disable=wrong-import-position
import speed_leads  # pylint: disable=wrong-import-position
import tokenizer_speed  # pylint: disable=wrong-import-position

ENV = {"cpu_model": "Fake CPU", "cpu_count": 2, "python": "3.11.7", "jax": "0.10.2",
       "git": {"commit": "b" * 40, "dirty": True}}


def _stages(fit, seq, pad):
  return {"fit": fit, "sequences": seq, "pad": pad, "total": fit + seq + pad}


def _tokenizer_report():
  # totals per repeat: keras 4, 6, 3 s; rnnbench 1, 2, 1 s -> speed-ups 4, 3, 3
  keras = {"fit": [2.0, 3.0, 1.5], "sequences": [1.5, 2.5, 1.0], "pad": [0.5, 0.5, 0.5]}
  ours = {"fit": [0.5, 1.0, 0.5], "sequences": [0.25, 0.5, 0.25], "pad": [0.25, 0.5, 0.25]}
  all_s = {}
  for clock in tokenizer_speed.CLOCKS:
    all_s[clock] = {}
    for name, t in (("keras_preprocessing", keras), ("rnnbench", ours)):
      all_s[clock][name] = {**t, "total": [sum(x) for x in zip(*t.values())]}
  med = lambda xs: sorted(xs)[1]
  median_s = {c: {n: {s: med(v) for s, v in by.items()} for n, by in m.items()}
              for c, m in all_s.items()}
  speedup = {c: {s: m["keras_preprocessing"][s] / m["rnnbench"][s]
                 for s in tokenizer_speed.STAGES} for c, m in median_s.items()}
  return {"documents": 11314, "subset": "train", "num_words": 20000, "maxlen": 100,
          "repeats": 3, "median_s": median_s, "all_s": all_s, "speedup": speedup,
          "load_average": 1.5, "environment": ENV, "created_utc": "2026-01-01T00:00:00",
          "command": "python benchmarks/tokenizer_speed.py --json t.json --markdown t.md"}


def test_tokenizer_page_has_the_speedup_with_its_range_the_seconds_and_the_machine():
  page = tokenizer_speed.markdown(_tokenizer_report())
  assert "| wall | **3.00** [3.00, 4.00] | 4.000 | 1.000 |" in page
  assert "| cpu | **3.00** [3.00, 4.00] |" in page
  assert "| fit | wall | 4.00 | 2.000 | 0.500 |" in page  # of the medians, 2.0 / 0.5
  assert "- CPU: Fake CPU, 2 cores; Python 3.11.7" in page
  assert "- Load average (1, 5, 15 min; one value: 1 min): 1.50" in page
  assert "git bbbbbbbbbbbb (uncommitted changes)" in page
  assert "python benchmarks/tokenizer_speed.py --json t.json --markdown t.md" in page


def test_tokenizer_from_json_renders_without_measuring(tmp_path, monkeypatch):
  src, out = tmp_path / "t.json", tmp_path / "t.md"
  src.write_text(json.dumps(_tokenizer_report()))
  monkeypatch.setattr(sys, "argv", ["x", "--from_json", str(src), "--markdown", str(out)])
  monkeypatch.setattr(tokenizer_speed.data, "fetch_20newsgroups",
                      lambda *a, **k: pytest.fail("--from_json must not load data"))
  tokenizer_speed.main()
  assert out.read_text() == tokenizer_speed.markdown(_tokenizer_report())


def _phase(median, q1, q3, ratio):
  return {"median_ms": median, "q1_ms": q1, "q3_ms": q3, "n": 4, "ratio": ratio}


def _leads_report():
  base = {"cell": "lstm", "lead": "baseline", "step_trace_s": 0.1, "step_compile_s": 2.0,
          "fwd": _phase(2.0, 1.9, 2.1, 1.0), "step": _phase(10.0, 9.0, 11.0, 1.0)}
  fused = {"cell": "lstm", "lead": "fused", "step_trace_s": 0.2, "step_compile_s": 3.0,
           "fwd": _phase(1.0, 0.9, 1.1, 0.5), "step": _phase(8.0, 7.7, 9.9, 0.8)}
  keras = {"cell": "lstm", "lead": "keras_jax_fit", "step": _phase(12.0, 11.0, 13.0, 1.2)}
  return {"rounds": 2, "steps_per_round": 2, "ratio_to": "baseline", "data": "synthetic",
          "environment": {**ENV, "loadavg": [1.0, 2.0, 3.0]}, "results": [base, fused, keras],
          "command": "python benchmarks/speed_leads.py --json l.json"}


def test_speed_leads_page_has_each_ratio_with_its_quartile_range():
  page = speed_leads.markdown(_leads_report())
  # fused: 8 / 10; range 7.7 / 11 = 0.70 to 9.9 / 9 = 1.10
  assert "| fused | **0.80** [0.70, 1.10] | 8.00 [7.70, 9.90] | 0.50 | 0.20 + 3.00 |" in page
  assert "| baseline | **1.00** [0.82, 1.22] | 10.00 [9.00, 11.00] | 1.00 | 0.10 + 2.00 |" in page
  assert "| keras_jax_fit | **1.20** [1.00, 1.44] | 12.00 [11.00, 13.00] | - | - |" in page
  assert "| lead | step ratio [range] | step ms | fwd ratio | trace + compile s |" in page
  assert "- Load average (1, 5, 15 min; one value: 1 min): [1.00, 2.00, 3.00]" in page
  assert "Fake CPU, 2 cores" in page
  assert "python benchmarks/speed_leads.py --json l.json" in page


def test_speed_leads_from_json_renders_without_measuring(tmp_path, monkeypatch):
  src, out = tmp_path / "l.json", tmp_path / "l.md"
  src.write_text(json.dumps(_leads_report()))
  monkeypatch.setattr(speed_leads, "make_batches",
                      lambda *a: pytest.fail("--from_json must not measure"))
  speed_leads.main(["--from_json", str(src), "--markdown", str(out)])
  assert out.read_text() == speed_leads.markdown(_leads_report())


def test_parallel_scan_tiny_run_writes_json_and_page_and_renders_old_json(tmp_path, monkeypatch):
  js, md = tmp_path / "p.json", tmp_path / "p.md"
  monkeypatch.setattr(sys, "argv", ["parallel_scan.py", "--cells", "mingru", "--seq_lens", "4",
                                    "--batch", "2", "--in_features", "3", "--hidden", "2",
                                    "--repeats", "2", "--json", str(js), "--markdown", str(md)])
  parallel_scan.main()
  report = json.loads(js.read_text())
  row = report["rows"][0]
  assert (row["cell"], row["seq_len"], len(row["sequential_times_ms"])) == ("mingru", 4, 2)
  assert row["sequential_ms"] == pytest.approx(sum(row["sequential_times_ms"]) / 2)
  page = md.read_text()
  assert page == parallel_scan.markdown(report)
  speedup = row["sequential_ms"] / row["parallel_ms"]
  lo = min(row["sequential_times_ms"]) / max(row["parallel_times_ms"])
  assert f"| mingru | 4 | **{speedup:.2f}** [{lo:.2f}, " in page
  assert "--cells mingru --seq_lens 4" in page and "- git " in page
  # a JSON from before the per-run times and the environment: medians only, "not recorded"
  old = {k: report[k] for k in ("batch", "in_features", "hidden", "repeats", "device", "jax",
                                "machine")}
  old["rows"] = [{k: row[k] for k in ("cell", "seq_len", "sequential_ms", "parallel_ms")}]
  page = parallel_scan.markdown(old)
  assert f"| mingru | 4 | **{speedup:.2f}** - |" in page
  assert "command not recorded in the JSON" in page


def test_xla_threads_tiny_run_measures_both_functions_and_writes_its_page(tmp_path):
  import xla_threads  # pylint: disable=g-import-not-at-top
  out_json, out_md = tmp_path / "x.json", tmp_path / "x.md"
  rep = xla_threads.main(["--rounds=2", "--calls=2", "--rows=64", "--cols=8",
                          f"--json={out_json}", f"--markdown={out_md}"])
  saved = json.loads(out_json.read_text())
  assert saved["shape"] == [64, 8] and set(saved["results"]) == {"adam", "sines"}
  for r in rep["results"].values():
    assert len(r["wall_ms"]) == len(r["cpu_ms"]) == 2 and min(r["wall_ms"]) > 0
    c = r["cpu_over_wall"]
    assert c["min"] <= c["median"] <= c["max"]
  page = out_md.read_text()
  assert "| adam | **" in page and "| sines | **" in page
  assert "python benchmarks/xla_threads.py --rounds=2" in page and "## Machine and command" in page
  # The Adam it times is Keras' update (bias correction aside), to the last bit of XLA's.
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  p, m, v, g = (rng.standard_normal((4, 3)).astype(np.float32) for _ in range(4))
  v = np.abs(v)
  got = [np.asarray(a) for a in xla_threads.keras_adam(p, m, v, g)]
  m2 = 0.9 * m + 0.1 * g
  v2 = 0.999 * v + 0.001 * g * g
  np.testing.assert_allclose(got[1], m2, rtol=1e-6)
  np.testing.assert_allclose(got[2], v2, rtol=1e-6)
  np.testing.assert_allclose(got[0], p - 1e-3 * m2 / (np.sqrt(v2) + 1e-7), rtol=1e-6)


def test_tokenizer_page_sets_the_floor_beside_the_total():
  report = {**_tokenizer_report(), "floor_s": {"text_pass": 0.25, "keras_dicts": 0.125,
                                               "sequence_lists": 0.125}}
  page = tokenizer_speed.markdown(report)
  assert "| text_pass | lower-case and UTF-8-encode" in page and "| 0.250 |" in page
  assert "| all | of rnnbench's total 1.000 s | 0.500 |" in page
  assert "would be at most 8.00; rnnbench's remaining time above it is 0.500 s" in page


def test_tokenizer_floor_parts_make_what_they_say(tmp_path):
  from rnnbench import tokenizer  # pylint: disable=g-import-not-at-top
  tok = tokenizer.Tokenizer(num_words=10)
  texts = ["The cat sat.", "the dog, the cat"]
  tok.fit_on_texts(texts)
  seqs = tok.texts_to_sequences(texts)
  got = tokenizer_speed.floor_times(texts, tok, seqs, repeats=2)
  assert set(got) == set(tokenizer_speed.FLOOR_PARTS)
  assert all(len(v) == 2 and min(v) >= 0 for v in got.values())
