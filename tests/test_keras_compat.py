"""Parity with Keras 3 (JAX backend): RNN outputs, probabilities and loss gradients."""

import collections
import os
import re
import tarfile

os.environ["KERAS_BACKEND"] = "jax"

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp
import keras
import ml_collections
import numpy as np
import pytest

from rnnbench.configs import default
from rnnbench import cells
from rnnbench import keras_compat
from rnnbench import models
from rnnbench import optim

if keras.backend.backend() != "jax":
  pytest.skip("keras was imported with another backend", allow_module_level=True)

TOL = 1e-5
BATCH, MAXLEN, NUM_WORDS, NUM_CLASSES = 8, 100, 20000, 20
ARCHS = [("lstm", False), ("gru", False), ("gru", True)]  # (cell, reset_after)
GATES = ["sigmoid", "hard_sigmoid"]
ERRORS: dict[str, dict[str, float]] = {}  # case -> {outputs, probs, grads}: max abs diff


def _news_docs(archive, subset: str = "test") -> list[tuple[str, str]]:
  """(newsgroup, text) of every document of one subset of the 20news-bydate archive."""
  docs = []
  with tarfile.open(archive) as tar:
    for member in tar:
      parts = member.name.split("/")
      if member.isfile() and len(parts) == 3 and parts[0] == f"20news-bydate-{subset}":
        docs.append((parts[1], tar.extractfile(member).read().decode("latin-1")))
  return docs


@pytest.fixture(scope="module")
def news_batch(news_archive):
  """Real test documents of 8 groups, quickly tokenized: ids < 20000, pre-padded to 100."""
  docs = _news_docs(news_archive)
  words = lambda text: re.findall(r"[a-z0-9']+", text.lower())
  counts = collections.Counter(w for _, text in docs for w in words(text))
  vocab = {w: i + 1 for i, (w, _) in enumerate(counts.most_common(NUM_WORDS - 1))}
  groups = sorted({g for g, _ in docs})
  first, shortest = {}, {}
  for group, text in docs:
    first.setdefault(group, text)
    if len(text) < len(shortest.get(group, text + " ")):
      shortest[group] = text
  tokens = np.zeros((BATCH, MAXLEN), np.int32)
  labels = np.zeros((BATCH,), np.int32)
  for row, group in enumerate(groups[::2][:BATCH]):
    text = (shortest if row % 2 else first)[group]  # padded and truncated rows
    ids = [vocab[w] for w in words(text) if w in vocab][-MAXLEN:]  # truncate 'pre'
    tokens[row, MAXLEN - len(ids):] = ids                                 # pad 'pre'
    labels[row] = groups.index(group)
  assert (tokens == 0).any() and tokens.max() < NUM_WORDS
  return tokens, labels


def _config(cell: str, reset_after: bool, gate: str) -> ml_collections.ConfigDict:
  config = default.get_config()
  config.model.cell, config.model.reset_after = cell, reset_after
  config.model.recurrent_activation = gate
  return config


def _keras_model(cell: str, reset_after: bool, gate: str) -> keras.Model:
  """The notebook's model in Keras, Keras-initialised (functional, as the notebook)."""
  keras.utils.set_random_seed(0)
  activation = {"sigmoid": "sigmoid", "hard_sigmoid": keras_compat.keras2_hard_sigmoid}[gate]
  inputs = keras.Input(shape=(MAXLEN,), dtype="int32")
  x = keras.layers.Embedding(NUM_WORDS, 128)(inputs)
  if cell == "lstm":
    x = keras.layers.LSTM(50, return_sequences=True, recurrent_activation=activation)(x)
  else:
    x = keras.layers.GRU(50, return_sequences=True, recurrent_activation=activation,
                         reset_after=reset_after)(x)
  x = keras.layers.GlobalMaxPooling1D()(x)
  x = keras.layers.Dropout(0.5)(x)
  x = keras.layers.Dense(50, activation="relu")(x)
  x = keras.layers.Dropout(0.5)(x)
  return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, activation="softmax")(x))


def _random_params(config: ml_collections.ConfigDict, seed: int = 1):
  """Random normal weights, scaled so gate pre-activations are O(1): some clip, most don't."""
  shapes = models.param_shapes(config, NUM_CLASSES)
  scale = {"embeddings": 0.5, "bias": 0.3}
  leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  values = []
  for key, (path, s) in zip(keys, leaves):
    name = path[-1].key
    std = scale.get(name, 1.5 / np.sqrt(s.shape[0]))
    values.append(std * jax.random.normal(key, s.shape, s.dtype))
  return jax.tree_util.tree_unflatten(treedef, values)


