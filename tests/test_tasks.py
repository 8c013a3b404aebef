"""The generated long-range tasks, the task configs, the schedule, model.block and baselines.

Every ListOps, recall and delay label is recomputed here by a separate evaluator that reads
only the text (a recursive parser for ListOps), and the sizes, bounds and determinism the
configs ask for are checked.
"""

from __future__ import annotations

import copy
import importlib
import re
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnbench.configs import default
from rnnbench import baselines
from rnnbench import compare
from rnnbench import data as data_lib
from rnnbench import models
from rnnbench import optim
from rnnbench import sweep
from rnnbench import tokenizer as tokenizer_lib
from rnnbench import train
from rnnbench import validation
from rnnbench.data import longrange

OPS = {"[MAX": max, "[MIN": min, "[MED": lambda v: int(statistics.median(v)),
       "[SM": lambda v: sum(v) % 10}


def parse_listops(text: str) -> tuple[int, int, list[int]]:
  """-> (value, bracket depth, every operator's argument count), parsing the text alone."""
  tokens = text.split(" ")
  pos = 0
  arg_counts: list[int] = []

  def node(depth: int) -> tuple[int, int]:
    nonlocal pos
    token = tokens[pos]
    pos += 1
    if re.fullmatch(r"[0-9]", token):
      return int(token), depth
    assert token in OPS, token
    values, deepest = [], depth + 1
    while tokens[pos] != "]":
      value, d = node(depth + 1)
      values.append(value)
      deepest = max(deepest, d)
    pos += 1
    arg_counts.append(len(values))
    return OPS[token](values), deepest

  value, depth = node(0)
  assert pos == len(tokens), "tokens after the root expression"
  return value, depth, arg_counts


def _config(name: str, **fields):
  config = default.get_config()
  config.data.name = name
  config.data[name].update(fields)
  return config


def _data(name: str, **fields):
  return _config(name, **fields).data


LISTOPS = dict(num_train=300, num_test=60, min_length=8, max_length=80, max_depth=6,
               max_args=5)


def test_listops_labels_lengths_depth_and_args():
  data = data_lib.load(_data("listops", **LISTOPS), seed=3)
  assert data.label_names == [str(d) for d in range(10)]
  assert (len(data.train_texts), len(data.test_texts)) == (300, 60)
  counts = []
  for text, label in zip(data.train_texts + data.test_texts,
                         np.concatenate([data.train_labels, data.test_labels])):
    assert "  " not in text and text == text.strip() and "(" not in text
    value, depth, args = parse_listops(text)
    assert value == label
    assert 8 <= len(text.split(" ")) <= 80
    assert depth < LISTOPS["max_depth"]  # LRA: the root is depth 1, a digit at max_depth
    assert all(2 <= a <= 5 for a in args)
    counts.append(args)
  every = [a for c in counts for a in c]
  assert min(every) == 2 and max(every) == 5   # the whole argument range is drawn
  assert len(set(data.train_labels.tolist())) == 10
  ops = {t for text in data.train_texts for t in text.split(" ") if t.startswith("[")}
  assert ops == set(OPS)


def test_median_is_truncated():
  assert longrange.apply_operator("[MED", [1, 2]) == 1           # 1.5 -> 1
  assert longrange.apply_operator("[MED", [3, 9, 0, 4]) == 3     # 3.5 -> 3
  assert longrange.apply_operator("[SM", [9, 8, 7]) == 4
  with pytest.raises(ValueError, match="unknown ListOps operator"):
    longrange.apply_operator("[AVG", [1])


def test_recall_labels_and_distinct_keys():
  fields = dict(num_train=200, num_test=50, num_keys=12, num_values=5, num_pairs=7)
  data = data_lib.load(_data("recall", **fields), seed=1)
  assert data.label_names == [f"v{j}" for j in range(5)]
  for text, label in zip(data.train_texts + data.test_texts,
                         np.concatenate([data.train_labels, data.test_labels])):
    tokens = text.split(" ")
    assert len(tokens) == 2 * 7 + 2 and tokens[-2] == "?"
    keys, values = tokens[0:14:2], tokens[1:14:2]
    assert all(re.fullmatch(r"k([0-9]+)", k) and int(k[1:]) < 12 for k in keys)
    assert all(re.fullmatch(r"v([0-9]+)", v) and int(v[1:]) < 5 for v in values)
    assert len(set(keys)) == 7
    pairs = dict(zip(keys, values))
    assert pairs[tokens[-1]] == f"v{label}"


