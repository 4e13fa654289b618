"""How soon a process of a 2-process job stops on SIGTERM while it waits at a barrier for
process 0's final evaluation: kjax.sharding.barrier waits in a helper thread, so the main
thread handles the signal at once rather than when process 0 arrives.

    .venv/bin/python benchmarks/barrier_signal.py

Prints each process's exit status, seconds after the signal, and its last kjax line.
Local processes on 127.0.0.1, the tests' small sweep (tests/test_scale_out.py), with
IWAE k = 3000 so that process 0's evaluation lasts several seconds.
"""

import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests import test_scale_out  # noqa: E402

WAITING = "kjax: waiting for the job's other processes (kjax_sweep_chunk_"


def main():
  workdir = os.path.join(tempfile.mkdtemp(prefix="kjax_barrier_signal"), "study")
  port = test_scale_out._port()
  procs, logs = zip(*(test_scale_out._launch(workdir, port, i, 2, evaluate=True,
                                             extra=("--config.eval.iwae_samples=3000",))
                      for i in range(2)))

  def read(i):
    with open(logs[i]) as f:
      return f.read()

  # Process 1 waits at the barrier after the training while process 0 evaluates.
  while WAITING not in read(1) or "kjax: evaluation [" not in read(0):
    if procs[0].poll() is not None:
      sys.exit(read(0)[-3000:])
    time.sleep(0.2)
  sent = time.time()
  procs[1].send_signal(signal.SIGTERM)
  for i in (1, 0):
    procs[i].wait(timeout=600)
    last = [line for line in read(i).splitlines() if line.startswith("kjax:")]
    print(f"process {i}: exit {procs[i].returncode} after {time.time() - sent:.1f} s: "
          f"{last[-1] if last else '(no kjax line)'}")


if __name__ == "__main__":
  main()
