"""Stopping a training run cleanly on SIGTERM and SIGINT.

SLURM and Kubernetes send SIGTERM before they preempt a job (then SIGKILL after a grace
period, 30 s by default on Kubernetes); a user stops a run with Ctrl-C (SIGINT). While a
``StopSignals`` block is active the first such signal only sets a flag: the training loop
(``kjax.train``) finishes the steps in flight, saves a checkpoint at that step, flushes its
logs and raises ``kjax.errors.Interrupted`` (exit status 128 + the signal number: 143 for
SIGTERM, 130 for SIGINT). A second signal exits at once with that status: orbax commits a
checkpoint by renaming its temporary directory, so the last complete one is intact, and a
half-written one is removed by the next run's ``CheckpointManager``.

Outside the training loop, from the kjax command's first line (``kjax/__main__.py``,
``command``) to its last, the
first signal raises ``Stopped`` where the main thread is (``handled``): the job stops at
once, ``finally`` blocks remove temporary files, every file kjax writes is whole (written
atomically) and every complete checkpoint is kept; ``kjax.launcher.run`` prints one line
naming the phase (``phase``) and returns 143 or 130; the same command then finishes the job.

In a multi-process job the processes agree on where to stop: at each of the loop's sync
points every process contributes its flag (``multihost_utils.process_allgather``) and all
stop at the same step if any process was signalled, as JAX's preemption sync point does.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading

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
      _say(f"kjax: {name} again: exiting at once; every complete checkpoint is kept\n")
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
    import numpy as np  # noqa: PLC0415  (the command imports this module first: keep it light)
    flags = np.asarray(multihost_utils.process_allgather(np.int32(self.signum or 0)))
    received = [int(s) for s in flags.reshape(-1) if s]
    if not received:
      return None
    # SIGTERM (a preemption) wins over a Ctrl-C in another process.
    return signal.SIGTERM if signal.SIGTERM in received else received[0]


# The phases of a job, as ``phase`` marks them (the name → the words of the stop line).
PHASES = {
    "starting": "starting the command",  # kjax/__main__.py: imports, before the flags
    "start": "the start (config and data checks)",
    "data": "loading the data",
    "compile": "compiling",
    "training": "training",
    "final_checkpoint": "the final checkpoint",
    "final_figures": "the final figures",
    "evaluation": "the evaluation",
    "between_runs": "between the runs of a sweep",
    "barrier": "waiting for the job's other processes",
    "results": "writing the study's results",
    "repair": "the repair",
    "generate": "generating images",
}
# Test-only: ``KJAX_FAULT_AT=<phase>:<fault>`` injects ``fault`` when the job enters ``phase``.
FAULT_ENV = "KJAX_FAULT_AT"
FAULTS = ("SIGTERM", "SIGINT", "SIGKILL", "ENOSPC", "EACCES")
_current = ["start"]


def phase(name: str, path: str = "") -> None:
  """Marks that the job enters phase ``name`` (a key of ``PHASES``): the stop line names it.

  Also the fault-injection point of the tests (tests/test_fault_matrix.py): with the
  environment variable ``KJAX_FAULT_AT=<name>:<fault>``, entering ``name`` the first time
  sends this process ``SIGTERM``, ``SIGINT`` or ``SIGKILL`` (two, ``SIGTERM+SIGINT``: the
  second while the first is handled), or raises the ``OSError`` of a full disk (``ENOSPC``)
  or an unwritable folder (``EACCES``) on ``path``, as a library's write there would; the
  variable is then removed, so that a relaunch in the same process runs clean. Unset
  (always, outside tests), it costs one dictionary lookup.

  Raises:
    KeyError: ``name`` is not a phase. ValueError: the variable names no fault of
    ``FAULTS`` (nor two signals). OSError: the injected ``ENOSPC`` or ``EACCES``.
  """
  if name not in PHASES:
    raise KeyError(f"phase {name!r}: expected one of {', '.join(PHASES)}")
  _current[0] = name
  spec = os.environ.get(FAULT_ENV)
  if not spec or spec.partition(":")[0] != name:
    return
  fault = spec.partition(":")[2]
  del os.environ[FAULT_ENV]
  if fault in ("ENOSPC", "EACCES"):
    code = getattr(errno, fault)
    raise OSError(code, os.strerror(code), path or None)
  first, plus, second = fault.partition("+")
  if first not in ("SIGTERM", "SIGINT", "SIGKILL") or plus and (
      first == "SIGKILL" or second not in ("SIGTERM", "SIGINT")):
    raise ValueError(f"{FAULT_ENV}={spec!r}: expected a fault of {', '.join(FAULTS)}, or "
                     "two of SIGTERM and SIGINT (SIGTERM+SIGINT)")
  try:
    os.kill(os.getpid(), getattr(signal, first))  # the handler runs before this returns
  finally:
    if second:  # while the first is handled (``Stopped`` unwinding, or the loop's flag set)
      os.kill(os.getpid(), getattr(signal, second))


def stop_line(signum: int, rest: str) -> str:
  """The one line of a stop outside the training loop: ``kjax: stopped by SIGTERM in
  <the phase's words (PHASES)>; <rest>``."""
  return f"kjax: stopped by {signal.Signals(signum).name} in {PHASES[_current[0]]}; {rest}"


