"""Faults on purpose (reliability): signals, kills, corrupt checkpoints, a second writer, a
full disk, half-made and unwritable workdirs. Each gives one clear line and loses nothing.

The reference is one uninterrupted tiny β-VAE run (real KMNIST, 1,024 images, 4 epochs of
32 steps, a checkpoint every 8 steps), trained once per module in this process; every
interrupted run must end with its ``summary.json`` and ``metrics.jsonl``, byte for byte
(same machine, same XLA). Bad data files: tests/test_faults_data.py; atomic writes:
tests/test_faults_disk.py; SIGTERM in a multi-process job: tests/test_scale_out.py.
"""

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from configs import beta_vae, cvae_sweep
from kjax import checkpointing, errors, experiment, launcher, metric_writers, sweep, tasks, train
from kjax import workdir as kworkdir
from tests.conftest import REPO, on_real_kmnist

# The run's settings, as config overrides: applied in-process and as launch.py flags.
OVERRIDES = {"data.train_split": "test[:1024]", "train.num_epochs": 4,
             "train.checkpoint_every_steps": 8, "train.log_every_steps": 4,
             "model.channels": (8, 16), "train.eval_batch_size": 200,
             "figures.grid_size": 4, "eval.at_end_of_training": False}
TOTAL_STEPS = 128


def _config(kmnist_dir, cache):
  config = on_real_kmnist(beta_vae.get_config(), kmnist_dir, cache)
  for key, value in OVERRIDES.items():
    section, name = key.split(".")
    config[section][name] = value
  return config


def _flags(kmnist_dir, cache, workdir):
  config = _config(kmnist_dir, cache)
  flags = [f"--config.data.{k}={v}" for k, v in config.data.items()
           if k in ("name", "data_dir", "train_split", "eval_split", "cache_dir")]
  flags += [f"--config.{k}={config[k.split('.')[0]][k.split('.')[1]]}"
            for k in ("train.batch_size", "train.steps_per_call", "eval.iwae_samples",
                      "eval.cas_epochs", "eval.iwae_chunk_size", "eval.kid_subsets")]
  flags += [f"--config.{k}={v}".replace(" ", "") for k, v in OVERRIDES.items()]
  return [sys.executable, os.path.join(REPO, "launch.py"), "--config=configs/beta_vae.py",
          f"--workdir={workdir}", *flags]


def _read(path):
  with open(path, "rb") as f:
    return f.read()


@pytest.fixture(scope="module")
def reference(kmnist_dir, tmp_path_factory):
  """``(config, workdir)`` of the uninterrupted run."""
  root = tmp_path_factory.mktemp("reference")
  config = _config(kmnist_dir, root)
  workdir = str(root / "run")
  assert launcher.run(config, workdir) == 0
  return config, workdir


def _same_records(workdir, reference_workdir):
  for name in ("summary.json", "metrics.jsonl"):
    assert _read(os.path.join(workdir, name)) == _read(os.path.join(reference_workdir, name)), name


def _steps(workdir):
  return sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())


# --- signals -----------------------------------------------------------------------------

def _signal_at_log_step(monkeypatch, signum, at_step):
  """Sends ``signum`` to this process when the run logs ``at_step`` (as a user's Ctrl-C or
  a scheduler's SIGTERM would, between two steps)."""
  original = metric_writers.MetricWriter.write_scalars
  sent = []

  def write_scalars(self, step, scalars):
    original(self, step, scalars)
    if step == at_step and not sent:  # once: a sweep has a writer per run
      sent.append(signum)
      os.kill(os.getpid(), signum)

  monkeypatch.setattr(metric_writers.MetricWriter, "write_scalars", write_scalars)


