"""The fault matrix (docs/reliability.md, "Every phase"): a fault injected when a job enters
each phase (``kjax.preemption.phase``, ``KJAX_FAULT_AT=<phase>:<fault>``, a test-only
injection point) gives its exit status and at most two user-facing lines with no
traceback; after a signal, the same command finishes the job with the records of an
uninterrupted run, byte for byte (same machine, same XLA).

Every cell starts from one copy of the session's tiny run (tests.conftest.tiny_run) with
its last checkpoint removed, so that a launch goes through every phase of a job in seconds:
data, compile, 4 training steps, the final checkpoint, the final figures, the evaluation.
"""

import errno
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest

from configs import cvae_sweep
from kjax import errors, launcher, metric_writers, peers, preemption
from tests.conftest import REPO, on_real_kmnist

FINAL_STEP = 16  # tiny_run: 2 epochs of 8 steps, a checkpoint every 4
# Phases of a single run, in order, and the exit status of each fault.
RUN_PHASES = ("start", "data", "compile", "final_checkpoint", "final_figures", "evaluation")
STATUS = {"SIGTERM": 143, "SIGINT": 130, "ENOSPC": 1, "EACCES": 1}


def _read(path):
  with open(path, "rb") as f:
    return f.read()


def _metrics(workdir):
  with open(os.path.join(workdir, "eval", "metrics.json")) as f:
    return json.load(f)["metrics"]


def _unfinished(tiny_run, path):
  """A copy of the tiny run as it was before its last checkpoint: step 12 of 16."""
  shutil.copytree(tiny_run[1], path)
  shutil.rmtree(os.path.join(path, "checkpoints", str(FINAL_STEP)))
  for name in ("summary.json", "eval", "report.html"):
    target = os.path.join(path, name)
    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
  return str(path)


def _user_lines(err):
  """The lines a user sees: not absl's INFO/WARNING log lines (``I1206 …``)."""
  return [line for line in err.splitlines()
          if line.strip() and not (line[:1] in "IWE" and line[1:5].isdigit())]


def _check_stop(err, fault, workdir):
  lines = _user_lines(err)
  assert 1 <= len(lines) <= 2 and "Traceback" not in err, err[-3000:]
  if fault in ("SIGTERM", "SIGINT"):
    assert lines[-1].startswith(f"kjax: stopped by {fault}"), lines
  else:
    assert lines[-1].startswith("kjax: error: cannot write ") and lines[-1].endswith(
        os.strerror(getattr(errno, fault))), lines
  assert not [n for n in _walk(workdir) if n.endswith(".tmp")]  # nothing half-written


def _walk(root):
  return [os.path.join(d, f) for d, _, names in os.walk(root) for f in names]


def _same_as_uninterrupted(workdir, reference):
  for name in ("summary.json", "metrics.jsonl"):
    assert _read(os.path.join(workdir, name)) == _read(os.path.join(reference, name)), name
  assert _metrics(workdir) == _metrics(reference)


class _Exited(BaseException):
  """``os._exit`` in this process, raised instead of leaving it (tests of a second signal;
  a real process's: test_a_process_stopped_in_each_way_exits_with_its_line…)."""

  def __init__(self, code):
    super().__init__(code)
    self.code = code


_REAL_EXIT = os._exit


def _raise_exited(code):
  if threading.current_thread() is not threading.main_thread():
    _REAL_EXIT(code)  # e.g. pytest-xdist's worker told to leave
  raise _Exited(code)


def _checkpoints_kept(before, workdir, rotated):
  """No checkpoint of ``before`` is lost, but the oldest when ``rotated`` (a signal in
  training saves one more, and the oldest rotates away)."""
  after = set(os.listdir(os.path.join(workdir, "checkpoints")))
  assert set(before) - after <= ({min(before, key=int)} if rotated else set()), (before, after)


