"""The workdir: its checks, the lock, the resume fingerprint and damaged artefacts.

Every damaged artefact either resumes with a one-line warning naming the file, or stops with
one line naming it (and the fix); bad workdirs are refused by run.py with one line, no traceback.
"""

import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, small_config
from rnnbench import checkpoint
from rnnbench import train
from rnnbench import workdir as workdir_lib

SMALL = {"train.num_epochs": 1, "train.checkpoint_every_steps": 3, "train.log_every_steps": 2}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
  """One epoch of 6 steps; checkpoints at steps 3 and 6; steps.jsonl lines at 2, 4, 6."""
  workdir = tmp_path_factory.mktemp("base")
  train.train_and_evaluate(small_config(**SMALL), workdir)
  return workdir


def copy_of(base_run, tmp_path):
  shutil.copytree(base_run, tmp_path / "run")
  (tmp_path / "run" / workdir_lib.LOCK_NAME).unlink(missing_ok=True)
  return tmp_path / "run"


def steps(workdir):
  return [json.loads(l) for l in (workdir / "steps.jsonl").read_text().splitlines()]


def corrupt(step_dir, item):
  """Overwrites every file of one checkpoint item ('meta' or 'state') with garbage."""
  files = [f for f in step_dir.rglob("*") if f.is_file() and item in f.relative_to(step_dir).parts]
  assert files
  for f in files:
    f.write_bytes(b"\x00 damaged")


# --- damaged artefacts: (name, damage(workdir), epochs to ask for, warning that must be printed)
def _truncate_steps(w):
  with (w / "steps.jsonl").open("a") as f:
    f.write('{"step": 7, "epo')  # a crash in the middle of a line


def _garbage_steps(w):
  lines = (w / "steps.jsonl").read_text().splitlines(keepends=True)
  (w / "steps.jsonl").write_text(lines[0] + "\xff\xfe garbage\n" + "".join(lines[1:]))


def _truncate_metrics(w):
  (w / "metrics.jsonl").write_text((w / "metrics.jsonl").read_text()[:-9])


def _damage_summary(w):
  (w / "summary.json").write_text('{"test_loss": 0.')


def _corrupt_newest_meta(w):
  corrupt(w / "checkpoints" / "6", "meta")


def _corrupt_newest_state(w):
  corrupt(w / "checkpoints" / "6", "state")


RESUMES = [
    ("steps.jsonl truncated", _truncate_steps, 2, "steps.jsonl line 4 of 4 is damaged"),
    ("steps.jsonl garbage line", _garbage_steps, 2, "steps.jsonl line 2 of 4 is damaged"),
    ("metrics.jsonl truncated", _truncate_metrics, 2, None),
    ("summary.json damaged", _damage_summary, 1, "summary.json is damaged"),
    ("newest checkpoint's meta corrupt", _corrupt_newest_meta, 2, "checkpoints/6 cannot be read"),
    ("newest checkpoint's state corrupt", _corrupt_newest_state, 2,
     "checkpoints/6 cannot be read"),
]


@pytest.mark.parametrize("name,damage,epochs,warning", RESUMES, ids=[r[0] for r in RESUMES])
def test_damaged_artefact_resumes_with_one_warning(base_run, tmp_path, capfd, name, damage,
                                                   epochs, warning):
  w = copy_of(base_run, tmp_path)
  damage(w)
  capfd.readouterr()
  summary = train.train_and_evaluate(small_config(**{**SMALL, "train.num_epochs": epochs}), w)
  err = capfd.readouterr().err
  warnings = [l for l in err.splitlines() if l.startswith("warning:")]
  if warning is None:
    assert not warnings, err
  else:
    assert len(warnings) == 1 and warning in warnings[0], err
  assert summary["epochs"] == epochs and summary["test_count"] == 40
  assert len(json.loads(json.dumps(summary))) and (w / "summary.json").is_file()
  assert [json.loads(l)["epoch"] for l in (w / "metrics.jsonl").read_text().splitlines()] == \
      list(range(1, epochs + 1))
  logged = [r["step"] for r in steps(w)]
  assert logged == sorted(set(logged))  # no line lost twice or repeated
  if "checkpoint" in name:  # fell back to step 3, set step 6 aside (kept, not deleted)
    assert "resuming from the checkpoint at step 3" in warnings[0]
    assert (w / "checkpoints-damaged" / "6").is_dir()