def test_sigint_saves_the_step_in_flight_and_the_rerun_equals_the_uninterrupted_run(
    reference, tmp_path, monkeypatch, capsys):
  config, ref_workdir = reference
  workdir = str(tmp_path / "run")
  _signal_at_log_step(monkeypatch, signal.SIGINT, 40)
  assert launcher.run(config, workdir) == 130
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1] == (f"kjax: stopped by SIGINT at step 41/{TOTAL_STEPS} (epoch 2/4); checkpoint "
                     f"saved in {workdir}; run the same command again to resume from it")
  assert _steps(workdir)[-1] == 41  # not the periodic step 40: the step in flight
  # The epoch's sums were saved with it, and metrics.jsonl holds epoch 1 only.
  assert [json.loads(line)["epoch"] for line in open(os.path.join(workdir, "metrics.jsonl"))] == [1]
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
  monkeypatch.undo()
  assert launcher.run(config, workdir) == 0
  _same_records(workdir, ref_workdir)


def test_a_signal_during_the_last_epoch_s_end_stops_before_the_final_figures(
    reference, tmp_path, monkeypatch, capsys):
  config, ref_workdir = reference
  workdir = str(tmp_path / "run")
  # Logged before the last epoch's evaluation and previews, after the loop's last check.
  _signal_at_log_step(monkeypatch, signal.SIGTERM, TOTAL_STEPS)
  assert launcher.run(config, workdir) == 143
  assert f"stopped by SIGTERM at step {TOTAL_STEPS}/{TOTAL_STEPS} (epoch 4/4)" in (
      capsys.readouterr().err)
  assert not os.path.exists(os.path.join(workdir, "summary.json"))  # not finished yet
  monkeypatch.undo()
  assert launcher.run(config, workdir) == 0  # trains nothing; writes the final records
  _same_records(workdir, ref_workdir)


def test_sigterm_in_a_sweep_checkpoints_every_run_and_the_rerun_finishes(
    kmnist_dir, tmp_path, monkeypatch, capsys):
  config = on_real_kmnist(cvae_sweep.get_config(), kmnist_dir, tmp_path, num_epochs=2)
  config.model.hidden = 32
  config.eval.at_end_of_training = False
  config.sweep.architecture = ("mlp",)
  config.sweep.latent_dim = (2,)
  config.sweep.seed = (0, 1)
  config.sweep.sharing = "vmap"
  workdir = str(tmp_path / "sweep")
  _signal_at_log_step(monkeypatch, signal.SIGTERM, 4)
  assert launcher.run(config, workdir) == 143
  assert "stopped by SIGTERM at step 5/16 (epoch 1/2); checkpoint saved in 2 runs" in (
      capsys.readouterr().err)
  runs = sweep.expand(config, workdir)
  assert [_steps(r.workdir) for r in runs] == [[4, 5], [4, 5]]
  monkeypatch.undo()
  assert launcher.run(config, workdir) == 0
  for r in runs:
    with open(os.path.join(r.workdir, "metrics.jsonl")) as f:
      assert [json.loads(line)["epoch"] for line in f] == [1, 2]
  assert os.path.exists(os.path.join(workdir, "results.csv"))


