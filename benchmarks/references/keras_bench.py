"""The notebook's classifier in Keras 3, timed like ``python -m rnnbench.bench`` (mode train).

``model.train_on_batch`` (what ``model.fit`` runs per batch) on the TensorFlow or JAX
backend, with the model ``model.compile`` builds by default::

    python benchmarks/references/keras_bench.py --backend=tensorflow --config=configs/gru.py
    python benchmarks/references/keras_bench.py --backend=jax --config=configs/lstm.py

Same cell math as rnnbench: Keras 2's hard sigmoid gates (rnnbench.keras_compat's
keras2_hard_sigmoid) or sigmoid and GRU reset_after, as the config says.
"""

from __future__ import annotations

import argparse
import os

import common  # the sibling module: a script's folder is first on sys.path
from rnnbench import runinfo

MODES = ("train",)


def build_model(config, num_classes: int):
  """The notebook's Sequential model, compiled with Adam and the sparse cross-entropy."""
  import keras  # pylint: disable=g-import-not-at-top
  from rnnbench import keras_compat  # pylint: disable=g-import-not-at-top
  m = config.model
  gate = {"sigmoid": "sigmoid",
          "hard_sigmoid": keras_compat.keras2_hard_sigmoid}[m.recurrent_activation]
  kwargs = dict(return_sequences=True, recurrent_activation=gate)
  rnn = (keras.layers.GRU(m.hidden_size, reset_after=bool(m.reset_after), **kwargs)
         if m.cell == "gru" else keras.layers.LSTM(m.hidden_size, **kwargs))
  model = keras.Sequential([
      keras.Input(shape=(config.data.maxlen,), dtype="int32"),
      keras.layers.Embedding(config.data.num_words, m.embed_dim, name="embedding"),
      rnn,
      keras.layers.GlobalMaxPooling1D(),
      keras.layers.Dropout(m.dropout),
      keras.layers.Dense(m.dense_size, activation="relu", name="dense_1"),
      keras.layers.Dropout(m.dropout),
      keras.layers.Dense(num_classes, activation="softmax", name="dense_2"),
  ])
  optimizer = keras.optimizers.Adam(learning_rate=config.train.learning_rate)
  model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
  return model


def _environment(keras, backend: str) -> dict:
  framework = {"keras": keras.__version__, "keras_backend": backend}
  if backend == "tensorflow":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    gpus = tf.config.list_physical_devices("GPU")
    framework.update(tensorflow=tf.__version__, backend="gpu" if gpus else "cpu",
                     device_kind="gpu" if gpus else "cpu", device_count=max(len(gpus), 1))
  else:
    import jax  # pylint: disable=g-import-not-at-top
    framework.update(jax=jax.__version__, backend=jax.default_backend(),
                     device_kind=jax.devices()[0].device_kind, device_count=jax.device_count())
  return framework


def _device_peak_memory(backend: str) -> dict | None:
  """The accelerator's peak bytes in use; None on CPU (the report then takes peak RSS)."""
  if backend == "tensorflow":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if tf.config.list_physical_devices("GPU"):
      return {"bytes": int(tf.config.experimental.get_memory_info("GPU:0")["peak"]),
              "source": "tf_gpu_peak"}
    return None
  import jax  # pylint: disable=g-import-not-at-top
  stats = jax.devices()[0].memory_stats()
  if stats and "peak_bytes_in_use" in stats:
    return {"bytes": int(stats["peak_bytes_in_use"]), "source": "device_peak_bytes_in_use"}
  return None


def main() -> None:
  def extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="tensorflow", choices=("tensorflow", "jax"))
  args = common.parse_args(__doc__.splitlines()[0], MODES, extra)
  os.environ["KERAS_BACKEND"] = args.backend
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import keras  # pylint: disable=g-import-not-at-top
  if keras.backend.backend() != args.backend:
    raise SystemExit(f"keras picked backend {keras.backend.backend()!r}, not {args.backend!r}")
  config = common.load_config(args)
  keras.utils.set_random_seed(args.seed)
  x, y = common.synthetic_batch(config.train.batch_size, config.data.maxlen,
                                config.data.num_words, args.num_classes, args.seed,
                                tokens=args.tokens)
  results = []
  notes = []
  params = None
  try:
    model = build_model(config, args.num_classes)
    params = {layer.name: int(layer.count_params()) for layer in model.layers
              if layer.count_params()}
    params = {"embedding": params.pop("embedding"), "rnn": params.pop(model.layers[1].name),
              **params}
    params["total"] = int(model.count_params())
    # train_on_batch returns the logs as numpy: each step is finished when it returns.
    step = lambda: model.train_on_batch(x, y)
    first, times = common.time_calls(step, args.steps, args.warmup)
    notes.append(f"model.train_on_batch, jit_compile={model.jit_compile}")
    peak = _device_peak_memory(args.backend)
    results.append(common.record(
        config, "train", first_call_s=first, times=times, num_classes=args.num_classes,
        params=params, peak_memory=peak, notes=notes, steps=args.steps, warmup=args.warmup))
  except Exception as e:  # pylint: disable=broad-except
    results.append(common.record(config, "train", error=runinfo.error_text(e), notes=notes))
  tool = f"keras-{args.backend}"
  env = runinfo.environment(**_environment(keras, args.backend))
  common.finish(common.report(tool, config, args, env, results), args.json)


if __name__ == "__main__":
  main()