def test_delay_labels():
  fields = dict(num_train=100, num_test=20, num_classes=4, length=30, vocab_size=9)
  data = data_lib.load(_data("delay", **fields), seed=2)
  assert data.label_names == ["s0", "s1", "s2", "s3"]
  for text, label in zip(data.train_texts, data.train_labels):
    tokens = text.split(" ")
    assert len(tokens) == 30 and tokens[0] == f"s{label}"
    assert all(re.fullmatch(r"n[0-8]", t) for t in tokens[1:])


@pytest.mark.parametrize("name,fields", [
    ("listops", LISTOPS),
    ("recall", dict(num_train=80, num_test=20, num_keys=10, num_values=4, num_pairs=5)),
    ("delay", dict(num_train=80, num_test=20, num_classes=3, length=12, vocab_size=5))])
def test_deterministic_from_the_seed(name, fields):
  a = data_lib.load(_data(name, **fields), seed=0)
  b = data_lib.load(_data(name, **fields), seed=0)
  c = data_lib.load(_data(name, **fields), seed=1)
  assert a.train_texts == b.train_texts and a.test_texts == b.test_texts
  np.testing.assert_array_equal(a.train_labels, b.train_labels)
  assert a.train_texts != c.train_texts
  # Separate streams: more train examples leave the test split unchanged.
  more = data_lib.load(_data(name, **dict(fields, num_train=fields["num_train"] + 7)), seed=0)
  assert more.test_texts == a.test_texts and len(more.train_texts) == fields["num_train"] + 7


@pytest.mark.parametrize("name,fields,message", [
    ("recall", dict(num_pairs=20, num_keys=10), "num_pairs <= num_keys"),
    ("listops", dict(min_length=50, max_length=10), "min_length <= max_length"),
    ("listops", dict(min_length=400, max_length=500, max_depth=2, max_args=3), "widen"),
    ("delay", dict(num_classes=1), "num_classes >= 2"),
])
def test_bad_sizes_are_one_clear_error(name, fields, message):
  config = _config(name, num_train=5, num_test=5, **fields)
  with pytest.raises(ValueError, match=message):
    data_lib.load(config.data)


def test_tokenizer_keeps_the_tokens_with_no_filters():
  config = _config("listops", **LISTOPS)
  config.data.update(filters="", lower=False, num_words=32, maxlen=80)
  prepared = train.prepare_data(config)
  assert set(prepared.tokenizer.word_index) == set(OPS) | {"]"} | {str(d) for d in range(10)}
  # The notebook is unchanged: Keras' filters by default, which would split '[MAX' into 'max'.
  assert default.get_config().data.filters == tokenizer_lib.DEFAULT_FILTERS
  assert default.get_config().data.lower is True


# --------------------------------------------------------------------------- task configs

TASK_NAMES = compare.TASKS


@pytest.mark.parametrize("task", TASK_NAMES)
def test_task_configs_share_the_protocol(task):
  module = importlib.import_module(f"rnnbench.configs.tasks.{task}")
  config = module.get_config()
  assert (config.train.schedule, config.train.optimizer, config.train.grad_clip) == (
      "warmup_cosine", "adam", 1.0)
  assert config.train.warmup_steps > 0 and module.RNN_PARAM_BUDGET > 0
  for size in ("cpu", "quick"):
    c = module.get_config()
    sweep.apply_overrides(c, module.SIZES[size])  # every override names a real field
  if task in ("listops", "recall", "delay"):
    assert (config.data.filters, config.model.pooling) == ("", "last")


@pytest.mark.parametrize("task", TASK_NAMES)
def test_task_configs_pass_validation(task):
  module = importlib.import_module(f"rnnbench.configs.tasks.{task}")
  for size in ("full", "cpu", "quick"):
    config, _ = compare.run_config(task, "mingru+block", size, seed=0)
    validation.validate(config)


@pytest.mark.parametrize("field,value", [
    ("train.schedule", "cosine"), ("train.warmup_steps", -1), ("train.grad_clip", -1.0),
    ("data.recall.num_pairs", 0), ("data.listops.max_args", 1), ("model.block", "yes"),
    ("data.lower", 1), ("data.delay.num_classes", 1)])