def _launch(kmnist_dir, tmp_path, workdir):
  return subprocess.Popen(_flags(kmnist_dir, tmp_path, workdir), cwd=REPO, text=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _run_until(proc, lines_seen, signals):
  """Reads ``proc``'s log; after ``lines_seen`` progress lines sends ``signals`` (one after
  another as each previous one is acknowledged); returns ``(returncode, log)``."""
  log, seen, sent = [], 0, 0
  for line in proc.stderr:
    log.append(line)
    if "] epoch " in line and " step " in line:
      seen += 1
    if sent < len(signals) and seen >= lines_seen and (sent == 0 or "received" in line):
      proc.send_signal(signals[sent])
      sent += 1
  return proc.wait(timeout=300), "".join(log)


def test_chaos_resume_kills_and_signals_at_random_points_end_in_the_uninterrupted_run(
    reference, kmnist_dir, tmp_path):
  """SIGKILL at 2 random points (seeded), SIGTERM at one, SIGTERM twice at another, each
  followed by a re-run of the same command; the last re-run ends with the uninterrupted
  run's records (SIGKILL outside training: tests/test_fault_matrix.py)."""
  _, ref_workdir = reference
  workdir = str(tmp_path / "run")
  rng = random.Random(14)
  progress_lines = TOTAL_STEPS // 4  # one per log step (every 4 steps)
  points = sorted(rng.sample(range(1, progress_lines - 2), 4))
  plan = [[signal.SIGKILL], [signal.SIGKILL], [signal.SIGTERM], [signal.SIGTERM, signal.SIGTERM]]
  rng.shuffle(plan)
  for point, signals in zip(points, plan):
    code, log = _run_until(_launch(kmnist_dir, tmp_path, workdir), point, signals)
    if code == 0:  # the run got to the end first (steps are fast): nothing to test here
      continue
    assert code == (-9 if signals[0] == signal.SIGKILL else 143), log[-3000:]
    if signals == [signal.SIGTERM]:
      stopped = [line for line in log.splitlines() if "stopped by SIGTERM at step" in line]
      assert len(stopped) == 1, log[-3000:]
      step = int(stopped[0].split("at step ")[1].split("/")[0])
      assert _steps(workdir)[-1] == step
  code, log = _run_until(_launch(kmnist_dir, tmp_path, workdir), 0, [])
  assert code == 0, log[-3000:]
  _same_records(workdir, ref_workdir)
  assert not [d for d in os.listdir(os.path.join(workdir, "checkpoints")) if "tmp" in d]


# --- corrupt checkpoints -----------------------------------------------------------------

def _truncate_largest_file(step_dir):
  files = [os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs]
  largest = max(files, key=os.path.getsize)
  with open(largest, "r+b") as f:
    f.truncate(os.path.getsize(largest) // 3)


def _tree(folder):
  return {os.path.relpath(os.path.join(r, f), folder): _read(os.path.join(r, f))
          for r, _, fs in os.walk(folder) for f in fs}


def test_a_corrupt_newest_checkpoint_is_set_aside_and_an_older_one_resumed(
    reference, tmp_path, capsys):
  config, ref_workdir = reference
  workdir = str(tmp_path / "run")
  shutil.copytree(ref_workdir, workdir)
  newest = _steps(workdir)[-1]
  assert newest == TOTAL_STEPS
  _truncate_largest_file(os.path.join(workdir, "checkpoints", str(newest)))
  files = [os.path.join(r, f) for r, _, fs in os.walk(
      os.path.join(workdir, "checkpoints", str(newest - 8))) for f in fs]
  os.remove(max(files, key=os.path.getsize))  # a missing file
  experiment.train_and_evaluate(config, workdir)
  assert not kworkdir._held  # the lock is released when the run returns
  aside = os.path.join(workdir, checkpointing.CORRUPT_DIR)
  assert sorted(os.listdir(aside)) == sorted([str(newest), str(newest - 8)])  # kept, not deleted
  assert _steps(workdir)[-1] == TOTAL_STEPS  # retrained from step 112: the same state again
  _same_records(workdir, ref_workdir)


def test_when_no_checkpoint_restores_one_line_and_nothing_changes(reference, tmp_path, capsys):
  config, ref_workdir = reference
  workdir = str(tmp_path / "run")
  shutil.copytree(ref_workdir, workdir)
  for step in _steps(workdir):
    _truncate_largest_file(os.path.join(workdir, "checkpoints", str(step)))
  before = _tree(workdir)
  assert launcher.run(config, workdir) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("kjax: error: no checkpoint restores: "), err
  assert "cannot be read" in err[0] and "nothing was changed" in err[0]
  after = _tree(workdir)
  after.pop(kworkdir.LOCK_FILE, None)
  before.pop(kworkdir.LOCK_FILE, None)
  assert after == before


def test_a_reader_skips_a_corrupt_checkpoint_without_moving_it(reference, tmp_path):
  config, ref_workdir = reference
  workdir = str(tmp_path / "run")
  shutil.copytree(ref_workdir, workdir)
  _truncate_largest_file(os.path.join(workdir, "checkpoints", str(TOTAL_STEPS)))
  task = tasks.get_task(config, None)
  state = kworkdir.restore_state(task, config, workdir)
  assert int(state.step) == TOTAL_STEPS - 8
  assert _steps(workdir)[-1] == TOTAL_STEPS  # a reader (generate, evaluate) moves nothing


# --- one writer per workdir --------------------------------------------------------------

def test_a_second_process_is_refused_naming_the_holder_and_a_dead_holder_does_not_block(
    reference, tmp_path, capsys):
  config, _ = reference
  workdir = str(tmp_path / "run")
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from kjax import workdir; "
       f"workdir.lock({workdir!r}); print('locked', flush=True); time.sleep(300)"],
      cwd=REPO, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    assert launcher.run(config, workdir) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"is in use by process {holder.pid} on {os.uname().nodename}" in err[0]
    assert os.listdir(workdir) == [kworkdir.LOCK_FILE]  # nothing written
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  kworkdir.check_unlocked(workdir)  # the dead holder's lock is gone with it
  with kworkdir.locked(workdir):
    with kworkdir.locked(workdir):  # nests in one process
      pass
    assert kworkdir._lock_path(workdir) in kworkdir._held
  assert kworkdir._lock_path(workdir) not in kworkdir._held


# --- disk and workdir faults -------------------------------------------------------------

def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last_one(
    reference, tmp_path, monkeypatch, capsys):
  config, _ = reference
  workdir = str(tmp_path / "run")
  original = checkpointing.Checkpointer.save

  def full_after_16(self, step, items, records=None):
    if step > 16:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.directory)
    original(self, step, items, records)

  monkeypatch.setattr(checkpointing.Checkpointer, "save", full_after_16)
  assert launcher.run(config, workdir) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f"kjax: error: cannot write {workdir}/checkpoints: No space left on device"]
  assert _steps(workdir) == [8, 16]


