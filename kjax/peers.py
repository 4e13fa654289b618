"""A process of a multi-process job that dies, in any phase: one line on every survivor.

A peer that dies inside a collective (a train step's all-reduce, orbax's multi-host sync
of a save, the end-of-run barrier) surfaces in the survivors in more than one way: an
exception in the main thread of whatever type the collective raises (``JaxRuntimeError``,
a Gloo ``RuntimeError``, a barrier's ``DEADLINE_EXCEEDED``), or, when JAX's coordination
service notices the missing heartbeats (or loses process 0, which hosts it), a C++
``LOG(FATAL)`` from the client's error-polling thread: an abort with a stack dump that no
Python code can catch (its ``missed_heartbeat_callback`` cannot be set from Python).

kjax answers both:

* ``is_lost``: an exception out of a job of several processes is a lost peer when JAX's
  coordination service reports a process down (or cannot be reached: process 0 is gone);
  ``kjax.launcher`` then prints one line naming it and exits 1 at once (JAX's shutdown
  barrier would wait for the dead process). Any other exception keeps its traceback.
* ``guard_stderr``: the process's stderr (fd 2) goes through a small guard process
  (``python -m kjax.peers``) that passes every line on, except JAX's fatal report and its
  stack dump, which become one ``kjax: error:`` line. The survivor's exit status is then
  the abort's (134), non-zero.

``HEARTBEAT_S``: JAX's coordination service declares a silent process dead after this many
seconds (JAX's default, 100 s, left survivors waiting for minutes).
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time

HEARTBEAT_S = 10
# JAX's client aborts with this line when the coordination service reports an error.
FATAL = "Terminating process because the JAX distributed service detected fatal errors"
# A log line (absl format), of C++ ('E1206 14:28:11.365613   27482 file.cc:159] ...') or
# of Python ('I1206 14:15:00.123456 140485 actions.py:197] ...').
_LOG = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\]")
_CPP = re.compile(r"^\S+ \S+ +\d+ [\w./-]+\.(cc|h):")
_QUIET_AFTER_S = 2.0  # held C++ warnings are passed on after this long without a fatal


def lost_line(process: int, count: int, detail: str) -> str:
  """The one line every survivor prints: which process, what JAX reported, what to do."""
  detail = " ".join(detail.split())[:300]
  return (f"kjax: error: process {process} of {count}: another process of the job stopped "
          f"({detail}); re-launch every process with the same command to resume from the "
          "last complete checkpoint")


def is_lost(wait_s: float = HEARTBEAT_S + 5) -> str | None:
  """Whether a process of this job is lost: asks JAX's coordination service which
  processes are alive, for up to ``wait_s`` seconds (it declares a process dead after
  ``HEARTBEAT_S`` without a heartbeat).

  Returns:
    A description of the loss (``'process 1 is down'``, ``'the coordination service on
    process 0 is unreachable: ...'``), or None: every process is alive (an error just
    raised is then the process's own).
  """
  import jax  # noqa: PLC0415
  from jax._src import distributed  # noqa: PLC0415  (its client: get_live_nodes)

  client = distributed.global_state.client
  count = jax.process_count()
  if client is None or count == 1:
    return None
  deadline = time.monotonic() + wait_s
  while True:
    try:
      live = set(client.get_live_nodes(list(range(count))))
    except Exception as e:  # noqa: BLE001  (the service is gone with process 0)
      from kjax.checkpointing import first_line  # noqa: PLC0415  (the guard stays light)
      return ("the coordination service on process 0 is unreachable: "
              f"{(first_line(e) or type(e).__name__)[:120]}")
    down = sorted(set(range(count)) - live)
    if down:
      return f"process {', '.join(map(str, down))} is down"
    if time.monotonic() > deadline:
      return None
    time.sleep(0.5)


def guard_stderr(process: int, count: int) -> None:
  """Routes this process's fd 2 through ``python -m kjax.peers PROCESS COUNT`` (``main``).

  The guard ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group) and
  exits when this process's end of the pipe closes (when it exits or is killed).
  """
  read, write = os.pipe()
  subprocess.Popen([sys.executable, "-m", "kjax.peers", str(process), str(count)],
                   stdin=read, stdout=subprocess.DEVNULL, close_fds=True)
  os.close(read)
  sys.stderr.flush()
  os.dup2(write, 2)
  os.close(write)


def main(argv: list[str]) -> None:
  """The guard: copies stdin to stderr line by line; JAX's fatal report, its C++ log lines
  and stack dump become one ``lost_line`` (none if kjax already printed one)."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  process, count = int(argv[1]), int(argv[2])
  out = sys.stderr.buffer
  held: list[bytes] = []  # C++ log lines (and their continuations) not yet passed on
  held_since = 0.0
  reported = fatal = False
  pending = b""
  fd = sys.stdin.fileno()
  while True:
    ready, _, _ = select.select([fd], [], [], _QUIET_AFTER_S)
    if not ready:  # quiet: the held lines were not a fatal report
      out.write(b"".join(held))
      out.flush()
      held = []
      continue
    chunk = os.read(fd, 65536)
    if not chunk:
      break
    pending += chunk
    *lines, pending = pending.split(b"\n")
    for raw in lines:
      line = raw.decode("utf-8", "replace")
      if fatal:
        continue  # the stack dump after the fatal line
      if FATAL in line:
        fatal = True
        if not reported:
          detail = line.split("absl::Status:", 1)[-1].strip() or "JAX's coordination service"
          out.write((lost_line(process, count, detail) + "\n").encode())
        held = []
        continue
      if line.startswith("kjax: error: process") and "another process" in line:
        reported = True
      is_log = bool(_LOG.match(line))
      if (is_log and _CPP.match(line)) or (held and not is_log and not line.startswith("kjax:")):
        if not held:
          held_since = time.monotonic()
        held.append(raw + b"\n")
        continue
      out.write(b"".join(held) + raw + b"\n")
      held = []
    if held and time.monotonic() - held_since > _QUIET_AFTER_S:
      out.write(b"".join(held))
      held = []
    out.flush()
  if not fatal:
    out.write(b"".join(held) + pending)
  out.flush()


if __name__ == "__main__":
  main(sys.argv)
