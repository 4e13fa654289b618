"""Stopping a training run cleanly on SIGTERM and SIGINT.

SLURM and Kubernetes send SIGTERM before they preempt a job (then SIGKILL after a grace
period, 30 s by default on Kubernetes); a user stops a run with Ctrl-C (SIGINT). While a
``StopSignals`` block is active the first such signal only sets a flag: the training loop
(``kjax.train``) finishes the steps in flight, saves a checkpoint at that step, flushes its
logs and raises ``kjax.errors.Interrupted`` (exit status 128 + the signal number: 143 for
SIGTERM, 130 for SIGINT). A second signal exits at once with that status: orbax commits a
checkpoint by renaming its temporary directory, so the last complete one is intact, and a
half-written one is removed by the next run's ``CheckpointManager``.

In a multi-process job the processes agree on where to stop: at each of the loop's sync
points every process contributes its flag (``multihost_utils.process_allgather``) and all
stop at the same step if any process was signalled, as JAX's preemption sync point does.
"""

from __future__ import annotations

import os
import signal
import threading

import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
  """A context manager that turns SIGTERM and SIGINT into a stop request.

  Handlers are installed only in the main thread (Python delivers signals there; a run
  started from another thread keeps the default behaviour) and the previous ones are
  restored on exit.

  Attributes:
    signum: the first signal received (``signal.SIGTERM`` or ``signal.SIGINT``), or None.
  """

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, object] = {}

  def __enter__(self) -> StopSignals:
    if threading.current_thread() is threading.main_thread():
      for s in SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous.clear()

  def _handle(self, signum, frame) -> None:
    del frame
    name = signal.Signals(signum).name
    # os.write, not print: the main thread may be inside a write to stderr (a log line),
    # and a buffered stream refuses a reentrant call.
    if self.signum is not None:  # the second signal: leave now
      _say(f"kjax: {name} again: exiting at once; the last complete checkpoint is kept\n")
      os._exit(128 + signum)
    self.signum = signum
    _say(f"kjax: {name} received: saving a checkpoint after the step in flight "
         "(send it again to exit at once)\n")

  def agreed(self, multiprocess: bool) -> int | None:
    """The signal every process stops on, or None to go on.

    Single process: the flag itself. ``multiprocess``: a collective; every process of the
    job must call it at the same step (``kjax.train`` calls it at its log points, which
    depend only on the step). A process not signalled itself stops too (with SIGTERM's
    status when another process received SIGTERM).

    Returns:
      ``signal.SIGTERM``, ``signal.SIGINT`` or None.
    """
    if not multiprocess:
      return self.signum
    from jax.experimental import multihost_utils  # noqa: PLC0415
    flags = np.asarray(multihost_utils.process_allgather(np.int32(self.signum or 0)))
    received = [int(s) for s in flags.reshape(-1) if s]
    if not received:
      return None
    # SIGTERM (a preemption) wins over a Ctrl-C in another process.
    return signal.SIGTERM if signal.SIGTERM in received else received[0]


def exit_code(signum: int) -> int:
  """The conventional exit status of a process stopped by ``signum``: 128 + its number."""
  return 128 + int(signum)


def _say(text: str) -> None:
  try:
    os.write(2, text.encode())
  except OSError:
    pass