def test_orbax_reports_of_a_full_disk_become_one_line(tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path / "checkpoints"), keep=2)
  message = ("RESOURCE_EXHAUSTED: Error writing ... Failed to write 168777 bytes to file 8: "
             "No space left on device [os_error_code='28']")
  with pytest.raises(errors.WriteError, match=r"cannot write a checkpoint in .*: "
                     r"No space left on device; the complete checkpoints before it are kept"):
    with ckpt._disk_errors():
      raise ValueError(message)
  with pytest.raises(KeyError):  # anything else is not a disk error
    with ckpt._disk_errors():
      raise KeyError("x")
  ckpt.close()


def test_a_workdir_that_cannot_be_written_is_refused_before_anything_is_written(
    reference, tmp_path, monkeypatch, capsys):
  config, _ = reference
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  assert launcher.run(config, str(a_file)) == 1
  assert capsys.readouterr().err.strip() == (
      f"kjax: error: --workdir={str(a_file)!r} cannot be created: {a_file} is a file, not a folder")
  assert launcher.run(config, str(a_file / "run")) == 1
  assert "is a file, not a folder" in capsys.readouterr().err
  # Permissions (checked with os.access: the tests may run as root, who may write anywhere).
  monkeypatch.setattr(os, "access", lambda path, mode: path != str(tmp_path))
  assert launcher.run(config, str(tmp_path / "new" / "run")) == 1
  assert capsys.readouterr().err.strip().endswith(
      f"its parent folder {tmp_path} is not writable (permission denied)")
  assert not (tmp_path / "new").exists()


