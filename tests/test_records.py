"""A workdir's records are the truth (issue 16): each checkpoint carries the run's config,
metric history and array checksums; the workdir's JSON files are copies rebuilt from it.

The reference is one finished tiny β-VAE run (256 real KMNIST images, 3 epochs of 8 steps,
a checkpoint every 4 steps), trained once per module in this process. Damaged or deleted
records are rebuilt byte for byte (same machine, same XLA); a finished run launched again
rewrites nothing; a damaged checkpoint is never resumed; a diverged run continues with a
lower learning rate. Signals, truncated checkpoints, locks and full disks:
tests/test_faults.py.
"""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kjax import checkpointing, errors, launcher, report, train
from kjax import workdir as kworkdir
from kjax.tasks import vae as vae_task
from tests.conftest import on_real_kmnist
from configs import beta_vae

TOTAL_STEPS = 24  # 256 images / batch 32 × 3 epochs
RECORDS = ("summary.json", "metrics.jsonl", "config.json")


def _config(kmnist_dir, root, **changes):
  config = on_real_kmnist(beta_vae.get_config(), kmnist_dir, root, num_epochs=3)
  config.model.channels = (8, 16)
  config.train.eval_batch_size = 100
  config.figures.grid_size = 4
  config.eval.at_end_of_training = False
  for key, value in changes.items():
    section, name = key.split("__")
    config[section][name] = value
  return config


def _read(path):
  with open(path, "rb") as f:
    return f.read()


def _snapshot(workdir):
  """Every file of ``workdir`` but the lock → (bytes, mtime in ns)."""
  out = {}
  for root, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(root, name)
      if name != kworkdir.LOCK_FILE:
        out[os.path.relpath(path, workdir)] = (_read(path), os.stat(path).st_mtime_ns)
  return out


@pytest.fixture(scope="module")
def finished(kmnist_dir, tmp_path_factory):
  """``(config, workdir)`` of the finished reference run."""
  root = tmp_path_factory.mktemp("records")
  config = _config(kmnist_dir, root)
  workdir = str(root / "run")
  assert launcher.run(config, workdir) == 0
  return config, workdir


@pytest.fixture
def copy(finished, tmp_path):
  """A copy of the finished run (the reference stays untouched)."""
  workdir = str(tmp_path / "run")
  shutil.copytree(finished[1], workdir)
  return workdir


def _same_records(workdir, reference, names=RECORDS):
  for name in names:
    assert _read(os.path.join(workdir, name)) == _read(os.path.join(reference, name)), name


def test_each_checkpoint_records_the_config_history_and_checksums(finished):
  config, workdir = finished
  step, records = checkpointing.read_records(os.path.join(workdir, "checkpoints"))
  assert step == TOTAL_STEPS
  with open(os.path.join(workdir, "config.json")) as f:
    assert records["config"] == json.load(f)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert records["history"] == [json.loads(line) for line in f]
  assert records["config_history"] == []
  assert set(records["checksums"]) == {"state", "sums"}
  assert any("kernel" in path for path in records["checksums"]["state"])
  # An older checkpoint holds the history up to its own step only.
  _, older = checkpointing.read_records_at(os.path.join(workdir, "checkpoints"), 16)
  assert [row["step"] for row in older["history"]] == [8, 16]


def test_a_finished_run_launched_again_rewrites_nothing(finished, copy, caplog):
  config, _ = finished
  before = _snapshot(copy)
  with caplog.at_level("INFO"):
    assert launcher.run(config, copy) == 0
  assert f"already finished at step {TOTAL_STEPS}: nothing to train" in caplog.text
  after = _snapshot(copy)
  for name in (*RECORDS, "timing.json", *(n for n in before if n.startswith("figures"))):
    assert after[name] == before[name], name  # bytes and modification time


@pytest.mark.parametrize("damage", ["bad first line", "deleted", "torn last line", "emptied",
                                    "a line edited"])