# The fake exit leaves the launch's unfinished coroutines (orbax's reads) to the garbage
# collector, which reports them; a real exit drops them.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("phase", RUN_PHASES)
def test_every_fault_in_a_phase_is_one_line_and_the_relaunch_finishes_the_job(
    phase, tiny_run, tmp_path, monkeypatch, capfd):
  """One workdir per phase, faulted in that phase by each of SIGTERM, SIGINT, a full disk,
  an unwritable folder and a second signal while the first is handled, one launch after
  another (each goes through the phase again); then the same command, unfaulted, ends with
  the uninterrupted run's records."""
  config, reference = tiny_run
  workdir = _unfinished(tiny_run, tmp_path / "run")
  for fault in STATUS:
    before = os.listdir(os.path.join(workdir, "checkpoints"))
    monkeypatch.setenv(preemption.FAULT_ENV, f"{phase}:{fault}")
    assert launcher.run(config, workdir) == STATUS[fault], fault
    err = capfd.readouterr().err
    _check_stop(err, fault, workdir)
    if fault.startswith("SIG"):
      assert ("checkpoint saved" if phase == "compile"  # in the training loop: the step in flight
              else f"in {preemption.PHASES[phase]}; every complete checkpoint in {workdir} is "
              "kept") in err
    _checkpoints_kept(before, workdir, rotated=phase == "compile" and fault.startswith("SIG"))
    assert signal.getsignal(signal.SIGTERM) is not preemption._stop_now  # handlers restored
    assert preemption.FAULT_ENV not in os.environ  # injected once: it was entered
  before = os.listdir(os.path.join(workdir, "checkpoints"))
  with monkeypatch.context() as patched:  # a second signal while the first is handled
    patched.setattr(os, "_exit", _raise_exited)
    patched.setenv(preemption.FAULT_ENV, f"{phase}:SIGTERM+SIGINT")
    with pytest.raises(_Exited) as exited:
      launcher.run(config, workdir)
    gc.collect()  # here, not in a later test
  assert exited.value.code == 130
  err = capfd.readouterr().err
  assert _user_lines(err) == [
      *(["kjax: SIGTERM received: saving a checkpoint after the step in flight (send it "
         "again to exit at once)"] if phase == "compile" else []),
      "kjax: SIGINT again: exiting at once; every complete checkpoint is kept"]
  assert "Traceback" not in err
  _checkpoints_kept(before, workdir, rotated=False)
  assert signal.getsignal(signal.SIGTERM) is not preemption._stop_now  # handlers restored
  assert launcher.run(config, workdir) == 0
  _same_as_uninterrupted(workdir, reference)


@pytest.mark.parametrize("mode", ["evaluate", "repair"])
def test_every_fault_in_evaluate_and_repair_modes_is_one_line(mode, tiny_run, tmp_path,
                                                               monkeypatch, capfd):
  config, reference = tiny_run
  workdir = str(shutil.copytree(reference, tmp_path / "run"))
  lost = os.path.join(workdir, "eval" if mode == "evaluate" else "summary.json")
  shutil.rmtree(lost) if mode == "evaluate" else os.remove(lost)  # work for the mode
  phase = "evaluation" if mode == "evaluate" else mode
  for fault in STATUS:
    monkeypatch.setenv(preemption.FAULT_ENV, f"{phase}:{fault}")
    assert launcher.run(config, workdir, mode=mode) == STATUS[fault]
    err = capfd.readouterr().err
    _check_stop(err, fault, workdir)
    assert not fault.startswith("SIG") or f"in {preemption.PHASES[phase]};" in err
    assert not os.path.exists(lost)
  assert launcher.run(config, workdir, mode=mode) == 0
  _same_as_uninterrupted(workdir, reference)