def _keras_forward(keras_model, tokens, labels):
  """Keras' RNN outputs, probabilities and the gradient of the mean loss per param path."""
  layers = [l for l in keras_model.layers if not isinstance(l, keras.layers.InputLayer)]
  rnn_out = np.asarray(layers[1](layers[0](tokens)))
  trainable = keras_model.trainable_variables
  non_trainable = [v.value for v in keras_model.non_trainable_variables]  # dropout seeds
  onehot = jax.nn.one_hot(labels, NUM_CLASSES)

  @jax.jit
  def loss_and_probs(values):
    probs, _ = keras_model.stateless_call(values, non_trainable, tokens, training=False)
    return jnp.mean(keras.losses.categorical_crossentropy(onehot, probs)), probs

  grads, probs = jax.grad(loss_and_probs, has_aux=True)([v.value for v in trainable])
  by_path = {v.path: g for v, g in zip(trainable, grads)}
  grad_tree = collections.defaultdict(dict)
  for (module, name), variable in keras_compat.variable_paths(keras_model):
    grad_tree[module][name] = by_path[variable.path]
  return rnn_out, np.asarray(probs), dict(grad_tree)


def _flax_forward(config, params, tokens, labels):
  """rnnbench's RNN outputs, probabilities and loss gradients, in one jitted call."""
  model = models.create_model(config, NUM_CLASSES)
  cell = cells.create(config.model)

  def loss(p):
    logits = model.apply({"params": p}, tokens, return_logits=True)
    return jnp.mean(optim.keras_categorical_crossentropy(logits, labels))

  @jax.jit
  def forward(p):
    emb = jnp.take(p["embedding"]["embeddings"], tokens, axis=0)
    rnn_out = cell.apply({"params": p["rnn"]}, emb)
    return rnn_out, model.apply({"params": p}, tokens), jax.grad(loss)(p)

  return forward(params)