def test_new_fields_are_validated(field, value):
  config = default.get_config()
  *parents, leaf = field.split(".")
  node = config
  for part in parents:
    node = node[part]
  with node.ignore_type():
    node[leaf] = value
  with pytest.raises(validation.ConfigError, match=re.escape(f"config.{field}={value!r}")):
    validation.validate(config)


def test_newsgroups_long():
  from rnnbench.configs.tasks import newsgroups_long  # pylint: disable=g-import-not-at-top
  config = newsgroups_long.get_config()
  assert config.data.maxlen >= 1000 and config.model.mask_padding
  assert (config.data.padding, config.data.truncating) == ("post", "post")


@pytest.mark.parametrize("task", ["listops", "recall", "delay"])
def test_generated_texts_fit_maxlen(task):
  """No generated text is cut: each config's maxlen holds its longest text, at every size."""
  module = importlib.import_module(f"rnnbench.configs.tasks.{task}")
  config = module.get_config()
  sweep.apply_overrides(config, module.SIZES["quick"])
  assert config.data.maxlen == _longest(config.data)
  full = module.get_config()
  assert full.data.maxlen == _longest(full.data)


def _longest(data_config) -> int:
  """The longest text a generated task's fields allow, in tokens."""
  f = data_config[data_config.name]
  if data_config.name == "listops":
    return f.max_length
  return 2 * f.num_pairs + 2 if data_config.name == "recall" else f.length


@pytest.mark.parametrize("cell", ["lstm", "gru", "mingru", "none", "mingru+block"])
def test_hidden_size_is_the_largest_within_the_budget(cell):
  config, overrides = compare.run_config("recall", cell, "quick", seed=0)
  budget = importlib.import_module("rnnbench.configs.tasks.recall").RNN_PARAM_BUDGET
  h = config.model.hidden_size
  assert models.rnn_param_count(config) <= budget
  bigger = copy.deepcopy(config)
  bigger.model.hidden_size = h + 1
  assert models.rnn_param_count(bigger) > budget or h == compare.MAX_HIDDEN
  assert (config.model.block, "+block" in cell) == (True, True) or not config.model.block
  created = sum(int(np.prod(s.shape)) for name, sub in models.param_shapes(config, 8).items()
                if name.startswith(("rnn", "block")) for s in jax.tree.leaves(sub))
  assert created == models.rnn_param_count(config)


def test_notebook_budget_is_the_notebooks_lstm():
  config, _ = compare.run_config("notebook", "lstm", "cpu", seed=0)
  assert config.model.hidden_size == 50 and models.rnn_param_count(config) == 35_800


# --------------------------------------------------------------------------- schedule, clipping


def test_warmup_cosine_schedule():
  cfg = dict(learning_rate=0.1, schedule="warmup_cosine", warmup_steps=10, decay_steps=0,
             final_lr_fraction=0.0)
  lr = optim.make_schedule(cfg, total_steps=110)
  assert float(lr(0)) == 0.0 and float(lr(5)) == pytest.approx(0.05)
  assert float(lr(10)) == pytest.approx(0.1)
  assert float(lr(60)) == pytest.approx(0.05, rel=1e-5)   # half-way down the cosine
  assert float(lr(110)) == pytest.approx(0.0, abs=1e-9)
  assert optim.make_schedule(dict(learning_rate=0.1)) == 0.1  # the default: constant
  with pytest.raises(ValueError, match="unknown train.schedule 'linear'"):
    optim.make_schedule(dict(learning_rate=0.1, schedule="linear"))


def test_default_optimizer_is_unchanged_and_clipping_clips():
  params = {"w": jnp.ones(3)}
  grads = {"w": jnp.array([300.0, -400.0, 0.0])}
  plain = optim.keras_adam(1e-3)
  tx = optim.make_optimizer(default.get_config().train)
  got, _ = tx.update(grads, tx.init(params), params)
  want, _ = plain.update(grads, plain.init(params), params)
  np.testing.assert_array_equal(got["w"], want["w"])
  clipped = optim.make_optimizer(dict(optimizer="adam", learning_rate=1.0, grad_clip=5.0))
  sgd_like = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(1.0))
  got, _ = clipped.update(grads, clipped.init(params), params)
  want, _ = sgd_like.update(grads, sgd_like.init(params), params)
  np.testing.assert_allclose(got["w"], want["w"])
  state = optax.clip_by_global_norm(5.0).init(params)
  norm = optax.tree.norm(optax.clip_by_global_norm(5.0).update(grads, state)[0])
  assert float(norm) == pytest.approx(5.0)
  with pytest.raises(ValueError, match="grad_clip must be >= 0"):
    optim.make_optimizer(dict(optimizer="adam", learning_rate=1.0, grad_clip=-1.0))


