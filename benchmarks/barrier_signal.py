"""How soon a process of a 2-process job stops on SIGTERM while it waits at the end-of-run
barrier (process 0 evaluating): kjax.sharding.barrier waits in a helper thread, so the main
thread handles the signal at once rather than when process 0 arrives.

    .venv/bin/python benchmarks/barrier_signal.py

Prints each process's exit status, seconds after the signal, and its last kjax line.
Local processes on 127.0.0.1, the tests' small sweep (tests/test_scale_out.py), with
IWAE k = 3000 so that process 0's evaluation lasts several seconds.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests import test_scale_out  # noqa: E402


def main():
  workdir = os.path.join(tempfile.mkdtemp(prefix="kjax_barrier_signal"), "study")
  port = test_scale_out._port()
  popen = subprocess.Popen

  def with_long_evaluation(args, **kwargs):  # the flags before the three distributed ones
    return popen([*args[:-3], "--config.eval.iwae_samples=3000", *args[-3:]], **kwargs)

  test_scale_out.subprocess.Popen = with_long_evaluation
  procs, logs = zip(*(test_scale_out._launch(workdir, port, i, 2, evaluate=True)
                      for i in range(2)))
  while "kjax: evaluation [" not in open(logs[0]).read():  # process 1 is at the barrier
    if procs[0].poll() is not None:
      sys.exit(open(logs[0]).read()[-3000:])
    time.sleep(0.2)
  time.sleep(1.0)
  sent = time.time()
  procs[1].send_signal(signal.SIGTERM)
  for i in (1, 0):
    procs[i].wait(timeout=600)
    last = [line for line in open(logs[i]).read().splitlines() if line.startswith("kjax:")]
    print(f"process {i}: exit {procs[i].returncode} after {time.time() - sent:.1f} s: "
          f"{last[-1] if last else '(no kjax line)'}")


if __name__ == "__main__":
  main()