def test_every_fault_between_the_runs_of_a_sweep_and_in_its_results(kmnist_dir, tmp_path,
                                                                     monkeypatch, capfd):
  """A sweep of 3 runs faulted after each run (SIGTERM, SIGINT, a full disk), then in its
  results (each fault); then the same command tabulates every run and trains nothing."""
  config = on_real_kmnist(cvae_sweep.get_config(), kmnist_dir, tmp_path, num_epochs=1)
  config.sweep.architecture, config.sweep.latent_dim = ("mlp",), (2, 3, 4)
  config.sweep.seed = (0,)
  config.sweep.sharing = "sequential"
  config.eval.at_end_of_training = False
  workdir = str(tmp_path / "sweep")
  cells = [("between_runs", f) for f in ("SIGTERM", "SIGINT", "ENOSPC")] + [
      ("results", f) for f in STATUS]
  for i, (phase, fault) in enumerate(cells):
    monkeypatch.setenv(preemption.FAULT_ENV, f"{phase}:{fault}")
    assert launcher.run(config, workdir) == STATUS[fault], (phase, fault)
    err = capfd.readouterr().err
    _check_stop(err, fault, workdir)
    assert not fault.startswith("SIG") or f"in {preemption.PHASES[phase]};" in err
    assert not os.path.exists(os.path.join(workdir, "results.csv"))
    summaries = [os.path.join(workdir, "runs", run, "summary.json")
                 for run in os.listdir(os.path.join(workdir, "runs"))]
    summaries = [path for path in summaries if os.path.exists(path)]
    assert len(summaries) == min(i + 1, 3)  # between the runs: one more run each time
  finished = [os.stat(path).st_mtime_ns for path in summaries]
  assert launcher.run(config, workdir) == 0
  assert [os.stat(path).st_mtime_ns for path in summaries] == finished  # none trained again
  with open(os.path.join(workdir, "results.csv")) as f:
    assert len(f.readlines()) == 4  # the header and one row per latent_dim


def _launch(workdir, fault, *flags):
  env = {**os.environ, preemption.FAULT_ENV: fault} if fault else dict(os.environ)
  return subprocess.run([sys.executable, os.path.join(REPO, "launch.py"),
                         f"--workdir={workdir}", *flags], capture_output=True, text=True,
                        env=env, cwd=REPO, timeout=300)


def test_a_process_stopped_in_each_way_exits_with_its_line_and_a_relaunch_finishes(
    tiny_run, tmp_path):
  """Real processes (``launch.py``), one after another on one workdir: two SIGTERMs in the
  training loop (the second exits at once), SIGKILL in the final checkpoint, the final
  figures and the evaluation, SIGTERM then SIGINT in the evaluation (outside the loop: the
  second while the first unwinds), SIGTERM in the evaluation; then the relaunch ends with
  the uninterrupted run's records."""
  config, reference = tiny_run
  workdir = _unfinished(tiny_run, tmp_path / "run")
  # The whole command: its config from the run's config.json, as --mode=evaluate reads it.
  flags = [f"--config={launcher.__file__.replace('launcher.py', 'workdir_config.py')}:"
           f"{workdir}"]
  twice = _launch(workdir, "compile:SIGTERM+SIGTERM", *flags)
  assert twice.returncode == 143, twice.stderr[-3000:]
  assert _user_lines(twice.stderr) == [
      "kjax: SIGTERM received: saving a checkpoint after the step in flight (send it again "
      "to exit at once)",
      "kjax: SIGTERM again: exiting at once; every complete checkpoint is kept"]
  for phase in ("final_checkpoint", "final_figures", "evaluation"):
    assert _launch(workdir, f"{phase}:SIGKILL", *flags).returncode == -signal.SIGKILL
  again = _launch(workdir, "evaluation:SIGTERM+SIGINT", *flags)
  assert again.returncode == 130, again.stderr[-3000:]
  assert _user_lines(again.stderr) == [
      "kjax: SIGINT again: exiting at once; every complete checkpoint is kept"]
  done = _launch(workdir, "evaluation:SIGTERM", *flags)
  assert done.returncode == 143, done.stderr[-3000:]  # was -15: the default action
  _check_stop(done.stderr, "SIGTERM", workdir)
  assert launcher.run(config, workdir) == 0  # the relaunch, here in this process
  _same_as_uninterrupted(workdir, reference)