def _max_diff(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("weights", ["keras_init", "random_normal"])
@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("cell,reset_after", ARCHS)
def test_parity(cell, reset_after, gate, weights, news_batch):
  tokens, labels = news_batch
  config = _config(cell, reset_after, gate)
  keras_model = _keras_model(cell, reset_after, gate)
  if weights == "keras_init":
    got_config, params = keras_compat.from_keras(keras_model)
    for field in ("cell", "recurrent_activation", "hidden_size", "embed_dim", "dense_size"):
      assert got_config.model[field] == config.model[field]
    assert got_config.model.reset_after == reset_after or cell == "lstm"
  else:
    params = _random_params(config)
    keras_model = keras_compat.to_keras(config, params)
  expected = _keras_forward(keras_model, tokens, labels)
  got = _flax_forward(config, params, tokens, labels)
  assert jax.tree.structure(got[2]) == jax.tree.structure(expected[2])
  errors = dict(zip(("outputs", "probs", "grads"), map(_max_diff, got, expected)))
  case = f"{cell} reset_after={reset_after} {gate} {weights}"
  ERRORS[case] = errors
  print(f"\nparity {case}: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
  assert max(errors.values()) <= TOL, errors
  assert np.abs(np.asarray(expected[2]["embedding"]["embeddings"])).max() > 0


@pytest.fixture(scope="module")
def pipeline_batch(news_archive):
  """8 test documents through rnnbench's own fetch + Tokenizer + pad_sequences, if present."""
  try:
    from rnnbench import tokenizer  # pylint: disable=g-import-not-at-top
    try:
      from rnnbench.data import fetch_20newsgroups  # pylint: disable=g-import-not-at-top
    except ImportError:
      from rnnbench.data.newsgroups import fetch_20newsgroups  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    pytest.skip(f"rnnbench's data / tokenizer modules are not there yet: {e}")
  test = fetch_20newsgroups("test", archive=news_archive)
  tok = tokenizer.Tokenizer(num_words=NUM_WORDS)
  tok.fit_on_texts(test.data[:2000])
  tokens = tokenizer.pad_sequences(tok.texts_to_sequences(test.data[:BATCH]), maxlen=MAXLEN,
                                   padding="pre", truncating="pre")
  return np.asarray(tokens, np.int32), np.asarray(test.target[:BATCH], np.int32)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_parity_notebook_pipeline(cell, pipeline_batch):
  """The notebook's two models (hard sigmoid, GRU reset_after=False) on its own inputs."""
  tokens, labels = pipeline_batch
  config = _config(cell, False, "hard_sigmoid")
  params = _random_params(config, seed=2)
  keras_model = keras_compat.to_keras(config, params)
  got = _flax_forward(config, params, tokens, labels)
  errors = dict(zip(("outputs", "probs", "grads"),
                    map(_max_diff, got, _keras_forward(keras_model, tokens, labels))))
  print(f"\nparity {cell} notebook pipeline: "
        + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
  assert max(errors.values()) <= TOL, errors


def test_round_trip_and_param_counts():
  """to_keras(from_keras(m)) has the same weights; Keras counts params as models does."""
  config = _config("gru", False, "hard_sigmoid")
  keras_model = _keras_model("gru", False, "hard_sigmoid")
  assert keras_model.count_params() == 2_590_420
  got_config, params = keras_compat.from_keras(keras_model)
  assert got_config.data.num_words == NUM_WORDS and got_config.data.maxlen == MAXLEN
  back = keras_compat.to_keras(got_config, params)
  for a, b in zip(keras_model.get_weights(), back.get_weights()):
    np.testing.assert_array_equal(a, b)
  shapes = models.param_shapes(config, NUM_CLASSES)
  assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(np.shape, params)


def _small(rnn_layer=None, activation="softmax", extra=()):
  layers = [keras.Input(shape=(5,)), keras.layers.Embedding(30, 4),
            rnn_layer or keras.layers.LSTM(3, return_sequences=True),
            keras.layers.GlobalMaxPooling1D(), keras.layers.Dropout(0.5),
            keras.layers.Dense(3, activation="relu"), keras.layers.Dropout(0.5),
            keras.layers.Dense(2, activation=activation), *extra]
  return keras.Sequential(layers)


@pytest.mark.parametrize("model_fn,match", [
    (lambda: _small(keras.layers.LSTM(3, return_sequences=True,
                                      recurrent_activation="hard_sigmoid")), "relu6"),
    (lambda: _small(keras.layers.GRU(3, return_sequences=True, go_backwards=True)),
     "go_backwards"),
    (lambda: _small(keras.layers.SimpleRNN(3, return_sequences=True)), "SimpleRNN"),
    (lambda: _small(activation="linear"), "softmax"),
    (lambda: _small(extra=[keras.layers.Dense(2)]), "got layers"),
    (lambda: _small(keras.layers.LSTM(3, return_sequences=True, dropout=0.1)), "dropout"),
])
def test_unsupported_models_raise(model_fn, match):
  with pytest.raises(keras_compat.UnsupportedKerasModel, match=match):
    keras_compat.from_keras(model_fn())


def test_small_sequential_reads():
  config, params = keras_compat.from_keras(_small())
  assert (config.model.cell, config.model.hidden_size, config.data.num_words) == ("lstm", 3, 30)
  assert config.model.recurrent_activation == "sigmoid"  # Keras 3's default
  assert params["rnn"]["kernel"].shape == (4, 12)


def test_keras2_hard_sigmoid():
  x = np.linspace(-4, 4, 17).astype(np.float32)
  np.testing.assert_allclose(np.asarray(keras_compat.keras2_hard_sigmoid(x)),
                             np.clip(0.2 * x + 0.5, 0, 1), atol=1e-7)


# --------------------------------------------------------------------------- model options
# Small models (vocabulary 60, embeddings 8, 6 units, 12 steps) with the rnnbench options
# against the same weights in Keras: Embedding(mask_zero=True), stacked and Bidirectional
# layers, GlobalAveragePooling1D and return_sequences=False.

OPTION_ARCHS = [("lstm", False, "hard_sigmoid"), ("gru", True, "sigmoid")]
# (valid tokens, padding) per row: a full row, padded rows, a lone token, both paddings.
ROWS = ((12, "pre"), (7, "pre"), (1, "pre"), (3, "post"), (9, "post"), (1, "post"))
SMALL_WORDS, SMALL_LEN = 60, 12


def _option_config(cell: str, reset_after: bool, gate: str, **model):
  config = _config(cell, reset_after, gate)
  config.data.num_words, config.data.maxlen = SMALL_WORDS, SMALL_LEN
  config.model.update(embed_dim=8, hidden_size=6, dense_size=5, **model)
  return config


def _option_tokens() -> tuple[np.ndarray, np.ndarray]:
  """ROWS of random ids in 1..59, padded with 0 'pre' or 'post'; random labels."""
  rng = np.random.default_rng(0)
  tokens = np.zeros((len(ROWS), SMALL_LEN), np.int32)
  for row, (n, padding) in enumerate(ROWS):
    ids = rng.integers(1, SMALL_WORDS, n)
    if padding == "pre":
      tokens[row, SMALL_LEN - n:] = ids
    else:
      tokens[row, :n] = ids
  return tokens, rng.integers(0, NUM_CLASSES, len(ROWS)).astype(np.int32)


def _keras_rnn_outputs(keras_model, tokens) -> np.ndarray:
  """The last recurrent layer's outputs, the Embedding's mask propagated as in the model."""
  rnns = keras_compat._parts(keras_model).rnns  # pylint: disable=protected-access
  return np.asarray(keras.Model(keras_model.inputs[0], rnns[-1].output)(tokens))


def _keras_grads(keras_model, tokens, labels):
  """Keras' probabilities and mean-loss gradients, as a tree shaped like rnnbench's params."""
  trainable = keras_model.trainable_variables
  non_trainable = [v.value for v in keras_model.non_trainable_variables]
  onehot = jax.nn.one_hot(labels, NUM_CLASSES)

  def loss(values):
    probs, _ = keras_model.stateless_call(values, non_trainable, tokens, training=False)
    return jnp.mean(keras.losses.categorical_crossentropy(onehot, probs)), probs

  grads, probs = jax.jit(jax.grad(loss, has_aux=True))([v.value for v in trainable])
  by_path = {v.path: g for v, g in zip(trainable, grads)}
  tree = {}
  for path, variable in keras_compat.variable_paths(keras_model):
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = by_path[variable.path]
  return np.asarray(probs), tree


def _flax_grads(model, params, tokens, labels):
  def loss(p):
    logits = model.apply({"params": p}, tokens, return_logits=True)
    return jnp.mean(optim.keras_categorical_crossentropy(logits, labels))

  return jax.jit(lambda p: (model.apply({"params": p}, tokens), jax.grad(loss)(p)))(params)


def _record(case: str, errors: dict[str, float]) -> None:
  ERRORS[case] = errors
  print(f"\nparity {case}: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
  assert max(errors.values()) <= TOL, errors


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell,reset_after,gate", OPTION_ARCHS)
def test_parity_masked(cell, reset_after, gate, bidirectional):
  """mask_padding == Keras' mask_zero on 'pre' and 'post' padded rows: the RNN outputs at
  the valid steps of two stacked layers, and the probabilities with mean
  (GlobalAveragePooling1D) and, bidirectional, last (return_sequences=False; the backward
  half ends at the first valid step) and max (MaskedGlobalMaxPooling1D) pooling."""
  tokens, _ = _option_tokens()
  valid = tokens != 0
  poolings = ("mean", "last", "max") if bidirectional else ("mean",)
  configs = {p: _option_config(cell, reset_after, gate, num_layers=2, mask_padding=True,
                               bidirectional=bidirectional, pooling=p) for p in poolings}
  params = _random_params(configs["mean"])  # the same weights for every pooling
  flax_models = {p: models.create_model(c, NUM_CLASSES) for p, c in configs.items()}

  def forward(p):
    probs = {k: m.apply({"params": p}, tokens) for k, m in flax_models.items()}
    return probs, flax_models["mean"].apply({"params": p}, tokens, method="rnn_outputs")

  probs, outputs = jax.jit(forward)(params)
  errors = {}
  for pooling, config in configs.items():
    keras_model = keras_compat.to_keras(config, params)
    errors[f"probs_{pooling}"] = _max_diff(probs[pooling], keras_model(tokens, training=False))
    if pooling == "mean":
      want = _keras_rnn_outputs(keras_model, tokens)
      errors["outputs"] = _max_diff(np.asarray(outputs)[valid], want[valid])
      if bidirectional:  # Keras zeroes the padding steps (zero_output_for_mask), as here
        errors["outputs_padding"] = _max_diff(outputs, want)
  _record(f"masked {cell} {'bi' if bidirectional else 'uni'}", errors)


@pytest.mark.parametrize("options", [
    dict(num_layers=2, bidirectional=True, pooling="last"),
    dict(num_layers=2, bidirectional=True, mask_padding=True, pooling="mean"),
], ids=["bi2-last", "bi2-masked-mean"])
def test_parity_options_gradients(options):
  """Probabilities and loss gradients of every param (nested for Bidirectional) vs Keras."""
  tokens, labels = _option_tokens()
  config = _option_config("lstm", False, "hard_sigmoid", **options)
  params = _random_params(config, seed=3)
  keras_model = keras_compat.to_keras(config, params)
  expected = _keras_grads(keras_model, tokens, labels)
  got = _flax_grads(models.create_model(config, NUM_CLASSES), params, tokens, labels)
  assert jax.tree.structure(got[1]) == jax.tree.structure(expected[1])
  _record(f"gradients lstm {options}", {"probs": _max_diff(got[0], expected[0]),
                                        "grads": _max_diff(got[1], expected[1])})


def test_round_trip_options():
  """A Keras-built stacked Bidirectional model -> from_keras -> to_keras, weights kept."""
  keras.utils.set_random_seed(0)
  inputs = keras.Input(shape=(SMALL_LEN,), dtype="int32")
  x = keras.layers.Embedding(SMALL_WORDS, 8, mask_zero=True)(inputs)
  x = keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True))(x)
  x = keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True))(x)
  x = keras.layers.GlobalAveragePooling1D()(x)
  x = keras.layers.Dense(5, activation="relu")(keras.layers.Dropout(0.2)(x))
  outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Dropout(0.2)(x))
  keras_model = keras.Model(inputs, outputs)
  config, params = keras_compat.from_keras(keras_model)
  m = config.model
  assert (m.cell, m.reset_after, m.num_layers, m.bidirectional, m.mask_padding, m.pooling) == (
      "gru", True, 2, True, True, "mean")
  assert set(params["rnn_1"]) == {"forward", "backward"}
  shapes = models.param_shapes(config, num_classes=3)
  assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(np.shape, params)
  assert keras_model.count_params() == models.param_count(config, num_classes=3)
  back = keras_compat.to_keras(config, params)
  for a, b in zip(keras_model.get_weights(), back.get_weights()):
    np.testing.assert_array_equal(a, b)
  again, _ = keras_compat.from_keras(back)
  assert again.model.to_dict() == config.model.to_dict()