def _all_checkpoints(w):
  for step in ("3", "6"):
    corrupt(w / "checkpoints" / step, "state")


def _old_format(w):
  """A checkpoint as the previous rnnbench wrote it: a partial fingerprint, no whole one."""
  for step in ("3", "6"):
    meta = next(f for f in (w / "checkpoints" / step / "meta").rglob("*") if f.is_file())
    record = json.loads(meta.read_text())
    record["fingerprint"] = {"model.cell": "gru"}
    del record[checkpoint.FINGERPRINT_KEY]
    meta.write_text(json.dumps(record))


FATAL = [
    ("every checkpoint corrupt", _all_checkpoints, {},
     r"no intact checkpoint in .*checkpoints: the newest \(and 1 older\) cannot be read.*"
     r"overwrite=True"),
    ("checkpoint of an older rnnbench", _old_format, {}, r"written by an older rnnbench.*overwrite"),
    ("changed synthetic data", lambda w: None, {"data.synthetic": {"doc_len": 30}},
     r"another config \(2 fields differ: data.digest: .*data.synthetic.doc_len: checkpoint has "
     r"24, config has 30\)"),
    ("changed compute dtype", lambda w: None, {"train.dtype": "bfloat16"},
     r"1 field differ: train.dtype: checkpoint has 'float32', config has 'bfloat16'"),
]


@pytest.mark.parametrize("name,damage,change,message", FATAL, ids=[f[0] for f in FATAL])
def test_fatal_problem_is_one_line_naming_it(base_run, tmp_path, name, damage, change, message):
  w = copy_of(base_run, tmp_path)
  damage(w)
  config = small_config(**{**SMALL, "train.num_epochs": 2})
  for key, value in change.items():
    section, field = key.split(".")
    if isinstance(value, dict):
      config[section][field].update(value)
    else:
      config[section][field] = value
  before = (w / "metrics.jsonl").read_text()
  with pytest.raises(checkpoint.CheckpointError, match=message) as e:
    train.train_and_evaluate(config, w)
  assert "\n" not in str(e.value) and len(str(e.value)) < 600, str(e.value)
  assert (w / "metrics.jsonl").read_text() == before  # nothing was rewritten


def test_fields_that_may_differ_resume(base_run, tmp_path):
  w = copy_of(base_run, tmp_path)
  config = small_config(**{**SMALL, "train.num_epochs": 2, "train.eval_batch_size": 16,
                           "train.log_every_steps": 3, "train.keep_checkpoints": 1,
                           "train.tensorboard": False, "train.progress": False})
  assert train.train_and_evaluate(config, w)["epochs"] == 2


def test_fingerprint_covers_the_whole_config_but_the_allow_list():
  config = small_config()
  flat = checkpoint._flatten(config.to_dict())
  allowed = {k for k in flat if checkpoint.may_differ(k)}
  assert set(checkpoint.fingerprint(config)) == set(flat) - allowed
  assert "train.dtype" in flat and "data.synthetic.doc_len" in checkpoint.fingerprint(config)
  for entry in checkpoint.RESUME_MAY_DIFFER:  # no misspelled entry that would guard nothing
    assert any(k == entry or (entry.endswith(".*") and k.startswith(entry[:-1])) for k in flat)


