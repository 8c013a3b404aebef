"""The benchmark's report as a PNG (matplotlib, an optional dependency: ``rnnbench[plot]``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rnnbench.bench import report as report_lib

_SHORT = {"batch_size": "b", "seq_len": "t", "hidden_size": "h"}


def require_matplotlib() -> None:
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise SystemExit("--bench.plot needs matplotlib: pip install 'rnnbench[plot]' "
                     "(or pip install matplotlib)") from None


def _pyplot() -> Any:
  require_matplotlib()
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _label(keys: Sequence[str], values: Sequence[Any]) -> str:
  return " ".join(str(v) if k == "cell" else f"{_SHORT[k]}={v}" for k, v in zip(keys, values))


def _groups(records: Sequence[Mapping[str, Any]], keys: Sequence[str], x_key: str
            ) -> list[tuple[tuple[Any, ...], list[Mapping[str, Any]]]]:
  groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
  for r in records:
    groups.setdefault(tuple(r[k] for k in keys), []).append(r)
  return [(k, sorted(rs, key=lambda r: r[x_key])) for k, rs in sorted(groups.items())]


def _log2_x(ax: Any, ticks: Sequence[int]) -> None:
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  ax.set_xscale("log", base=2)
  ax.set_xticks(sorted(ticks))
  ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _title(report: Mapping[str, Any], what: str) -> str:
  env = report.get("environment", {})
  device = env.get("cpu_model") if env.get("backend") == "cpu" else env.get("device_kind")
  return f"rnnbench {what} on {env.get('backend', '?')} ({device})"


def plot(report: Mapping[str, Any], path: str | os.PathLike) -> None:
  """The report as a PNG: ``plot_scaling`` for a devices run, else ``plot_grid``."""
  if report.get("scaling") is not None:
    plot_scaling(report, path)
  else:
    plot_grid(report, path)


def plot_grid(report: Mapping[str, Any], path: str | os.PathLike) -> None:
  """Step time vs sequence length (with its linear fit) and sequences/s vs batch size.

  One panel for what the grid varies: T (or neither), B, or both. Of the modes, ``train``.
  """
  plt = _pyplot()
  ok = [r for r in report["results"] if r["status"] == "ok"]
  mode = "train" if any(r["mode"] == "train" for r in ok) else (ok[0]["mode"] if ok else "")
  ok = [r for r in ok if r["mode"] == mode]
  by_seq = len({r["seq_len"] for r in ok}) > 1
  by_batch = len({r["batch_size"] for r in ok}) > 1
  panels = (["seq"] if by_seq or not by_batch else []) + (["batch"] if by_batch else [])
  fig, axes = plt.subplots(1, len(panels), squeeze=False, figsize=(6.5 * len(panels), 4.8))
  axes = dict(zip(panels, axes[0]))

  if "seq" in axes:
    ax = axes["seq"]
    fits = {(f["cell"], f["batch_size"], f["hidden_size"]): f
            for f in report_lib.seq_len_fits(ok)}
    keys = ("cell", "batch_size", "hidden_size")
    for key, rs in _groups(ok, keys, "seq_len"):
      t = [r["seq_len"] for r in rs]
      ms = {k: [1e3 * r["step_time_s"][k] for r in rs] for k in ("median", "p10", "p90")}
      fit = fits.get(key)
      label = _label(keys, key) + (
          f": {1e3 * fit['slope_s']:.3g} ms per step of T, R\u00b2={fit['r2']:.3f}"
          if fit else "")
      bars = ax.errorbar(t, ms["median"], marker="o", linestyle="none" if fit else "-",
                         capsize=3, label=label,
                         yerr=[np.subtract(ms["median"], ms["p10"]),
                               np.subtract(ms["p90"], ms["median"])])
      if fit:
        xs = np.array([0, max(t)])
        ax.plot(xs, 1e3 * (fit["intercept_s"] + fit["slope_s"] * xs), linestyle="--",
                color=bars.lines[0].get_color(), linewidth=1)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set(xlabel="sequence length T", ylabel=f"{mode} step time, ms (median; bars: p10-p90)",
           title="step time vs sequence length (dashed: least-squares line)")

  if "batch" in axes:
    ax = axes["batch"]
    keys = ("cell", "seq_len", "hidden_size")
    for key, rs in _groups(ok, keys, "batch_size"):
      b = [r["batch_size"] for r in rs]
      line, = ax.plot(b, [r["sequences_per_s"] for r in rs], marker="o",
                      label=_label(keys, key))
      ax.fill_between(b, [r["batch_size"] / r["step_time_s"]["p90"] for r in rs],
                      [r["batch_size"] / r["step_time_s"]["p10"] for r in rs],
                      alpha=0.2, color=line.get_color())
      for r in rs:
        ax.annotate(f"{r['sequences_per_s']:.0f}", (r["batch_size"], r["sequences_per_s"]),
                    textcoords="offset points", xytext=(0, 6), ha="center",
                    fontsize="x-small", color=line.get_color())
    _log2_x(ax, {r["batch_size"] for r in ok})
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set(xlabel="batch size B", ylabel=f"{mode} sequences/s (B / median; band: p10-p90)",
           title="throughput vs batch size")
  fig.suptitle(_title(report, f"{mode} step"), fontsize="medium")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_scaling(report: Mapping[str, Any], path: str | os.PathLike) -> None:
  """A devices run: step time and sequences/s vs device count, per case (dashed: linear)."""
  plt = _pyplot()
  ok = [r for r in report["scaling"] if r["status"] == "ok"]
  fig, (ax_t, ax_s) = plt.subplots(1, 2, figsize=(13, 4.8))
  keys = ("cell", "batch_size", "seq_len", "hidden_size")
  for key, rs in _groups([{**r, "batch_size": r["batch_size"] // (
      r["num_devices"] if r["weak_scaling"] else 1)} for r in ok], keys, "num_devices"):
    n = [r["num_devices"] for r in rs]
    label = _label(keys, key) + (" per device" if rs[0]["weak_scaling"] else "")
    line, = ax_t.plot(n, [1e3 * r["step_time_s"]["median"] for r in rs], marker="o",
                      label=label)
    ax_t.fill_between(n, [1e3 * r["step_time_s"]["p10"] for r in rs],
                      [1e3 * r["step_time_s"]["p90"] for r in rs], alpha=0.2,
                      color=line.get_color())
    ax_s.plot(n, [r["sequences_per_s"] for r in rs], marker="o", color=line.get_color(),
              label=f"{label}: speedup {rs[-1]['speedup']:.2f} on {n[-1]}")
    ax_s.plot(n, [rs[0]["sequences_per_s"] * m / n[0] for m in n], linestyle="--",
              linewidth=1, color=line.get_color())
  weak = any(r["weak_scaling"] for r in ok)
  for ax in (ax_t, ax_s):
    _log2_x(ax, {r["num_devices"] for r in ok} or {1})
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
  ax_t.set_ylim(bottom=0)
  ax_s.set_yscale("log")
  ax_t.set(xlabel="devices", ylabel="train step time, ms (median, p10-p90)",
           title="step time vs device count")
  ax_s.set(xlabel="devices", ylabel="sequences/s (B / median)",
           title="throughput vs device count (dashed: linear scaling)")
  env = report.get("environment", {})
  fig.suptitle(_title(report, f"data-parallel train step, {'weak' if weak else 'strong'} "
                              f"scaling, {env.get('device_count', '?')} devices"),
               fontsize="medium")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
