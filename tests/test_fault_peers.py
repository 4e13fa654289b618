"""A process of a 2-process job (local processes on 127.0.0.1) lost outside the train
step: killed in a checkpoint save's multi-host sync, the coordinator (process 0) killed
during the final evaluation, and one stopped by SIGTERM while it waits at a barrier (it
stops at once, not when the other arrives). The survivor prints one line naming the loss,
no traceback or JAX stack dump, and exits non-zero within 30 s (kjax.peers). A peer killed
during training, and SIGTERM to one process in training: tests/test_scale_out.py."""

import signal
import time

import pytest

from tests.test_scale_out import _launch, _port


@pytest.mark.parametrize("victim,fault", [
    (1, "final_checkpoint:SIGKILL"),  # the survivor, process 0, is in the save's sync
    (0, "evaluation:SIGKILL"),  # the coordinator; the survivor waits at the end barrier
    (1, "barrier:SIGTERM"),  # waiting at a barrier; the survivor, process 0, evaluates
])
def test_a_peer_lost_outside_the_train_step_is_one_line_on_the_survivor(tmp_path, victim,
                                                                         fault):
  workdir = str(tmp_path / "study")
  port = _port()
  procs, logs = zip(*(_launch(workdir, port, i, 1, fault if i == victim else None,
                              evaluate=True) for i in range(2)))
  procs[victim].wait(timeout=300)
  killed_at = time.time()
  survivor = 1 - victim
  procs[survivor].wait(timeout=120)
  waited = time.time() - killed_at
  text = open(logs[survivor]).read()
  if fault.endswith("SIGKILL"):
    assert procs[victim].returncode == -signal.SIGKILL, open(logs[victim]).read()[-3000:]
  else:  # stopped in the wait, with its own line
    assert procs[victim].returncode == 143, open(logs[victim]).read()[-3000:]
    assert ("kjax: stopped by SIGTERM in waiting for the job's other processes; every "
            "complete checkpoint in") in open(logs[victim]).read()
  # 1: kjax saw the failed collective; SIGABRT (134 in a shell): JAX's client aborted first
  assert procs[survivor].returncode in (1, -signal.SIGABRT), text[-3000:]
  lost = [line for line in text.splitlines() if "another process of the job stopped" in line]
  assert len(lost) == 1 and lost[0].startswith(f"kjax: error: process {survivor} of 2: "), text
  for noise in ("Traceback", "Check failure stack trace", "Terminating process", "@ 0x"):
    assert noise not in text, text[-3000:]
  assert waited <= 30, waited  # not JAX's default heartbeat wait (100 s)
