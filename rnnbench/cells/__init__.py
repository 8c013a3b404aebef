"""Recurrent cells, registered by name: a new cell is one new file in this folder.

Shape letters, as every signature in the cells and their helpers (``rnnbench.scan``,
``rnnbench.linear_scan``, ``rnnbench.fused_rnn``) uses them:

    B  batch            T  time steps         D  input features (in_features)
    H  hidden units (``features``, config.model.hidden_size)
    N  state size where it differs from H (lru's ``state_size``)

so lstm's ``kernel`` is (D, 4H) (gate blocks side by side) and its output (B, T, H).

Cells are batch-major, ``(B, T, ...)``; ``rnnbench.fused_rnn``'s kernels are time-major,
``(T, B, ...)``.

A cell is a Flax linen module that runs a whole sequence::

    @register("mycell")
    class MyCell(nn.Module):
      features: int                      # H, from config.model.hidden_size
      # any other dataclass field whose name is a config.model field (e.g.
      # recurrent_activation, reset_after, scan, unroll) is filled from the config.

      @nn.compact
      def __call__(self, x):             # x: (B, T, D) float
        ...                              # -> (B, T, H), every step returned

      def param_count(self, in_features: int) -> int:
        ...                              # the closed-form count of the params it creates

A cell whose input projection can use the tokens of an embedding's rows declares
``takes_ids: ClassVar[bool] = True`` and takes ``__call__(self, x, ids=None)``: the classifier
passes the first layer, which reads the embedding directly, ``ids`` (B, T), the token of each
row of ``x`` (equal ids, equal rows); the LSTM and GRU use it on CPU
(``pallas_rnn.input_projection``). Other cells are called with ``x`` alone.

A field named like one of the classifier's own options (``CLASSIFIER_OPTIONS``: dropout,
embed_dim, ...) is refused at ``register``, so a cell's recurrent ``dropout`` cannot
silently take the classifier's 0.5; a cell that does want the classifier's value names the
field in ``classifier_options: ClassVar[tuple[str, ...]] = ("dropout",)``.

Every module in this package is imported the first time the registry is read, so dropping
a file here is all it takes: ``config.model.cell = "mycell"`` then selects it.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

_REGISTRY: dict[str, type] = {}
_IMPORTED = False
# config.model fields that rnnbench.models reads for the classifier around the cell.
CLASSIFIER_OPTIONS = ("cell", "embed_dim", "hidden_size", "dense_size", "dropout",
                      "num_layers", "bidirectional", "mask_padding", "pooling", "block")


def _init_fields(cls: type) -> set[str]:
  """The cell's own dataclass fields (not Flax's ``parent``/``name``, not ``features``)."""
  return {f.name for f in dataclasses.fields(cls) if f.init} - {"parent", "name", "features"}


def register(name: str) -> Callable[[type], type]:
  """Class decorator that registers a cell module under ``name``.

  Refuses a dataclass field named like a classifier option (``CLASSIFIER_OPTIONS``) unless
  the cell lists it in its ``classifier_options`` ClassVar.
  """

  def decorator(cls: type) -> type:
    wanted = set(getattr(cls, "classifier_options", ()))
    clashes = sorted((_init_fields(cls) & set(CLASSIFIER_OPTIONS)) - wanted)
    if clashes:
      raise ValueError(
          f"cell {name!r} ({cls.__qualname__}) has field(s) {', '.join(clashes)} named like "
          "the classifier's config.model options, so it would be given the classifier's "
          "value; rename the field(s), or declare that the cell reads the classifier's value "
          f"with classifier_options: ClassVar[tuple[str, ...]] = {tuple(clashes)!r}")
    existing = _REGISTRY.get(name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
      raise ValueError(
          f"cell name {name!r} is already registered by {existing.__module__}."
          f"{existing.__qualname__}; pick another name for {cls.__qualname__}")
    _REGISTRY[name] = cls
    return cls

  return decorator


def _import_all() -> None:
  global _IMPORTED
  if _IMPORTED:
    return
  for module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{module.name}")
  _IMPORTED = True


def names() -> list[str]:
  """The registered cell names, sorted."""
  _import_all()
  return sorted(_REGISTRY)


def get(name: str) -> type:
  """The cell class registered under ``name``; a clear error for an unknown name."""
  _import_all()
  try:
    return _REGISTRY[name]
  except KeyError:
    raise ValueError(
        f"unknown cell {name!r}; registered cells: {', '.join(names())}. "
        "Set config.model.cell to one of them, or add a cell with "
        "@rnnbench.cells.register in a new file under rnnbench/cells/.") from None


def cell_options(cls: type, model_config: Mapping[str, Any]) -> dict[str, Any]:
  """The config.model fields that are also dataclass fields of ``cls``."""
  return {k: model_config[k] for k in sorted(_init_fields(cls)) if k in model_config}


def create(model_config: Mapping[str, Any], **overrides: Any):
  """Builds the cell named by ``model_config['cell']`` with its options from the config."""
  cls = get(model_config["cell"])
  kwargs = cell_options(cls, model_config)
  kwargs.update(overrides)
  kwargs.setdefault("features", model_config["hidden_size"])
  return cls(**kwargs)