def test_epochs_are_fingerprinted_where_they_shape_the_schedule():
  config = small_config()
  assert "train.num_epochs" not in checkpoint.fingerprint(config)  # constant LR: train longer
  config.train.schedule, config.train.decay_steps = "warmup_cosine", 0
  longer = small_config()
  longer.train.schedule, longer.train.decay_steps = "warmup_cosine", 0
  longer.train.num_epochs = config.train.num_epochs + 3
  diff = checkpoint.mismatches(checkpoint.fingerprint(config), checkpoint.fingerprint(longer))
  assert len(diff) == 1 and diff[0].startswith("train.num_epochs:"), diff
  config.train.decay_steps = longer.train.decay_steps = 100  # a fixed cosine: may train longer
  assert not checkpoint.mismatches(checkpoint.fingerprint(config), checkpoint.fingerprint(longer))


def test_resumed_steps_log_equals_an_uninterrupted_one(base_run, tmp_path):
  def crash_at_step_5(step):  # checkpoint at 3; lines at 2 and 4 written, 4 past the checkpoint
    if step == 5:
      raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(small_config(**SMALL), tmp_path, step_hook=crash_at_step_5)
  train.train_and_evaluate(small_config(**SMALL), tmp_path)
  assert steps(tmp_path) == steps(base_run)  # the line at 4 holds steps 3-4, not 1-4


def test_overwrite_removes_the_old_tensorboard_events(base_run, tmp_path):
  pytest.importorskip("tensorboardX")
  w = copy_of(base_run, tmp_path)
  old = {p.name for p in (w / "tensorboard").iterdir()}
  assert old
  train.train_and_evaluate(small_config(**{**SMALL, "train.overwrite": True}), w)
  new = {p.name for p in (w / "tensorboard").iterdir()}
  assert new and not new & old and len(new) == 1
  assert not (w / "checkpoints-damaged").exists()


def test_foreign_folder_is_refused_and_untouched(tmp_path):
  (tmp_path / "notes.txt").write_text("mine")
  (tmp_path / "config.json").write_text('{"something": "else"}')
  with pytest.raises(workdir_lib.WorkdirError, match=r"not an rnnbench run's \(notes.txt\); "
                     "nothing was written.*overwrite=True"):
    train.train_and_evaluate(small_config(), tmp_path)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "notes.txt"]
  assert (tmp_path / "config.json").read_text() == '{"something": "else"}'
  with pytest.raises(workdir_lib.WorkdirError, match="config.json .not an rnnbench config"):
    (tmp_path / "notes.txt").unlink()
    train.train_and_evaluate(small_config(), tmp_path)


@pytest.mark.parametrize("where", ["lock", "mkdir"])
def test_read_only_file_system_is_one_line(tmp_path, monkeypatch, where):
  def refuse(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system")

  if where == "lock":
    monkeypatch.setattr(workdir_lib.os, "open", refuse)
    target = tmp_path
  else:
    monkeypatch.setattr(pathlib.Path, "mkdir", refuse)
    target = tmp_path / "new"
  with pytest.raises(workdir_lib.WorkdirError,
                     match=r"cannot (write to|create) --workdir .* \(Read-only file system\)"):
    with workdir_lib.open_workdir(target):
      pass


def run_py(*args, **kwargs):
  return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config=configs/gru.py",
                         "--config.data.name=synthetic", *args], capture_output=True, text=True,
                        cwd=ROOT, timeout=300, **kwargs)


def one_error_line(proc):
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  return lines[0]


def test_bad_workdirs_are_one_line_from_run_py(tmp_path):
  (tmp_path / "afile").write_text("x")
  cases = [
      (tmp_path / "afile", "is a file, not a folder; pass a folder path"),
      (tmp_path / "afile" / "run", "afile is a file, not a folder, so nothing can be created"),
      (pathlib.Path("/sys/fs/rnnbench-probe"), "cannot create --workdir /sys/fs/rnnbench-probe ("),
  ]
  for path, message in cases:
    assert message in one_error_line(run_py(f"--workdir={path}"))