@pytest.mark.parametrize("fault", ["SIGTERM", "ENOSPC"])
def test_a_fault_while_generating_is_one_line_and_writes_nothing(fault, tiny_run):
  _, workdir = tiny_run  # read, not changed: the image is never written
  done = subprocess.run([sys.executable, "-m", "kjax.generate", f"--workdir={workdir}"],
                        capture_output=True, text=True, cwd=REPO, timeout=300,
                        env={**os.environ, preemption.FAULT_ENV: f"generate:{fault}"})
  assert done.returncode == STATUS[fault], done.stderr[-3000:]
  assert done.stderr.splitlines() == [
      "kjax: stopped by SIGTERM in generating images; nothing was written"
      if fault == "SIGTERM" else
      f"kjax: error: cannot write {workdir}: {os.strerror(errno.ENOSPC)}"]
  assert not os.path.exists(os.path.join(workdir, "generated"))


@pytest.mark.parametrize("command, fault", [("kjax", "SIGTERM"), ("launch.py", "SIGINT")])
def test_a_signal_while_the_command_starts_is_one_line(command, fault, tmp_path):
  """The console script and launch.py, stopped before absl, ml_collections or JAX load."""
  program = ([os.path.join(os.path.dirname(sys.executable), "kjax")] if command == "kjax"
             else [sys.executable, os.path.join(REPO, "launch.py")])
  done = subprocess.run([*program, "--config=cvae", f"--workdir={tmp_path / 'run'}"],
                        capture_output=True, text=True, cwd=REPO, timeout=60,
                        env={**os.environ, preemption.FAULT_ENV: f"starting:{fault}"})
  assert done.returncode == STATUS[fault]
  assert done.stderr.splitlines() == [
      f"kjax: stopped by {fault} in starting the command; nothing was written; run the same "
      "command again"]
  assert not os.path.exists(tmp_path / "run")


def test_an_unknown_phase_or_fault_is_refused(monkeypatch):
  with pytest.raises(KeyError, match="phase 'trainig'"):
    preemption.phase("trainig")
  for fault in ("SIGHUP", "SIGTERM+ENOSPC", "SIGTERM+", "SIGKILL+SIGTERM"):
    monkeypatch.setenv(preemption.FAULT_ENV, f"results:{fault}")
    with pytest.raises(ValueError, match=fault.replace("+", r"\+")):
      preemption.phase("results")


# --- library writers on a full disk ---------------------------------------------------------

FULL_DISK_SCRIPT = """
import errno, os, sys, time
from kjax import errors, metric_writers
writer = metric_writers.MetricWriter(sys.argv[1])
records = writer._tb.kjax_records._records

class Full:
  def __init__(self, f): self.f = f
  def write(self, data): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  def flush(self): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  def __getattr__(self, name): return getattr(self.f, name)

records._writer = Full(records._writer)
for step in range(40):  # more than the writer's queue holds: no consumer would block here
  writer._tb.add_scalar("train/loss", 1.0, step)
time.sleep(0.3)  # the writer's thread meets the full disk
try:
  writer.write_scalars(40, {"train/loss": 1.0})
except errors.WriteError as e:
  print(f"kjax: error: {e}", file=sys.stderr)
  sys.exit(1)
"""


def test_a_full_disk_under_tensorboard_is_kjax_s_line_and_nothing_after_it(tmp_path):
  done = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path)],
                        capture_output=True, text=True, cwd=REPO, timeout=60)
  lines = done.stderr.strip().splitlines()
  assert done.returncode == 1
  assert len(lines) == 1, done.stderr  # no thread traceback, no exit hook's flush
  assert lines[0].startswith(f"kjax: error: cannot write {tmp_path}/events.out.tfevents.")
  assert lines[0].endswith(os.strerror(28))


def test_a_healthy_tensorboard_writer_raises_nothing(tmp_path):
  writer = metric_writers.MetricWriter(str(tmp_path))
  writer.write_scalars(1, {"train/loss": 1.0})
  writer.close()
  metric_writers.raise_error(None)
  assert any(n.startswith("events.out.tfevents.") for n in os.listdir(tmp_path))
  with pytest.raises(errors.WriteError):  # a failed write of the closed writer's thread
    writer._tb.kjax_records.error = OSError(
        28, os.strerror(28))
    writer.close()


