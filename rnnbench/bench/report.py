"""The benchmark's report read back: the step-time vs sequence-length fits, the text tables,
and the comparison of two reports (docs/benchmark.md's schema).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# 2 added the top-level "scaling" and "seq_len_fits"; "results" records are as in 1.
SCHEMA_VERSION = 2
_COMPARABLE_SCHEMAS = (1, 2)
_CASE_KEYS = ("cell", "batch_size", "seq_len", "hidden_size", "mode")
_SCALING_KEYS = ("cell", "batch_size", "seq_len", "hidden_size", "num_devices")
_HEAD = {"cell": "cell", "batch_size": "B", "seq_len": "T", "hidden_size": "H", "mode": "mode",
         "num_devices": "devices"}


def seq_len_fits(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
  """Least-squares fits ``median step time = intercept + slope * T``, per (cell, B, H, mode).

  Only for groups with three or more sequence lengths. ``slope_s`` is the cost of one more
  time step for the whole batch; ``slope_s / B`` that per sequence. ``r2`` near 1: linear.
  """
  groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
  for r in results:
    if r["status"] == "ok":
      groups.setdefault((r["cell"], r["batch_size"], r["hidden_size"], r["mode"]), []).append(r)
  fits = []
  for (cell, b, h, mode), rs in groups.items():
    t = np.array([r["seq_len"] for r in rs], np.float64)
    y = np.array([r["step_time_s"]["median"] for r in rs], np.float64)
    if len(set(t)) < 3:
      continue
    slope, intercept = np.polyfit(t, y, 1)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - (intercept + slope * t)) ** 2)) / ss_tot if ss_tot else 1.0
    fits.append({"cell": cell, "batch_size": b, "hidden_size": h, "mode": mode,
                 "seq_lens": sorted(int(x) for x in t), "slope_s": float(slope),
                 "intercept_s": float(intercept), "r2": r2})
  return fits


def format_fits(fits: Sequence[Mapping[str, Any]]) -> str:
  lines = ["step time vs sequence length, least-squares line (median = intercept + slope * T):"]
  for f in fits:
    lines.append(f"  {f['cell']} b={f['batch_size']} h={f['hidden_size']} {f['mode']}: "
                 f"{1e3 * f['slope_s']:.4g} ms per time step "
                 f"({1e6 * f['slope_s'] / f['batch_size']:.3g} us per token) "
                 f"{'+' if f['intercept_s'] >= 0 else '-'} {1e3 * abs(f['intercept_s']):.3g} ms, "
                 f"R^2 {f['r2']:.4f} "
                 f"(T = {', '.join(map(str, f['seq_lens']))})")
  return "\n".join(lines)


def format_scaling_tables(report: Mapping[str, Any]) -> str:
  """The report's ``scaling`` records: a ``format_scaling`` table per case."""
  groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
  for r in report["scaling"]:
    groups.setdefault((r["cell"], r["seq_len"], r["hidden_size"], r["weak_scaling"]),
                      []).append(r)
  env = report.get("environment", {})
  lines = [f"{report.get('tool', '?')} data-parallel train step on {env.get('backend', '?')} "
           f"({env.get('device_count', '?')} x {env.get('device_kind', '?')}, "
           f"{env.get('cpu_model', '?')})"]
  for (cell, t, h, weak), rs in groups.items():
    b = rs[0]["batch_size"] // (rs[0]["num_devices"] if weak else 1)
    lines += ["", f"{cell} t={t} h={h}, " + (f"weak scaling: b={b} per device" if weak else
                                              f"strong scaling: b={b} in all"),
              format_scaling(rs)]
  return "\n".join(lines)