def test_damaged_metrics_jsonl_is_rebuilt_from_the_checkpoint(finished, copy, damage, caplog):
  config, reference = finished
  path = os.path.join(copy, "metrics.jsonl")
  lines = _read(path).splitlines(keepends=True)
  if damage == "deleted":
    os.remove(path)
  else:
    with open(path, "wb") as f:
      f.write({"bad first line": b"\x00garbage\n" + b"".join(lines[1:]),
               "torn last line": b"".join(lines[:-1]) + lines[-1][:20],
               "emptied": b"",
               "a line edited": lines[0].replace(b'"epoch": 1', b'"epoch": 7')
                                + b"".join(lines[1:])}[damage])
  with caplog.at_level("INFO"):
    assert launcher.run(config, copy) == 0
  assert "rebuilt " + path + " from the checkpoint at step 24" in caplog.text
  _same_records(copy, reference)  # every valid line kept, the summary of the last epoch


@pytest.mark.parametrize("damage", ["deleted", "damaged", "edited"])
def test_a_damaged_summary_json_is_rebuilt_from_the_checkpoint(finished, copy, damage, caplog):
  config, reference = finished
  path = os.path.join(copy, "summary.json")
  if damage == "deleted":
    os.remove(path)
  else:
    with open(path, "w") as f:
      f.write('{"epoch": 0, "step": 24}' if damage == "edited" else '{"epoch": ')
  with caplog.at_level("INFO"):
    assert launcher.run(config, copy) == 0
  assert "rebuilt " + path in caplog.text
  _same_records(copy, reference)


def test_a_deleted_config_json_cannot_let_another_experiment_resume(
    finished, copy, kmnist_dir, tmp_path, capsys, caplog):
  config, reference = finished
  os.remove(os.path.join(copy, "config.json"))
  other = _config(kmnist_dir, tmp_path)
  other.data.cache_dir = config.data.cache_dir
  other.objective.beta = 1.0
  before = _snapshot(copy)
  assert launcher.run(other, copy) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(
      f"kjax: error: 1 setting(s) differ from the config of the checkpoint at step 24 in {copy}: "
      "config.objective.beta=1.0 (the run has 4.0)"), err
  assert _snapshot(copy) == before  # nothing written
  # The run's own config is read from the checkpoint, and the same command rebuilds it.
  assert kworkdir.read_config(copy).objective.beta == 4.0
  with caplog.at_level("INFO"):
    assert launcher.run(config, copy) == 0
  assert "rebuilt " + os.path.join(copy, "config.json") + " (it was missing)" in caplog.text
  _same_records(copy, reference)


def _largest_file(folder):
  paths = [os.path.join(r, n) for r, _, names in os.walk(folder) for n in names]
  return max(paths, key=os.path.getsize)


