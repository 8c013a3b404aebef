"""The notebook, run both in rnnbench and in Keras, for several seeds: the README's results table.

    RNNBENCH_20NEWS_ARCHIVE=../shared/data/20news-bydate.tar.gz \
      python scripts/reproduce_notebook.py --seeds=0,1,2 --json=results/notebook.json

Both sides see the same tokenized data (rnnbench's tokenizer is tested identical to Keras') and
train the notebook's model: Embedding(20000, 128) -> LSTM(50) | GRU(50, reset_after=False), with
Keras 2's hard sigmoid as recurrent activation (Keras 2.2's default) -> GlobalMaxPool1D ->
Dropout(0.5) -> Dense(50, relu) -> Dropout(0.5) -> Dense(20, softmax); Adam, 2 epochs, batch 32,
validation_split=0.1. Keras runs as 3.x on the JAX backend (``model.fit``), since the notebook's
Keras 2.2/TF1 no longer installs; each run is its own subprocess.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys

from absl import app
from absl import flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run for every cell and framework.")
_CELLS = flags.DEFINE_list("cells", ["lstm", "gru"], "Cells.")
_FRAMEWORKS = flags.DEFINE_list("frameworks", ["rnnbench", "keras"], "Which sides to run.")
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Epochs per run.")
_JSON = flags.DEFINE_string("json", None, "Write every run's per-epoch metrics here.")
_ONE = flags.DEFINE_string("one", None, "Internal: run FRAMEWORK:CELL:SEED and print JSON.")


def run_rnnbench(cell: str, seed: int, epochs: int) -> list[dict]:
  import tempfile  # pylint: disable=g-import-not-at-top
  from rnnbench.configs import default  # pylint: disable=g-import-not-at-top
  from rnnbench import train  # pylint: disable=g-import-not-at-top
  from rnnbench import workdir as layout  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.model.cell, config.seed, config.train.num_epochs = cell, seed, epochs
  config.train.progress = False
  with tempfile.TemporaryDirectory() as workdir:
    summary = train.train_and_evaluate(config, workdir)
    history = layout.read_jsonl(pathlib.Path(workdir) / layout.METRICS)
  history[-1]["test_accuracy"] = summary["test_accuracy"]
  return history


def run_keras(cell: str, seed: int, epochs: int) -> list[dict]:
  os.environ.setdefault("KERAS_BACKEND", "jax")
  import keras  # pylint: disable=g-import-not-at-top
  from rnnbench.configs import default  # pylint: disable=g-import-not-at-top
  from rnnbench import input_pipeline, keras_compat  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.data.validation_split = 0.0  # Keras splits it off itself, below
  data = input_pipeline.prepare(config)
  keras.utils.set_random_seed(seed)
  rnn = {"lstm": lambda: keras.layers.LSTM(
             50, return_sequences=True, recurrent_activation=keras_compat.keras2_hard_sigmoid),
         "gru": lambda: keras.layers.GRU(
             50, return_sequences=True, reset_after=False,
             recurrent_activation=keras_compat.keras2_hard_sigmoid)}[cell]
  model = keras.Sequential([
      keras.Input((config.data.maxlen,), dtype="int32"),
      keras.layers.Embedding(20000, 128), rnn(), keras.layers.GlobalMaxPool1D(),
      keras.layers.Dropout(0.5), keras.layers.Dense(50, activation="relu"),
      keras.layers.Dropout(0.5), keras.layers.Dense(20, activation="softmax")])
  model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
  labels = keras.utils.to_categorical(data.train.y, 20)
  fit = model.fit(data.train.x, labels, epochs=epochs, batch_size=32, validation_split=0.1,
                  verbose=2)
  history = [{"epoch": e + 1, **{k: float(v[e]) for k, v in fit.history.items()}}
             for e in range(epochs)]
  _, test_acc = model.evaluate(data.test.x, keras.utils.to_categorical(data.test.y, 20),
                               batch_size=256, verbose=0)
  history[-1]["test_accuracy"] = float(test_acc)
  return history


def _mean_std(values: list[float]) -> str:
  if len(values) == 1:
    return f"{values[0]:.3f}"
  return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(runs: list[dict]) -> str:
  lines = ["| framework | cell | seeds | val_acc epoch 1 | val_acc epoch 2 | test_acc |",
           "|---|---|---|---|---|---|"]
  groups = {}
  for r in runs:
    groups.setdefault((r["framework"], r["cell"]), []).append(r["history"])
  for (fw, cell), hists in sorted(groups.items()):
    cols = [_mean_std([h[e]["val_accuracy"] for h in hists]) if len(hists[0]) > e else "-"
            for e in range(2)]
    test = _mean_std([h[-1]["test_accuracy"] for h in hists])
    lines.append(f"| {fw} | {cell} | {len(hists)} | {cols[0]} | {cols[1]} | {test} |")
  return "\n".join(lines)


def main(argv):
  del argv
  if _ONE.value:
    framework, cell, seed = _ONE.value.split(":")
    fn = {"rnnbench": run_rnnbench, "keras": run_keras}[framework]
    print("RESULT " + json.dumps(fn(cell, int(seed), _EPOCHS.value)), flush=True)
    return
  runs = []
  for seed in _SEEDS.value:
    for cell in _CELLS.value:
      for framework in _FRAMEWORKS.value:
        proc = subprocess.run(
            [sys.executable, __file__, f"--one={framework}:{cell}:{seed}",
             f"--epochs={_EPOCHS.value}"], capture_output=True, text=True, cwd=ROOT)
        result = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not result:
          raise RuntimeError(f"{framework} {cell} seed {seed} failed:\n{proc.stderr[-3000:]}")
        history = json.loads(result[-1][len("RESULT "):])
        runs.append({"framework": framework, "cell": cell, "seed": int(seed),
                     "history": history})
        print(f"{framework:9s} {cell:5s} seed {seed}: " + ", ".join(
            f"val_acc{h['epoch']}={h['val_accuracy']:.4f}" for h in history), flush=True)
  print(table(runs))
  if _JSON.value:
    pathlib.Path(_JSON.value).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(_JSON.value).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
  app.run(main)