class Stopped(BaseException):
  """SIGTERM or SIGINT outside the training loop (``handled``): raised in the main thread
  where it was running, so that ``finally`` blocks (temporary files, locks) run; a
  ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` of kjax or a
  library swallows it. ``kjax.launcher.run`` turns it into one line and ``exit_code``.

  Attributes:
    signum: the signal (``signal.SIGTERM`` or ``signal.SIGINT``).
    exit_code: 128 + ``signum`` (143 or 130).
  """

  def __init__(self, signum: int):
    super().__init__(signal.Signals(signum).name)
    self.signum = int(signum)
    self.exit_code = exit_code(signum)


_stopping: list[int] = []  # the signal being handled by ``_stop_now`` (one at most)


def _stop_now(signum, frame) -> None:
  """The handler of ``handled``: the first signal raises ``Stopped``; a second one, while
  the first unwinds, exits at once."""
  del frame
  if _stopping:
    _say(f"kjax: {signal.Signals(signum).name} again: exiting at once; every complete "
         "checkpoint is kept\n")
    os._exit(exit_code(signum))
  _stopping.append(signum)
  raise Stopped(signum)


@contextlib.contextmanager
def handled():
  """SIGTERM and SIGINT raise ``Stopped`` in the main thread while the block runs (from
  the command's first line, ``command``, to the end of ``kjax.launcher.run``). Inside
  it, the training loop's ``StopSignals`` takes them over (a checkpoint at the step in
  flight) and gives them back. The previous handlers are restored on exit; nothing is
  installed outside the main thread."""
  previous = install()
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    _stopping.clear()


def install(handler=None) -> dict[int, object]:
  """Installs ``handler`` (default ``_stop_now``) for SIGTERM and SIGINT (main thread
  only); returns the previous handlers (empty elsewhere)."""
  if threading.current_thread() is not threading.main_thread():
    return {}
  _stopping.clear()
  return {s: signal.signal(s, handler or _stop_now) for s in SIGNALS}


def _after_the_job(signum, frame) -> None:
  del frame
  _say(f"kjax: {signal.Signals(signum).name} after the job ended; exiting\n")
  os._exit(exit_code(signum))


@contextlib.contextmanager
def command():
  """The whole of a kjax command (``kjax/__main__.py`` behind ``launch.py`` and ``kjax``;
  ``python -m kjax.generate``):
  SIGTERM and SIGINT raise ``Stopped`` (``handled``) from its first line; one that escapes
  the command (while importing, or parsing flags) is one line and exits 143 / 130 at once;
  after the block (the interpreter's exit) a signal exits at once with one line."""
  try:
    install()
    yield
  except Stopped as e:
    _say(stop_line(e.signum, "nothing was written; run the same command again") + "\n")
    exit_now(e.exit_code)
  finally:
    install(_after_the_job)


def exit_now(status: int) -> None:
  """Exits with ``status`` at once: stdio flushed, no exit hooks (a library's flush that
  would fail again on a full disk, a thread still saving: every complete file is kept)."""
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):
      pass
  os._exit(status)


def exit_code(signum: int) -> int:
  """The conventional exit status of a process stopped by ``signum``: 128 + its number."""
  return 128 + int(signum)


def _say(text: str) -> None:
  try:
    os.write(2, text.encode())
  except OSError:
    pass