def test_a_workdir_left_before_its_first_checkpoint_never_blocks_the_next_run(tmp_path):
  config = beta_vae.get_config()
  workdir = tmp_path / "run"
  workdir.mkdir()
  other = beta_vae.get_config()
  other.objective.beta = 1.0
  (workdir / "config.json").write_text(json.dumps(other.to_dict()))  # a crash before step 1
  kworkdir.check_resumable(str(workdir), config.to_dict())  # no checkpoint: accepted
  (workdir / "checkpoints" / "8").mkdir(parents=True)
  with pytest.raises(errors.ConfigError, match="config.objective.beta=4.0 \\(the run has 1.0\\)"):
    kworkdir.check_resumable(str(workdir), config.to_dict())
  (workdir / "config.json").write_text('{"model": ')  # damaged, with a checkpoint
  with pytest.raises(errors.ConfigError, match="config.json cannot be read"):
    kworkdir.check_resumable(str(workdir), config.to_dict())


def test_seeds_the_prng_cannot_tell_apart_are_refused_before_anything_is_written(
    reference, tmp_path, capsys):
  config, _ = reference
  for seed in (2**32, 2**40, 2**64, -1):
    bad = config.copy_and_resolve_references()
    bad.seed = seed
    assert launcher.run(bad, str(tmp_path / "run")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"config.seed={seed}" in err[0], err
    assert not (tmp_path / "run").exists()


def test_a_torn_last_line_of_metrics_jsonl_is_dropped_and_rewritten(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [{"step": 8 * e, "epoch": e, "eval/nelbo": 100.0 - e} for e in (1, 2)]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 24, "epo')
  writer = metric_writers.MetricWriter(str(tmp_path), resume_step=16)
  writer.close()
  assert writer.history == rows
  assert [json.loads(line) for line in path.read_text().splitlines()] == rows


def test_a_damaged_config_json_without_records_is_one_line(reference, tmp_path, capsys):
  config, ref_workdir = reference
  workdir = str(tmp_path / "run")
  shutil.copytree(ref_workdir, workdir)
  for step in _steps(workdir):  # as saved by a kjax without the checkpoint's records
    shutil.rmtree(os.path.join(workdir, "checkpoints", str(step), checkpointing.RECORDS))
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write('{"model": {"name": "beta_va')
  assert launcher.run(config, workdir) == 1  # training: the resume check reads it
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "config.json cannot be read" in err[0], err
  with pytest.raises(errors.ConfigError, match="--workdir=.*: .*config.json"):
    kworkdir.read_config(workdir)  # --mode=evaluate and kjax.generate


def test_a_libraries_disk_error_logs_are_left_to_kjax_s_one_line():
  import logging as py_logging  # noqa: PLC0415
  from kjax import progress  # noqa: PLC0415
  handler = py_logging.StreamHandler()
  progress.quiet_libraries(handler)

  def record(level, message, path="/site-packages/orbax/checkpoint/future.py"):
    return py_logging.LogRecord("absl", level, path, 1, message, None, None)

  full = ("RESOURCE_EXHAUSTED: Failed to write 49055 bytes to file 8: No space left on device "
          "[os_error_code='28']")
  assert not handler.filter(record(py_logging.ERROR, full))
  assert handler.filter(record(py_logging.ERROR, "some other failure"))
  assert not handler.filter(record(py_logging.INFO, "orbax saved step 8"))
  assert handler.filter(record(py_logging.INFO, "kjax: x", path=os.path.join(
      REPO, "kjax", "train", "loop.py")))


def test_ctrl_c_outside_the_training_loop_is_one_line_and_exit_130(monkeypatch, capsys):
  def interrupted(config, workdir):
    raise KeyboardInterrupt  # e.g. during the final evaluation

  monkeypatch.setattr(experiment, "train_and_evaluate", interrupted)
  assert launcher.run(beta_vae.get_config(), "/nonexistent/run") == 130
  err = capsys.readouterr().err.strip().splitlines()
  assert err == ["kjax: stopped by SIGINT in the start (config and data checks); every "
                 "complete checkpoint in /nonexistent/run is kept; run the same command again "
                 "to finish the job"]
