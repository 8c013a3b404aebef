"""The whole config checked once, up front, before any data is read or any file written.

``validate(config)`` checks every field of configs/default.py that the code reads: its type,
its range or its choices, and raises one ``ConfigError`` whose one-line message names the
field, the bad value and the fix (``--config.<field>=<a good value>``). Fields a config does
not have are left to their defaults; fields it adds are not checked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rnnbench import optim
from rnnbench import scan


class ConfigError(ValueError):
  """A config field with a bad type, range or choice; the message is one line with the fix."""


@dataclasses.dataclass(frozen=True)
class Rule:
  """What one field must be: ``kind`` ('int', 'float', 'bool', 'str'), a range or choices."""
  kind: str
  low: float | None = None
  high: float | None = None      # exclusive for floats ("< high"), inclusive for ints
  choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None
  example: Any = None
  also: Sequence[Any] = ()        # other accepted values (e.g. model.unroll 'auto')
  noun: str = ""                  # choices from a registry: "unknown <noun> ...; registered"

  def options(self) -> Sequence[Any] | None:
    return self.choices() if callable(self.choices) else self.choices


def _cells() -> list[str]:
  from rnnbench import cells  # pylint: disable=g-import-not-at-top
  return cells.names()


def _activations() -> list[str]:
  from rnnbench import activations  # pylint: disable=g-import-not-at-top
  return activations.names()


def _int(low=None, high=None, example=None, also=()) -> Rule:
  return Rule("int", low=low, high=high, example=example, also=also)


def _float(low=None, high=None, example=None) -> Rule:
  return Rule("float", low=low, high=high, example=example)


def _choice(*choices, example=None) -> Rule:
  return Rule("str", choices=choices, example=example if example is not None else choices[0])


_BOOL = Rule("bool", example=True)
_STR = Rule("str", example="")

RULES: dict[str, Rule] = {
    "seed": _int(0, example=0),
    "data.name": Rule("str", example="20newsgroups"),
    "data.archive": _STR,
    "data.data_home": _STR,
    "data.num_words": _int(2, example=20000),
    "data.maxlen": _int(1, example=100),
    "data.padding": _choice("pre", "post"),
    "data.truncating": _choice("pre", "post"),
    "data.filters": _STR,
    "data.lower": _BOOL,
    "data.cache": _BOOL,
    "data.validation_split": _float(0.0, 1.0, example=0.1),
    "data.max_train_docs": _int(0, example=0),
    "data.max_test_docs": _int(0, example=0),
    "data.max_val_docs": _int(0, example=0),
    "data.synthetic.num_train": _int(1, example=2000),
    "data.synthetic.num_test": _int(0, example=500),
    "data.synthetic.num_classes": _int(2, example=20),
    "data.synthetic.vocab_size": _int(2, example=5000),
    "data.synthetic.doc_len": _int(1, example=120),
    "data.listops.num_train": _int(1, example=96000),
    "data.listops.num_test": _int(0, example=2000),
    "data.listops.min_length": _int(1, example=500),
    "data.listops.max_length": _int(1, example=2000),
    "data.listops.max_depth": _int(1, example=10),
    "data.listops.max_args": _int(2, example=10),
    "data.recall.num_train": _int(1, example=20000),
    "data.recall.num_test": _int(0, example=2000),
    "data.recall.num_keys": _int(1, example=64),
    "data.recall.num_values": _int(2, example=16),
    "data.recall.num_pairs": _int(1, example=32),
    "data.delay.num_train": _int(1, example=20000),
    "data.delay.num_test": _int(0, example=2000),
    "data.delay.num_classes": _int(2, example=8),
    "data.delay.length": _int(1, example=1000),
    "data.delay.vocab_size": _int(1, example=64),
    "data.tfds.train_split": Rule("str", example="train"),
    "data.tfds.test_split": _STR,
    "data.tfds.val_split": _STR,
    "data.tfds.text_key": Rule("str", example="text"),
    "data.tfds.label_key": Rule("str", example="label"),
    "data.tfds.data_dir": _STR,
    "data.tfds.download": _BOOL,
    "data.files.train": _STR,
    "data.files.test": _STR,
    "data.files.val": _STR,
    "data.files.text_column": Rule("str", example="text"),
    "data.files.label_column": Rule("str", example="label"),
    "data.files.delimiter": Rule("str", example=","),
    "data.files.encoding": Rule("str", example="utf-8"),
    "model.cell": Rule("str", choices=_cells, example="lstm", noun="cell"),
    "model.embed_dim": _int(1, example=128),
    "model.hidden_size": _int(1, example=50),
    "model.dense_size": _int(1, example=50),
    "model.dropout": _float(0.0, 1.0, example=0.5),
    "model.num_layers": _int(1, example=1),
    "model.bidirectional": _BOOL,
    "model.mask_padding": _BOOL,
    "model.pooling": _choice("max", "mean", "last"),
    "model.block": _BOOL,
    "model.recurrent_activation": Rule("str", choices=_activations, example="hard_sigmoid"),
    "model.reset_after": _BOOL,
    "model.scan": _choice(*scan.SCAN_MODES),
    "model.unroll": _int(1, example=1, also=("auto",)),
    "model.impl": _choice(*scan.IMPLS),
    "model.log_space": _BOOL,
    "model.state_size": _int(0, example=0),
    "model.r_min": _float(0.0, 1.0, example=0.9),
    "model.r_max": _float(0.0, 1.0, example=0.999),
    "model.window": _int(1, example=2),
    "model.max_length": _int(0, example=0),
    "train.num_epochs": _int(1, example=2),
    "train.batch_size": _int(1, example=32),
    "train.eval_batch_size": _int(1, example=256),
    "train.learning_rate": _float(0.0, None, example=1e-3),
    "train.optimizer": _choice("keras_adam", "adam"),
    "train.schedule": _choice("constant", "warmup_cosine"),
    "train.warmup_steps": _int(0, example=0),
    "train.decay_steps": _int(0, example=0),
    "train.final_lr_fraction": _float(0.0, 1.0, example=0.0),
    "train.grad_clip": _float(0.0, float("inf"), example=1.0),
    "train.loss": _choice("keras", "log_softmax"),
    "train.progress": _BOOL,
    "train.log_every_steps": _int(0, example=50),
    "train.test_every_epoch": _BOOL,
    "train.tensorboard": _BOOL,
    "train.dtype": _choice(*optim.COMPUTE_DTYPES),
    "train.checkpoint_every_steps": _int(0, example=0),
    "train.keep_checkpoints": _int(1, example=2),
    "train.overwrite": _BOOL,
    "train.num_devices": _int(0, example=0),
    "train.shard_embedding": _BOOL,
    "dist.initialize": _BOOL,
    "dist.coordinator": _STR,
    "dist.num_processes": _int(0, example=0),
    "dist.process_id": _int(-1, example=-1),
}

_WHAT = {"int": "an integer", "float": "a number", "bool": "True or False", "str": "a string"}


def _lookup(config: Any, field: str) -> tuple[bool, Any]:
  node = config
  for part in field.split("."):
    if not isinstance(node, Mapping) and not hasattr(node, "keys"):
      return False, None
    if part not in node:
      return False, None
    node = node[part]
  return True, node


def _problem(rule: Rule, value: Any) -> str | None:
  """What is wrong with ``value`` under ``rule``; None if nothing."""
  if value in rule.also and not isinstance(value, bool):
    return None
  if rule.kind == "bool":
    return None if isinstance(value, bool) else "must be True or False"
  if rule.kind == "str":
    if not isinstance(value, str):
      return "must be a string"
    options = rule.options()
    if options is not None and value not in options:
      if rule.noun:
        return (f": unknown {rule.noun} {value!r}; registered {rule.noun}s: "
                f"{', '.join(options)}")
      return f"must be one of {', '.join(map(repr, options))}"
    return None
  if isinstance(value, bool) or not isinstance(value, (int, float) if rule.kind == "float"
                                               else int):
    return f"must be {_WHAT[rule.kind]}"
  if rule.kind == "float" and value != value:  # NaN
    return "must be a number, not NaN"
  bounds = []
  if rule.low is not None:
    bounds.append(f">= {rule.low}")
  if rule.high is not None:
    bounds.append(f"< {rule.high}" if rule.kind == "float" else f"<= {rule.high}")
  too_low = rule.low is not None and value < rule.low
  too_high = rule.high is not None and (value >= rule.high if rule.kind == "float"
                                        else value > rule.high)
  if rule.kind == "float" and rule.low == 0.0 and rule.high is None and value <= 0:
    return "must be > 0"
  if too_low or too_high:
    return f"must be {_WHAT[rule.kind]} {' and '.join(bounds)}"
  return None


def _fix(field: str, rule: Rule) -> str:
  example = rule.example
  if example is None and rule.options():
    example = rule.options()[0]
  if isinstance(example, str):
    return f"--config.{field}={example}" if example else f"--config.{field}=''"
  return f"--config.{field}={example}"


def validate(config: Any, where: str = "", fix: str | None = None) -> None:
  """Raises ConfigError for the first field of ``config`` with a bad type, range or choice.

  Args:
    config: a ConfigDict (or nested mapping) shaped like configs/default.py.
    where: prefixed to the message (e.g. "runs/x/config.json: ").
    fix: the fix to name instead of ``--config.<field>=...`` (a config read from a file).
  """
  if not isinstance(config, Mapping) and not hasattr(config, "keys"):
    raise ConfigError(f"{where}the config is a {type(config).__name__}, not a mapping of "
                      "sections (data, model, train)")
  for section in ("data", "model", "train"):
    if section not in config or not hasattr(config[section], "keys"):
      raise ConfigError(f"{where}the config has no {section!r} section; start from "
                        "configs/default.py")
  for field, rule in RULES.items():
    present, value = _lookup(config, field)
    if not present:
      continue
    problem = _problem(rule, value)
    if problem:
      sep = "" if problem.startswith(":") else " "
      raise ConfigError(f"{where}config.{field}={value!r}{sep}{problem}; "
                        f"{fix or 'pass e.g. ' + _fix(field, rule)}")
  _check_together(config, where, fix)


def _check_together(config: Any, where: str, fix: str | None) -> None:
  """Rules across fields."""
  model = config["model"]
  if "r_min" in model and "r_max" in model and not model["r_min"] < model["r_max"]:
    raise ConfigError(f"{where}config.model.r_min={model['r_min']!r} must be below "
                      f"config.model.r_max={model['r_max']!r}; "
                      f"{fix or 'pass e.g. --config.model.r_min=0.9 --config.model.r_max=0.999'}")
  name = config["data"].get("name", "") if hasattr(config["data"], "get") else ""
  from rnnbench import data as data_lib  # pylint: disable=g-import-not-at-top
  family, colon, rest = str(name).partition(":")
  if family + colon not in data_lib.LOADERS or (colon and not rest):
    known = ", ".join(n + "<name>" if n.endswith(":") else n for n in sorted(data_lib.LOADERS))
    raise ConfigError(f"{where}config.data.name={name!r} is not a dataset (known: {known}); "
                      f"{fix or 'pass e.g. --config.data.name=synthetic'}")
