"""The Pallas kernels (rnnbench.pallas_rnn) against the fused path (rnnbench.fused_rnn).

On this CPU machine the kernels run in Pallas' interpret mode: the same kernel bodies that
Triton compiles for CUDA. Outputs within 1e-6 and gradients within 1e-5 of the fused path
over odd shapes, through the classifier's options, in bfloat16; impl="auto" on CPU is the
fused path bit for bit; and the whole train step with impl="pallas" exported for CUDA from
here carries the Triton kernels, not the interpret-mode loop.
"""

from __future__ import annotations

import functools
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnbench.configs import default
from rnnbench import activations
from rnnbench import cpu_kernels
from rnnbench import fused_rnn
from rnnbench import models
from rnnbench import optim
from rnnbench import pallas_rnn
from rnnbench import scan
from rnnbench import train
from rnnbench import validation

H = 50
GATES = {"sigmoid": jax.nn.sigmoid, "hard_sigmoid": activations.hard_sigmoid}
KERNELS = {  # name: (fused, pallas, gate blocks, takes a recurrent bias)
    "lstm": (fused_rnn.lstm, pallas_rnn.lstm, 4, False),
    "gru": (fused_rnn.gru, pallas_rnn.gru, 3, False),
    "gru_reset_after": (fused_rnn.gru_reset_after, pallas_rnn.gru_reset_after, 3, True),
}
# Every kernel with both gates; each kernel sees T = 1 and an odd T, B = 3 (one batch
# block, padded) and 37 (three blocks, the last padded).
CASES = [("lstm", "sigmoid", 7, 37), ("lstm", "hard_sigmoid", 1, 3),
         ("gru", "sigmoid", 1, 37), ("gru", "hard_sigmoid", 7, 3),
         ("gru_reset_after", "sigmoid", 7, 3), ("gru_reset_after", "hard_sigmoid", 1, 37)]
_FAST_COMPILE = {"xla_backend_optimization_level": 0}  # small programs compile ~2x faster
_TRITON = "__gpu$xla.gpu.triton"


