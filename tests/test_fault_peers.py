"""A process of a 2-process job (local processes on 127.0.0.1) lost outside the train
step: killed in a checkpoint save's multi-host sync, the coordinator (process 0) killed
during the final evaluation, and one stopped by SIGTERM while it waits at a barrier (at
once, not when the other arrives). The survivor prints one line naming the loss, no
traceback or JAX stack dump, and exits non-zero within 30 s (kjax.peers). A peer killed
during training, and SIGTERM to one process in training: tests/test_scale_out.py."""

import signal
import time

import pytest

from tests.test_scale_out import _launch, _port

WAITING = "kjax: waiting for the job's other processes (kjax_sweep_chunk_"


def _read(path):
  with open(path) as f:
    return f.read()


def _check_survivor(proc, log, survivor, lost_at):
  proc.wait(timeout=120)
  waited = time.time() - lost_at
  text = _read(log)
  # 1: kjax saw the failed collective; SIGABRT (134 in a shell): JAX's client aborted first
  assert proc.returncode in (1, -signal.SIGABRT), text[-3000:]
  lost = [line for line in text.splitlines() if "another process of the job stopped" in line]
  assert len(lost) == 1 and lost[0].startswith(f"kjax: error: process {survivor} of 2: "), text
  for noise in ("Traceback", "Check failure stack trace", "Terminating process", "@ 0x"):
    assert noise not in text, text[-3000:]
  assert waited <= 30, waited  # not JAX's default heartbeat wait (100 s)


@pytest.mark.parametrize("victim,fault", [
    (1, "final_checkpoint:SIGKILL"),  # the survivor, process 0, is in the save's sync
    (0, "evaluation:SIGKILL"),  # the coordinator; the survivor waits at the end barrier
])
def test_a_peer_killed_outside_the_train_step_is_one_line_on_the_survivor(tmp_path, victim,
                                                                         fault):
  workdir = str(tmp_path / "study")
  port = _port()
  procs, logs = zip(*(_launch(workdir, port, i, 1, fault if i == victim else None,
                              evaluate=True) for i in range(2)))
  procs[victim].wait(timeout=300)
  assert procs[victim].returncode == -signal.SIGKILL, _read(logs[victim])[-3000:]
  _check_survivor(procs[1 - victim], logs[1 - victim], 1 - victim, time.time())


def test_a_process_signalled_at_a_barrier_stops_at_once_and_the_other_says_so(tmp_path):
  """Process 1 waits at the barrier after training while process 0 evaluates (IWAE
  k = 3000: seconds); SIGTERM to process 1 stops it at once with its own line (before, it
  stopped when process 0 arrived: benchmarks/barrier_signal.py)."""
  workdir = str(tmp_path / "study")
  port = _port()
  procs, logs = zip(*(_launch(workdir, port, i, 1, evaluate=True,
                              extra=("--config.eval.iwae_samples=3000",)) for i in range(2)))
  deadline = time.time() + 300
  while WAITING not in _read(logs[1]) or "kjax: evaluation [" not in _read(logs[0]):
    assert procs[0].poll() is None and time.time() < deadline, _read(logs[0])[-3000:]
    time.sleep(0.2)
  sent = time.time()
  procs[1].send_signal(signal.SIGTERM)
  procs[1].wait(timeout=120)
  assert time.time() - sent < 5, time.time() - sent  # process 0 evaluates for longer
  assert procs[0].poll() is None  # still evaluating: process 1 did not wait for it
  assert procs[1].returncode == 143, _read(logs[1])[-3000:]
  assert ("kjax: stopped by SIGTERM in waiting for the job's other processes; every "
          "complete checkpoint in") in _read(logs[1])
  _check_survivor(procs[0], logs[0], 0, time.time())