def test_a_checkpoint_with_damaged_array_data_is_never_resumed(finished, copy, caplog):
  config, reference = finished
  newest = os.path.join(copy, "checkpoints", str(TOTAL_STEPS))
  path = _largest_file(newest)
  size = os.path.getsize(path)
  with open(path, "r+b") as f:  # 4 KB of the largest file, sizes and metadata intact
    f.seek(size // 2 - 2048)
    f.write(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
  assert os.path.getsize(path) == size
  with caplog.at_level("INFO"):
    assert launcher.run(config, copy) == 0
  assert os.path.isdir(os.path.join(copy, checkpointing.CORRUPT_DIR, str(TOTAL_STEPS)))
  # The checksums catch bytes that still decode; zstd's decoder, bytes that do not (where
  # the 4 KB land in orbax's files varies): either way the checkpoint is set aside.
  assert ("differ from their checksums" in caplog.text or "cannot be read" in caplog.text)
  assert "restored the checkpoint at step 20 instead" in caplog.text
  _same_records(copy, reference)  # the last 4 steps replayed


def test_restore_verifies_every_array_against_its_checksum(tmp_path):
  """Arrays swapped under intact metadata: the same tree and shapes, other values."""
  ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"), keep=5)
  tree = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.int32(1)}
  ckpt.save(1, {"state": tree}, {"config": {}, "history": [], "config_history": []})
  ckpt.save(2, {"state": jax.tree.map(lambda a: a + 1, tree)},
            {"config": {}, "history": [], "config_history": []})
  ckpt.close()
  for step in (1, 2):
    assert checkpointing.Checkpointer(str(tmp_path / "checkpoints"), keep=5).restore(
        step, {"state": tree})["state"]["step"] == step
  ckpt_dir = tmp_path / "checkpoints"
  shutil.rmtree(ckpt_dir / "2" / "state")
  shutil.copytree(ckpt_dir / "1" / "state", ckpt_dir / "2" / "state")
  reader = checkpointing.Checkpointer(str(ckpt_dir), keep=5, reader=True)
  with pytest.raises(errors.CheckpointMismatchError,
                     match=r"step 2 .* is damaged: 2 array\(s\) of 'state' differ from their "
                           r"checksums") as e:
    reader.restore(2, {"state": tree})
  assert e.value.corrupt
  step, restored = checkpointing.restore_newest([reader], [{"state": tree}], set_aside=False)
  assert step == 1 and float(restored[0]["state"]["w"][1, 2]) == 5.0


def test_checksums_change_with_any_change_of_an_array():
  x = jnp.arange(1000, dtype=jnp.float32)
  tree = {"x": x, "b": jnp.zeros(3, jnp.bfloat16), "k": jax.random.key(3)}
  base = checkpointing.checksums(tree)
  assert set(base) == {"['x']", "['b']", "['k']"}
  assert checkpointing.checksums({"x": np.asarray(x), "b": np.zeros(3, jnp.bfloat16),
                                  "k": jax.random.key(3)}) == base  # on the host or not
  for i in (0, 517, 999):
    assert checkpointing.checksums({"x": x.at[i].set(-x[i] - 1)})["['x']"] != base["['x']"]
  swapped = x.at[1].set(x[2]).at[2].set(x[1])  # the same values in another order
  assert checkpointing.checksums({"x": swapped})["['x']"] != base["['x']"]
  same_bytes = jax.lax.bitcast_convert_type(x, jnp.int32)  # another dtype, the same bytes
  assert checkpointing.checksums({"x": same_bytes})["['x']"] != base["['x']"]
  assert checkpointing.checksums({"k": jax.random.key(4)})["['k']"] != base["['k']"]


def _poison(monkeypatch, when):
  """The β-VAE's train step returns a NaN loss where ``when(state)`` (traced) is true."""
  original = vae_task.BetaVAETask.train_step

  def poisoned(self, state, batch, key):
    new, metrics = original(self, state, batch, key)
    bad = jnp.where(when(state), jnp.nan, 1.0)
    return new, {k: v * bad for k, v in metrics.items()}

  monkeypatch.setattr(vae_task.BetaVAETask, "train_step", poisoned)


def test_a_non_finite_loss_right_after_restoring_non_finite_values_names_the_checkpoint(
    finished, kmnist_dir, tmp_path, monkeypatch, capsys):
  """A checkpoint saved from bad values (its checksums match): the parameters turn NaN in
  the 20th update, after the last finite loss before the checkpoint at step 20."""
  _, reference = finished
  config = _config(kmnist_dir, tmp_path)
  workdir = str(tmp_path / "run")
  original = vae_task.BetaVAETask.train_step

  def nan_params_at_20(self, state, batch, key):
    new, metrics = original(self, state, batch, key)
    return new.replace(params=jax.tree.map(lambda p: jnp.where(state.step == 19, jnp.nan, p),
                                           new.params)), metrics

  monkeypatch.setattr(vae_task.BetaVAETask, "train_step", nan_params_at_20)
  assert launcher.run(config, workdir) == 1
  assert "the last good checkpoint (step 20) is kept" in capsys.readouterr().err
  monkeypatch.undo()
  assert launcher.run(config, workdir) == 1  # the same command: the restored state is NaN
  err = capsys.readouterr().err.strip().splitlines()
  where = os.path.join(workdir, "checkpoints", "20")
  aside = os.path.join(workdir, checkpointing.CORRUPT_DIR)
  assert err == [
      f"kjax: error: the training loss of {workdir} became non-finite by step 24, within 4 "
      "step(s) of resuming: the checkpoint at step 20 may be corrupt (it holds non-finite "
      f"values); move {where} into {aside}/ and run the same command to resume from the one "
      "at step 16"], err
  os.makedirs(aside)
  shutil.move(where, aside)  # as the message says
  assert launcher.run(config, workdir) == 0
  _same_records(workdir, reference, ("summary.json", "metrics.jsonl"))


def test_a_diverged_run_continues_from_its_last_good_checkpoint_with_a_lower_learning_rate(
    kmnist_dir, tmp_path, monkeypatch, capsys, caplog):
  """The command the error gives works: the optimiser keeps its moments, takes the new
  rate, and the change is recorded (config_history.json, the checkpoint, the report)."""
  config = _config(kmnist_dir, tmp_path, optim__learning_rate=0.01)
  workdir = str(tmp_path / "run")
  # Diverges from step 10 while the learning rate is above 0.005.
  _poison(monkeypatch, lambda s: (s.step >= 10) & (s.opt_state.hyperparams["learning_rate"] > 5e-3))
  assert launcher.run(config, workdir) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1] == (
      f"kjax: error: the training loss of {workdir} became non-finite by step 12 (epoch 2); "
      "the last good checkpoint (step 8) is kept; to continue from it with a smaller step, run "
      "the same command with --config.optim.learning_rate=0.001"), err
  config.optim.learning_rate = 0.001  # the flag the message gives
  with caplog.at_level("INFO"):
    run = train.train(config, workdir)
  assert ("continues from step 8 with config.optim.learning_rate=0.001 (was 0.01)"
          in caplog.text)
  assert run.summary["step"] == TOTAL_STEPS and np.isfinite(run.summary["eval/nelbo"])
  assert float(run.state.opt_state.hyperparams["learning_rate"]) == pytest.approx(0.001)
  expected = [{"step": 8, "changes": {"optim.learning_rate": {"from": 0.01, "to": 0.001}}}]
  with open(os.path.join(workdir, "config_history.json")) as f:
    assert json.load(f) == expected
  _, records = checkpointing.read_records(os.path.join(workdir, "checkpoints"))
  assert records["config_history"] == expected
  assert records["config"]["optim"]["learning_rate"] == 0.001
  section = "".join(report._config_history(workdir))
  assert "Config changes during training" in section and "config.optim.learning_rate" in section
  # The original command on the finished run: the rate would train no step; not used.
  before = _snapshot(workdir)
  config.optim.learning_rate = 0.01
  caplog.clear()
  with caplog.at_level("INFO"):
    assert launcher.run(config, workdir) == 0
  assert ("already finished at step 24; config.optim.learning_rate=0.01 (was 0.001) would "
          "train no step and is not used") in caplog.text
  assert _snapshot(workdir) == before  # config.json keeps the rate it finished with