def format_scaling(records: Sequence[Mapping[str, Any]]) -> str:
  """``measure_scaling``'s records as a fixed-width table."""
  head = ("devices", "B", "B_padded", "B/device", "compile_s", "median_ms", "p10_ms", "p90_ms",
          "seq/s", "tok/s", "speedup", "efficiency")
  rows = []
  for r in records:
    if r["status"] != "ok":
      rows.append((str(r["num_devices"]), str(r["batch_size"]), "ERROR: " + str(r["error"]))
                  + ("",) * (len(head) - 3))
      continue
    s = r["step_time_s"]
    rows.append((str(r["num_devices"]), str(r["batch_size"]), str(r["padded_batch_size"]),
                 str(r["per_device_batch_size"]), f"{r['compile_s']:.2f}",
                 f"{1e3 * s['median']:.3g}", f"{1e3 * s['p10']:.3g}", f"{1e3 * s['p90']:.3g}",
                 f"{r['sequences_per_s']:.4g}", f"{r['tokens_per_s']:.4g}",
                 f"{r['speedup']:.2f}", f"{r['efficiency']:.2f}"))
  widths = [max(len(x) for x in col) for col in zip(head, *rows)]
  return "\n".join("  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in [head, *rows])


def short(record: Mapping[str, Any]) -> str:
  if record["status"] != "ok":
    return "ERROR"
  return f"{1e3 * record['step_time_s']['median']:.3g}ms"


def _fmt(value: float | None, scale: float = 1.0, spec: str = ".3g") -> str:
  return "-" if value is None else format(value * scale, spec)


def format_table(report: Mapping[str, Any]) -> str:
  """The report's results as a fixed-width text table."""
  head = ("cell", "B", "T", "H", "mode", "compile_s", "median_ms", "p10_ms", "p90_ms",
          "seq/s", "tok/s", "GFLOP_xla", "GFLOP_mm", "GFLOP/s_xla", "GFLOP/s_mm", "peak_MB",
          "params")
  rows = []
  errors = []
  for r in report["results"]:
    case = (r["cell"], str(r["batch_size"]), str(r["seq_len"]), str(r["hidden_size"]),
            r["mode"])
    if r["status"] != "ok":
      rows.append(case + ("ERROR",) + ("",) * (len(head) - 6))
      errors.append(f"  {' '.join(case)}: {r['error']}")
      continue
    s, f, fs = r["step_time_s"], r["flops"], r["flop_per_s"]
    rows.append(case + (
        _fmt(r["compile_s"], 1, ".2f"), _fmt(s["median"], 1e3), _fmt(s["p10"], 1e3),
        _fmt(s["p90"], 1e3), _fmt(r["sequences_per_s"], 1, ".4g"),
        _fmt(r["tokens_per_s"], 1, ".4g"), _fmt(f["xla"], 1e-9), _fmt(f["analytic"], 1e-9),
        _fmt(fs["xla"], 1e-9), _fmt(fs["analytic"], 1e-9),
        _fmt(r["peak_memory"]["bytes"], 2**-20, ".0f"), f"{r['params']['total']:,}"))
  widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
  lines = ["  ".join(str(x).rjust(w) for x, w in zip(row, widths)) for row in [head, *rows]]
  env = report.get("environment", {})
  lines.insert(0, f"{report.get('tool', '?')} on {env.get('backend', '?')} "
                  f"({env.get('device_kind', '?')}, {env.get('cpu_model', '?')}); "
                  f"peak_MB: {_memory_source(report)}")
  if errors:
    lines += ["errors:", *errors]
  return "\n".join(lines)


def _memory_source(report: Mapping[str, Any]) -> str:
  for r in report["results"]:
    if r.get("peak_memory"):
      return r["peak_memory"]["source"]
  return "-"


def case_key(record: Mapping[str, Any], keys: Sequence[str] = _CASE_KEYS) -> tuple[Any, ...]:
  return tuple(record[k] for k in keys)


def compare_keys(section: str) -> tuple[str, ...]:
  return _SCALING_KEYS if section == "scaling" else _CASE_KEYS


def compare(report: Mapping[str, Any], old: Mapping[str, Any],
            section: str = "results") -> list[dict[str, Any]]:
  """Each record of ``report[section]`` against the same case in ``old[section]``.

  ``section`` "results" matches on (cell, B, T, H, mode), "scaling" on (cell, B, T, H,
  devices). ``ratio`` is new median / old median: below 1 the new run is faster.
  """
  keys = compare_keys(section)
  old_by_key = {case_key(r, keys): r for r in old.get(section) or []}
  rows = []
  for r in report[section] or []:
    o = old_by_key.get(case_key(r, keys))
    new_s = r["step_time_s"]["median"] if r["status"] == "ok" else None
    old_s = o["step_time_s"]["median"] if o and o.get("status") == "ok" else None
    rows.append({**{k: r[k] for k in keys}, "new_median_s": new_s,
                 "old_median_s": old_s,
                 "ratio": new_s / old_s if new_s and old_s else None,
                 "note": ("not in old run" if o is None else "error in old run"
                          if old_s is None else "error in new run" if new_s is None else "")})
  return rows


def compare_warnings(report: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
  """Differences between the two runs' setups that make the ratios apples to oranges."""
  out = []
  if old.get("schema_version") not in _COMPARABLE_SCHEMAS:
    out.append(f"old run has schema_version {old.get('schema_version')}, "
               f"this one {SCHEMA_VERSION}")
  if (old.get("scaling") is not None) != (report.get("scaling") is not None):
    out.append("one run is a --bench.devices run and the other is not: nothing to match")
  for key in ("backend", "device_kind", "cpu_model", "jax", "jaxlib"):
    a, b = old.get("environment", {}).get(key), report["environment"].get(key)
    if a != b:
      out.append(f"environment.{key}: old {a!r}, new {b!r}")
  old_model = old.get("config", {}).get("model", {})
  for key, value in report.get("config", {}).get("model", {}).items():
    if key not in ("cell", "hidden_size") and old_model.get(key, value) != value:
      out.append(f"config.model.{key}: old {old_model.get(key)!r}, new {value!r}")
  return out


def format_comparison(rows: Sequence[Mapping[str, Any]], warnings: Sequence[str] = (),
                      section: str = "results") -> str:
  keys = compare_keys(section)
  head = tuple(_HEAD[k] for k in keys) + ("old_ms", "new_ms", "new/old")
  body = [tuple(str(r[k]) for k in keys) + (
      _fmt(r["old_median_s"], 1e3), _fmt(r["new_median_s"], 1e3),
      _fmt(r["ratio"], 1, ".3f") + (f"  ({r['note']})" if r["note"] else "")) for r in rows]
  widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
  lines = ["comparison with the saved run (new/old < 1: faster now):"]
  lines += [f"  warning: {w}" for w in warnings]
  lines += ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in [head, *body]]
  return "\n".join(lines)