# --- readers beside a live run -------------------------------------------------------------

def test_a_reader_whose_checkpoint_is_rotated_away_reads_the_newest_again(
    tiny_run, tmp_path, monkeypatch, caplog):
  from kjax import checkpointing, tasks  # noqa: PLC0415
  from kjax import workdir as kworkdir  # noqa: PLC0415
  config, reference = tiny_run
  workdir = str(shutil.copytree(reference, tmp_path / "run"))
  original = checkpointing.Checkpointer.restore
  rotated = []

  def restore(self, step, templates):
    if not rotated:  # the live run deletes this step while the reader reads it
      rotated.append(step)
      shutil.rmtree(os.path.join(self.directory, str(step)))
    return original(self, step, templates)

  monkeypatch.setattr(checkpointing.Checkpointer, "restore", restore)
  state = kworkdir.restore_state(tasks.get_task(config, None), config, workdir)
  assert rotated == [FINAL_STEP] and int(state.step) == FINAL_STEP - 4
  assert not [r for r in caplog.records if r.levelname == "WARNING"]  # not called damage
  assert not os.path.exists(os.path.join(workdir, "checkpoints.corrupt"))


# --- a dead peer: JAX's abort becomes one line ------------------------------------------------

# What a survivor's stderr held when process 0 of a 2-process job was killed (JAX 0.10,
# tests/test_scale_out.py's jobs; shortened): C++ warnings, the fatal line, the stack dump.
JAX_ABORT = """I1206 14:28:10.100000 140485 actions.py:197] epoch 3/4 step 20/32
W1206 14:28:11.365551   27482 preemption_sync_manager.cc:147] Failed to retrieve preemption notice from coordination service: UNAVAILABLE: Socket closed
Additional GRPC error information from remote target coordination_service while calling /xla.coordination.CoordinationService/GetKeyValue:
:UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:"Socket closed"}. This is only expected if one of the tasks is unhealthy.
E1206 14:28:11.365653   27482 coordination_service_agent.cc:289] Polled an error from coordination service (this can be an error from this or another task).
F1206 14:28:11.365658   27482 client.h:80] Terminating process because the JAX distributed service detected fatal errors. This most likely indicates that another task died; see the other task logs for more details. absl::Status: UNAVAILABLE: Failed to send RPC to coordination service.
*** Check failure stack trace: ***
    @     0x7f97e2440634  absl::lts_20260107::log_internal::LogMessage::SendToLog()
    @     0x7f97e9aa71f5  (unknown)
"""


def test_the_stderr_guard_turns_jax_s_abort_into_one_line():
  done = subprocess.run([sys.executable, "-m", "kjax.peers", "1", "2"], input=JAX_ABORT,
                        capture_output=True, text=True, cwd=REPO, timeout=60)
  assert done.returncode == 0 and done.stdout == ""
  assert done.stderr.splitlines() == [
      JAX_ABORT.splitlines()[0],  # Python's log lines pass
      "kjax: error: process 1 of 2: another process of the job stopped (UNAVAILABLE: Failed "
      "to send RPC to coordination service.); re-launch every process with the same command "
      "to resume from the last complete checkpoint"]


def test_the_stderr_guard_passes_everything_else_and_adds_nothing_after_kjax_s_line():
  ordinary = ("I1206 14:28:10.1 1 a.py:1] x\nW1206 14:28:11.3 27 gloo.cc:9] a C++ warning\n"
              "its second line\nkjax: error: process 0 of 2: another process of the job "
              "stopped (x); re-launch\n")
  fatal = f"F1206 14:28:12.3 27 client.h:80] {peers.FATAL} absl::Status: X\n    @ 0x1\n"
  done = subprocess.run([sys.executable, "-m", "kjax.peers", "0", "2"], input=ordinary + fatal,
                        capture_output=True, text=True, cwd=REPO, timeout=60)
  assert done.stderr == ordinary  # the warning and its continuation kept; no second line