# --------------------------------------------------------------------------- model.block


def _block_config(**model):
  config = default.get_config()
  config.data.num_words = 50
  config.model.update(dict(dict(embed_dim=12, hidden_size=6, dense_size=5, dropout=0.0,
                                cell="mingru", block=True), **model))
  return config


def test_block_is_residual_layernorm_mlp():
  """The block's output equals the formula computed by hand from its params."""
  config = _block_config()
  model = models.create_model(config, num_classes=3)
  tokens = jnp.array([[3, 7, 1, 9, 4]])
  params = model.init(jax.random.key(0), tokens)["params"]
  assert models.param_count(config, 3) == sum(
      int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  got = model.apply({"params": params}, tokens, method="rnn_outputs")

  def layer_norm(x, p):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-6) * p["scale"] + p["bias"]

  b = params["block_0"]
  x = np.asarray(params["embedding"]["embeddings"])[np.asarray(tokens)]
  cell = models.cells.create(config.model)
  y = np.asarray(cell.apply({"params": params["rnn"]}, jnp.asarray(layer_norm(x, b["norm_1"]))))
  h = x @ b["skip"]["kernel"] + y
  hidden = np.asarray(jax.nn.gelu(layer_norm(h, b["norm_2"]) @ b["mlp_in"]["kernel"]
                                  + b["mlp_in"]["bias"]))
  h = h + hidden @ b["mlp_out"]["kernel"] + b["mlp_out"]["bias"]
  want = layer_norm(h, params["block_norm"])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_block_off_is_the_notebooks_param_tree():
  config = default.get_config()
  shapes = models.param_shapes(config)
  assert sorted(shapes) == ["dense_1", "dense_2", "embedding", "rnn"]
  config.model.update(block=True, num_layers=2, bidirectional=True)
  shapes = models.param_shapes(config)
  assert {"block_0", "block_1", "block_norm"} <= set(shapes)
  assert "skip" not in shapes["block_1"] and "skip" in shapes["block_0"]  # 128 -> 100 wide
  assert models.param_count(config) == sum(
      int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))
  assert "block_1 (Block: LayerNorm, MLP)" in models.summary(config)


@pytest.mark.parametrize("cell", ["gru", "mingru", "none"])
def test_block_trains_with_every_cell_and_masking(cell):
  config = _block_config(cell=cell, mask_padding=True)
  config.train.update(optimizer="adam", learning_rate=1e-2, batch_size=8)
  state = train.create_train_state(config, 3, jax.random.key(0))
  rng = np.random.default_rng(0)
  x = rng.integers(1, 50, (8, 7)).astype(np.int32)
  x[:, :2] = 0  # padding
  batch = (x, (x[:, -1] % 3).astype(np.int32), np.ones(8, np.float32))
  losses = []
  for _ in range(6):
    state, metrics = train.train_step(state, batch, train.zero_metrics(),
                                      loss_fn=optim.make_loss("log_softmax"))
    losses.append(float(metrics["loss"]))
  assert losses[-1] < losses[0], losses


# --------------------------------------------------------------------------- baselines


def test_tfidf_svm_sees_the_models_tokens():
  config, _ = compare.run_config("delay", "none", "quick", seed=0)
  out = baselines.tfidf_svm(config)
  # A bag of tokens holds the class token s<j> itself: delay is trivial for it.
  assert out["test_accuracy"] == 1.0 and out["num_test"] == 300
  config, _ = compare.run_config("recall", "none", "quick", seed=0)
  prepared = train.prepare_data(config)
  texts = prepared.tokenizer.sequences_to_texts([r[r != 0] for r in prepared.test.x])
  dataset = data_lib.load(config.data, seed=0)
  assert texts == dataset.test_texts  # the window and vocabulary hold every token
  out = baselines.tfidf_svm(config)
  assert out["features"] == len(prepared.tokenizer.word_index)
  assert 0.0 < out["test_accuracy"] < 1.0