def _max_diff(a, b):
  return max(float(jnp.max(jnp.abs(jnp.asarray(x, jnp.float32) - jnp.asarray(y, jnp.float32))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _compiled(fn, *args):
  return jax.jit(fn).lower(*args).compile(_FAST_COMPILE)


def _kernel_args(name, steps, batch, seed=0):
  gates, recurrent_bias = KERNELS[name][2:]
  k = jax.random.split(jax.random.key(seed), 5)
  args = [2.5 * jax.random.normal(k[0], (steps, batch, gates * H)),  # saturates hard_sigmoid
          jax.random.normal(k[1], (gates * H,)),
          0.4 * jax.random.normal(k[2], (H, gates * H))]
  if recurrent_bias:
    args.append(jax.random.normal(k[3], (gates * H,)))
  return args, jax.random.normal(k[4], (steps, batch, H))


@pytest.mark.parametrize("name,gate,steps,batch", CASES)
def test_kernels_equal_fused(name, gate, steps, batch):
  """Outputs <= 1e-6 and every gradient (xw, biases, U) <= 1e-5 of the fused kernels."""
  fused, pallas = KERNELS[name][:2]
  args, weights = _kernel_args(name, steps, batch)
  g = GATES[gate]

  def both(*args):
    out = {}
    for key, kernel in (("fused", fused), ("pallas", pallas)):
      run = lambda *a: kernel(g, *a)
      loss = lambda *a: jnp.sum(jnp.sin(run(*a)) * weights)
      out[key] = run(*args), jax.grad(loss, argnums=tuple(range(len(args))))(*args)
    return out

  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # the interpret-mode warning
    out = _compiled(both, *args)(*args)
  (want_y, want_g), (got_y, got_g) = out["fused"], out["pallas"]
  assert got_y.shape == (steps, batch, H)
  assert _max_diff(got_y, want_y) <= 1e-6
  assert _max_diff(got_g, want_g) <= 1e-5
  if steps > 1:  # (T = 1 starts from h = 0: U's gradient is zero)
    assert float(jnp.max(jnp.abs(got_g[2]))) > 0.1


def test_padding_and_on_chip_bound():
  """Gate blocks padded to powers of two >= 16; U's on-chip bytes against 227 KiB."""
  assert [pallas_rnn.padded_units(h) for h in (1, 16, 17, 50, 64, 100, 256)] == [
      16, 16, 32, 64, 64, 128, 256]
  assert pallas_rnn.on_chip_bytes("lstm", 50, jnp.float32) == 4 * 64 * 64 * 4 + 16 * 64 * 4
  assert pallas_rnn.max_units("lstm", jnp.float32) == 64
  assert pallas_rnn.max_units("lstm", jnp.bfloat16) == 128
  assert pallas_rnn.max_units("gru", jnp.float32) == 128
  assert pallas_rnn.max_units("gru_reset_after", jnp.bfloat16) == 128
  assert not pallas_rnn.fits_on_chip("gru", 256, jnp.bfloat16)


def test_resolve_impl():
  """Which implementation runs, by the platform lowered for, impl and hidden size."""
  want = {("auto", "cpu"): "cpu" if cpu_kernels.available() else "fused", ("auto", "cuda"): "pallas", ("auto", "gpu"): "pallas",
          ("auto", "tpu"): "fused", ("pallas", "cpu"): "pallas_interpret",
          ("pallas", "cuda"): "pallas", ("pallas", "tpu"): "pallas",
          ("fused", "cuda"): "fused", ("nn_scan", "cuda"): "nn_scan"}
  for (impl, platform), expected in want.items():
    assert pallas_rnn.resolve_impl(impl, platform) == expected, (impl, platform)
  assert pallas_rnn.resolve_impl("auto", "cuda", cell="lstm", hidden_size=64) == "pallas"
  assert pallas_rnn.resolve_impl("auto", "cuda", cell="lstm", hidden_size=256) == "fused"
  assert pallas_rnn.resolve_impl("pallas", "cuda", cell="gru", hidden_size=256,
                           dtype="bfloat16") == "fused"
  # a CPU host with one device runs the C++ kernels for "auto" where they build
  assert pallas_rnn.resolve_impl("auto") == ("cpu" if cpu_kernels.available() else "fused")
  assert pallas_rnn.resolve_impl("auto", cell="gru_reset_after") == "fused"
  assert pallas_rnn.resolve_impl("auto", recurrent_activation="tanh") == "fused"
  with pytest.raises(ValueError, match="config.model.impl='cudnn'"):
    pallas_rnn.resolve_impl("cudnn")
  with pytest.raises(ValueError, match="not 'mingru'"):
    pallas_rnn.resolve_impl("auto", "cuda", cell="mingru", hidden_size=50)
  # The config check up front accepts exactly these.
  assert set(validation.RULES["model.impl"].options()) == set(scan.IMPLS)
  for impl in scan.IMPLS:
    config = default.get_config()
    config.model.impl = impl
    validation.validate(config)


def test_too_large_for_chip_runs_fused():
  """Above the bound "pallas" warns once and runs fused; "auto" stays "auto" (its dispatch
  leaves the Pallas kernel out above the bound, silently)."""
  pallas_rnn._warned_size.clear()
  with pytest.warns(UserWarning, match=r"hidden_size=256 in bfloat16 needs 520 KiB .*'fused'"):
    assert pallas_rnn.cell_mode("lstm", "pallas", 256, jnp.bfloat16) == "fused"
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    assert pallas_rnn.cell_mode("lstm", "pallas", 256, jnp.bfloat16) == "fused"  # once
    assert pallas_rnn.cell_mode("gru", "auto", 512, jnp.float32) == "auto"
    assert pallas_rnn.cell_mode("gru", "pallas", 50, jnp.float32) == "pallas"
    assert pallas_rnn.cell_mode("gru", "nn_scan", 512, jnp.float32) == "nn_scan"


def _config(cell="lstm", reset_after=False, impl="pallas", **model):
  config = default.get_config()
  config.data.num_words, config.data.maxlen = 40, 9
  config.model.update(cell=cell, reset_after=reset_after, embed_dim=6, hidden_size=H,
                      dense_size=8, dropout=0.0, impl=impl)
  config.model.update(model)
  return config


def _tokens(batch=5, steps=9, seed=0):
  """Random rows with 'pre' and 'post' padding, a one-token row and an empty row."""
  ids = np.random.default_rng(seed).integers(1, 40, (batch, steps)).astype(np.int32)
  ids[1, :3] = 0
  ids[2, 4:] = 0
  ids[3, :-1] = 0
  ids[4] = 0
  return jnp.asarray(ids)


def _model_loss_and_grads(config, dtype="float32"):
  """The classifier's loss and its gradients for every param, computed in ``dtype``."""
  model = models.create_model(config, num_classes=3)
  tokens, labels = _tokens(), jnp.array([0, 1, 2, 1, 0])
  shapes = jax.eval_shape(model.init, jax.random.key(0), tokens)["params"]
  leaves, tree = jax.tree.flatten(shapes)  # random params: no compiled init
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(tree, [0.5 * jax.random.normal(k, s.shape)
                                     for k, s in zip(keys, leaves)])
  apply = train.mixed_precision(model.apply, dtype)
  loss = lambda p: jnp.mean(optim.keras_categorical_crossentropy(
      apply({"params": p}, tokens, return_logits=True), labels))
  return _compiled(jax.value_and_grad(loss), params)(params)


def test_classifier_options():
  """Two stacked bidirectional layers with masked padding: the whole model's gradients."""
  options = dict(num_layers=2, bidirectional=True, mask_padding=True,
                 recurrent_activation="hard_sigmoid")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    got = _model_loss_and_grads(_config("lstm", False, "pallas", **options))
  want = _model_loss_and_grads(_config("lstm", False, "fused", **options))
  assert abs(float(got[0] - want[0])) <= 1e-6
  assert _max_diff(got[1], want[1]) <= 1e-5
  assert set(got[1]) >= {"rnn", "rnn_1"} and set(got[1]["rnn_1"]) == {"forward", "backward"}


def test_classifier_bfloat16():
  """train.dtype=bfloat16 (params cast in the step): the kernels keep their state in
  float32, the fused path in bfloat16; every gradient of the kernels is as close to the
  float32 model's as the fused path's is (bfloat16 rounding moves both by up to 30%)."""
  config = lambda impl: _config("gru", True, impl, recurrent_activation="sigmoid")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    got = _model_loss_and_grads(config("pallas"), "bfloat16")
  want = _model_loss_and_grads(config("fused"), "bfloat16")
  exact = _model_loss_and_grads(config("fused"), "float32")
  assert abs(float(got[0] - exact[0])) <= 1e-2 and abs(float(want[0] - exact[0])) <= 1e-2
  for g, w, e in zip(*(jax.tree.leaves(x[1]) for x in (got, want, exact))):
    assert g.dtype == jnp.float32
    assert _max_diff(g, e) <= 1.5 * _max_diff(w, e) + 0.02 * float(jnp.max(jnp.abs(e)))


def test_auto_on_cpu_is_fused_bit_for_bit():
  """impl="auto" (the default) lowered for the CPU runs the fused kernels: the same loss and
  gradients, bit for bit, as impl="fused"."""
  assert default.get_config().model.impl == "auto"
  got = _model_loss_and_grads(_config("gru", True, "auto", bidirectional=True))
  want = _model_loss_and_grads(_config("gru", True, "fused", bidirectional=True))
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, b)


def test_interpret_mode_warns_once():
  """impl="pallas" where the kernels do not compile: one one-line warning, when lowered."""
  args, _ = _kernel_args("gru", 2, 3)
  run = lambda *a: pallas_rnn.gru(jax.nn.sigmoid, *a)
  pallas_rnn._warned = False
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # nothing warns when lowered for cuda
    jax.jit(run).trace(*args).lower(lowering_platforms=("cuda",))
  with pytest.warns(UserWarning, match="interpret mode.*for testing only, and slow") as seen:
    jax.jit(run).lower(*args)
    jax.jit(lambda *a: 2 * run(*a)).lower(*args)
  assert len([w for w in seen if "interpret mode" in str(w.message)]) == 1
  assert "\n" not in str(seen[0].message)
  with pytest.raises(ValueError, match="mode must be one of"):
    pallas_rnn.lstm(jax.nn.sigmoid, *_kernel_args("lstm", 2, 3)[0], 1, "triton")


def _exported_train_step(config, platform="cuda"):
  """``train._train_step`` (loss, grads, Keras Adam update) exported for ``platform``."""
  state = jax.eval_shape(lambda: train.create_train_state(config, 20, jax.random.key(0)))
  batch = (jnp.zeros((32, config.data.maxlen), jnp.int32), jnp.zeros(32, jnp.int32),
           jnp.ones(32, jnp.float32))
  step = jax.jit(functools.partial(train._train_step, loss_fn=optim.keras_categorical_crossentropy))
  checks = [jax.export.DisabledSafetyCheck.custom_call(_TRITON)]  # Triton IR: no stability
  exported = jax.export.export(step, platforms=[platform], disabled_checks=checks)(
      state, batch, train.zero_metrics())
  return exported.mlir_module()


@pytest.mark.parametrize("cell,reset_after,impl,gate,dtype", [
    ("lstm", False, "pallas", "hard_sigmoid", "float32"),
    ("gru", False, "auto", "sigmoid", "bfloat16"),
    ("gru", True, "pallas", "sigmoid", "float32")])
def test_train_step_exports_for_cuda_with_triton_kernels(cell, reset_after, impl, gate, dtype):
  """The notebook's train step (B 32, T 100, H 50) lowered for CUDA on this CPU machine:
  one Triton kernel forward and one backward for the layer, no interpret-mode loop, no
  fused-path loop (a stablehlo.while) and no host callback."""
  config = default.get_config()
  config.model.update(cell=cell, reset_after=reset_after, impl=impl, recurrent_activation=gate)
  config.train.dtype = dtype
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # no interpret-mode warning when lowered for cuda
    text = _exported_train_step(config)
  kernels = re.findall(r'stablehlo\.custom_call @__gpu\$xla\.gpu\.triton\(.*?name = "(\w+)"',
                       text)
  assert len(kernels) == 2, kernels
  assert any("fwd" in k for k in kernels) and any("bwd" in k for k in kernels)
  assert "stablehlo.while" not in text
  assert "callback" not in text
  if impl == "auto":  # the same step lowered for the CPU runs the fused path's loops
    cpu = _exported_train_step(config, "cpu")
    assert _TRITON not in cpu and "stablehlo.while" in cpu


def test_kernels_lower_for_tpu():
  """mode="pallas" lowered for TPU is a Mosaic TPU kernel; "auto" keeps TPU on fused."""
  args, _ = _kernel_args("lstm", 3, 3)
  for mode, kernel in (("pallas", "tpu_custom_call"), ("auto", "stablehlo.while")):
    run = lambda *a: pallas_rnn.lstm(jax.nn.sigmoid, *a, 1, mode)
    text = jax.export.export(jax.jit(run), platforms=["tpu"])(*args).mlir_module()
    assert kernel in text, mode
    assert ("tpu_custom_call" in text) == (mode == "pallas")