def test_second_run_is_refused_naming_the_holder_and_a_killed_one_leaves_no_lock(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, "-c", "import pathlib, sys, time\nfrom rnnbench import workdir\n"
       "with workdir.lock(pathlib.Path(sys.argv[1])):\n  print('locked', flush=True)\n"
       "  time.sleep(120)\n", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
      env={**os.environ, "PYTHONPATH": str(ROOT)})
  try:
    assert holder.stdout.readline().strip() == "locked"
    line = one_error_line(run_py(f"--workdir={tmp_path}"))
    assert f"is in use by another run (pid {holder.pid} on " in line and "started 20" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == [workdir_lib.LOCK_NAME]  # untouched
  finally:
    holder.kill()  # SIGKILL: no clean-up runs, the kernel drops the flock
    holder.wait()
  with workdir_lib.lock(tmp_path):  # the stale lock file does not block the next run
    assert json.loads((tmp_path / workdir_lib.LOCK_NAME).read_text())["pid"] == os.getpid()


def test_corrupt_only_checkpoint_from_run_py_is_one_short_line(base_run, tmp_path):
  w = copy_of(base_run, tmp_path)
  _all_checkpoints(w)
  line = one_error_line(run_py(f"--workdir={w}", *[f"--config.{k}={v}" for k, v in {
      **SMALL, "train.num_epochs": 2, "data.synthetic.num_train": 200,
      "data.synthetic.num_test": 40, "data.synthetic.num_classes": 4,
      "data.synthetic.vocab_size": 300, "data.synthetic.doc_len": 24, "data.num_words": 300,
      "data.maxlen": 16, "model.embed_dim": 16, "model.hidden_size": 8, "model.dense_size": 8,
      "model.dropout": 0.1, "train.learning_rate": 1e-2, "train.progress": False}.items()]))
  assert "no intact checkpoint" in line and len(line) < 600


# --------------------------------------------------------------------------- the layout

def _string_constants(path: pathlib.Path) -> set[str]:
  import ast  # pylint: disable=g-import-not-at-top
  tree = ast.parse(path.read_text())
  docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
  return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
          and isinstance(n.value, str) and id(n) not in docstrings}


def test_only_the_workdir_module_spells_the_layout():
  """No module but rnnbench/workdir.py names a run folder's file in its code."""
  sources = [*(ROOT / "rnnbench").rglob("*.py"), *(ROOT / "scripts").glob("*.py"),
             ROOT / "run.py"]
  found = {str(p.relative_to(ROOT)): sorted(_string_constants(p) & workdir_lib.ARTEFACTS)
           for p in sources if p.name != "workdir.py" or p.parent.name != "rnnbench"}
  assert {p: names for p, names in found.items() if names} == {}


def test_layout_writes_reads_and_clears(tmp_path):
  workdir_lib.write_inputs(tmp_path, {"data": {}, "model": {}, "train": {}}, '{"t": 1}',
                           ["a", "b"])
  history = [{"epoch": 1, "loss": 2.5}, {"epoch": 2, "loss": 2.0}]
  workdir_lib.write_jsonl(tmp_path / workdir_lib.METRICS, history)
  workdir_lib.write_results(tmp_path, b"\x00params", {"epochs": 2})
  (tmp_path / workdir_lib.CHECKPOINTS).mkdir()
  assert json.loads((tmp_path / workdir_lib.LABELS).read_text()) == ["a", "b"]
  assert (tmp_path / workdir_lib.TOKENIZER).read_text() == '{"t": 1}'
  assert workdir_lib.read_run_records(tmp_path) == {
      "history": history, "summary": {"epochs": 2}, "steps": []}
  assert workdir_lib.epochs_done(tmp_path) == 2 and workdir_lib.has_results(tmp_path)
  workdir_lib.check_contents(tmp_path, overwrite=False)  # every file is a run's
  workdir_lib.clear_results(tmp_path)
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
      [workdir_lib.CONFIG, workdir_lib.TOKENIZER, workdir_lib.LABELS])
  assert not workdir_lib.has_results(tmp_path) and workdir_lib.epochs_done(tmp_path) == 0