def test_mode_repair_on_a_study_repairs_each_run_and_refuses_what_is_no_run(
    finished, tmp_path, capsys):
  _, reference = finished
  study = tmp_path / "sweep"
  shutil.copytree(reference, study / "runs" / "a")
  os.remove(study / "runs" / "a" / "summary.json")
  lines = kworkdir.repair(str(study))
  assert lines == [f"rebuilt {study / 'runs' / 'a' / 'summary.json'} from the checkpoint at "
                   "step 24"]
  _same_records(str(study / "runs" / "a"), reference)
  assert launcher.run(None, str(tmp_path / "typo"), mode="repair") == 1
  assert capsys.readouterr().err.strip() == (
      f"kjax: error: --workdir={str(tmp_path / 'typo')!r} is not a kjax run: it has no "
      "checkpoints/ (and no runs/ of a sweep)")
  assert not os.path.exists(tmp_path / "typo")  # not even a lock file


def test_mode_repair_rebuilds_the_records_from_the_newest_checkpoint(finished, copy):
  """Without training, data or a --config: the records of a run whose copies were lost."""
  import subprocess, sys  # noqa: E401, PLC0415
  from tests.conftest import REPO  # noqa: PLC0415
  _, reference = finished
  path = os.path.join(copy, "metrics.jsonl")
  lines = _read(path).splitlines(keepends=True)
  with open(path, "wb") as f:
    f.write(b"{not json\n" + b"".join(lines[1:]))
  for name in ("summary.json", "config.json"):
    os.remove(os.path.join(copy, name))
  command = [sys.executable, os.path.join(REPO, "launch.py"), "--mode=repair",
             f"--workdir={copy}"]
  result = subprocess.run(command, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  rebuilt = [line for line in result.stderr.splitlines() if "kjax: rebuilt" in line]
  assert len(rebuilt) == 3, result.stderr[-2000:]
  _same_records(copy, reference)
  before = _snapshot(copy)
  result = subprocess.run(command, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and "nothing to repair" in result.stderr, result.stderr[-2000:]
  assert _snapshot(copy) == before
