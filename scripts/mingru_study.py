"""Why minGRU/minLSTM learn slowly on the notebook's task: 2-epoch runs of model variants.

    RNNBENCH_20NEWS_ARCHIVE=.../20news-bydate.tar.gz python scripts/mingru_study.py \
        [--variants=gru,mingru,mingru:log_space=False,...] [--epochs=2] \
        [--out=results/mingru_study] [--root=/tmp/mingru_study]

Each variant is ``cell[:field=value,...]`` over the notebook's config (``config.model``
fields, e.g. ``mingru:dropout=0.0`` or ``mingru:block=True``); each trains the notebook's
2 epochs on the full 20 Newsgroups train split (seed 0) and its per-epoch validation accuracy
goes into OUT.json and OUT.md, with the pooled features' statistics at initialisation
(mean, and the spread across documents, of the max-pooled RNN output on 512 train rows):
the share of a feature that depends on the document, which dropout's noise is compared to.
"""

from __future__ import annotations

import argparse
import ast
import json
import pathlib
import sys
import time

import jax
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rnnbench.configs import default  # pylint: disable=wrong-import-position
from rnnbench import input_pipeline  # pylint: disable=wrong-import-position
from rnnbench import models  # pylint: disable=wrong-import-position
from rnnbench import train  # pylint: disable=wrong-import-position
from rnnbench import workdir as layout  # pylint: disable=wrong-import-position

VARIANTS = ("gru", "gru:dropout=0.0", "mingru", "mingru:dropout=0.0", "mingru:log_space=False",
            "mingru:block=True", "minlstm", "minlstm:dropout=0.0", "minlstm:log_space=False")


def variant_config(spec: str, epochs: int):
  cell, _, fields = spec.partition(":")
  config = default.get_config()
  config.model.cell = cell
  for item in filter(None, fields.split(",")):
    key, _, value = item.partition("=")
    if key not in config.model:
      raise ValueError(f"{spec}: no config.model field {key!r}")
    config.model[key] = ast.literal_eval(value)
  config.train.update(num_epochs=epochs, progress=False, tensorboard=False)
  return config


def pooled_stats(config, prepared) -> dict[str, float]:
  """The max-pooled RNN features at init on 512 train rows: |mean|, and the std across rows."""
  model = models.create_model(config, len(prepared.label_names))
  x = prepared.train.x[:512]
  params = model.init(jax.random.key(config.seed), x[:1])["params"]
  feats = np.asarray(model.apply({"params": params}, x, method="rnn_outputs")).max(axis=1)
  mean, spread = np.abs(feats.mean(0)).mean(), feats.std(0).mean()
  return {"feature_mean_abs": float(mean), "feature_std_across_docs": float(spread),
          "signal_share": float(spread / (mean + spread))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--epochs", type=int, default=2)
  parser.add_argument("--out", default=str(ROOT / "results" / "mingru_study"))
  parser.add_argument("--root", default="/tmp/mingru_study")
  args = parser.parse_args()
  specs = [v for v in args.variants.split(",") if v]
  prepared_cache = {}
  real_prepare = input_pipeline.prepare

  def prepare(config):  # every variant reads the same data: tokenise it once
    key = json.dumps(config.data.to_dict(), sort_keys=True)
    if key not in prepared_cache:
      prepared_cache[key] = real_prepare(config)
    return prepared_cache[key]

  input_pipeline.prepare = prepare  # what train_and_evaluate reads its data with
  results = {}
  for spec in specs:
    config = variant_config(spec, args.epochs)
    start = time.perf_counter()
    workdir = pathlib.Path(args.root) / spec.replace(":", "_")
    summary = train.train_and_evaluate(config, workdir)
    history = layout.read_jsonl(workdir / layout.METRICS)
    results[spec] = {"val_accuracy": [h["val_accuracy"] for h in history],
                     "test_accuracy": summary["test_accuracy"],
                     "wall_s": time.perf_counter() - start,
                     **pooled_stats(config, prepare(config))}
    print(spec, results[spec], flush=True)
  out = pathlib.Path(args.out)
  out.with_suffix(".json").write_text(json.dumps(
      {"epochs": args.epochs, "seed": 0, "command": " ".join(sys.argv),
       "environment": train.environment(), "results": results}, indent=1) + "\n")
  lines = ["| variant | " + " | ".join(f"val acc, epoch {e + 1}" for e in range(args.epochs))
           + " | test acc | pooled feature: mean, std across docs (init) |",
           "|---|" + "--:|" * (args.epochs + 2)]
  for spec, r in results.items():
    lines.append(f"| {spec} | " + " | ".join(f"{a:.3f}" for a in r["val_accuracy"])
                 + f" | {r['test_accuracy']:.3f} | {r['feature_mean_abs']:.3f}, "
                 f"{r['feature_std_across_docs']:.4f} |")
  lines += ["", f"Seed 0, the notebook's config otherwise, {args.epochs} epochs on the full "
            "train split. `python " + " ".join(sys.argv) + "`"]
  out.with_suffix(".md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