def _stack(*rnns, pool=None, mask_zero=False):
  pool = pool if pool is not None else keras.layers.GlobalAveragePooling1D()
  return keras.Sequential([
      keras.Input(shape=(5,)), keras.layers.Embedding(30, 4, mask_zero=mask_zero), *rnns,
      *([pool] if pool != "none" else []), keras.layers.Dropout(0.5),
      keras.layers.Dense(3, activation="relu"), keras.layers.Dropout(0.5),
      keras.layers.Dense(2, activation="softmax")])


_SEQ = dict(return_sequences=True)


@pytest.mark.parametrize("model_fn,match", [
    (lambda: _stack(keras.layers.LSTM(3, **_SEQ), pool=keras.layers.GlobalMaxPooling1D(),
                    mask_zero=True), "ignores the mask"),
    (lambda: _stack(keras.layers.Bidirectional(keras.layers.LSTM(3, **_SEQ),
                                               merge_mode="sum")), "merge_mode"),
    (lambda: _stack(keras.layers.LSTM(3, **_SEQ), keras.layers.GRU(3, **_SEQ)),
     "share one cell type"),
    (lambda: _stack(keras.layers.LSTM(3, **_SEQ), keras.layers.LSTM(4, **_SEQ)),
     "share one cell type"),
    (lambda: _stack(keras.layers.Bidirectional(
        keras.layers.LSTM(3, go_backwards=True, **_SEQ),
        backward_layer=keras.layers.LSTM(3, **_SEQ))), "go_backwards"),
    (lambda: _stack(keras.layers.LSTM(3, **_SEQ), pool="none"), "return_sequences"),
    (lambda: _stack(keras.layers.Bidirectional(keras.layers.SimpleRNN(3, **_SEQ))),
     "SimpleRNN"),
    (lambda: _stack(keras.layers.Bidirectional(keras.layers.LSTM(3, **_SEQ)),
                    keras.layers.LSTM(3, **_SEQ)), "every recurrent layer is Bidirectional"),
])
def test_unsupported_options_raise(model_fn, match):
  with pytest.raises(keras_compat.UnsupportedKerasModel, match=match):
    keras_compat.from_keras(model_fn())


def test_to_keras_options_errors():
  config = _option_config("lstm", False, "sigmoid", pooling="median")
  with pytest.raises(ValueError, match="'max', 'mean', 'last'"):
    keras_compat.to_keras(config, _random_params(_option_config("lstm", False, "sigmoid")))
  config = _option_config("mingru", False, "sigmoid")
  with pytest.raises(ValueError, match="'lstm' and 'gru'"):
    keras_compat.to_keras(config, {})
