"""What a run prints: progress lines with an ETA for long loops outside the train step (the
evaluation's IWAE bound, features, classifiers; at most one line every ``every_s`` seconds),
and kjax's own INFO lines without the libraries' (``quiet_libraries``)."""

from __future__ import annotations

import errno
import logging as py_logging
import os
import threading
import time

from absl import logging


KJAX_DIR = os.path.dirname(os.path.abspath(__file__))


def quiet_libraries(handler: py_logging.Handler) -> None:
  """Keeps libraries' INFO lines (orbax's per-save lines, JAX's backend probing, TFDS) out
  of what ``handler`` logs: INFO comes from kjax only; warnings and errors from everyone,
  except those of a full or read-only disk (``is_disk_error``), also when a library's
  thread dies of one (``threading.excepthook``): a checkpoint's disk error is reported by
  kjax in one line (``kjax.checkpointing``), and kjax's own files fail with a
  ``WriteError`` line (``kjax.files``); a TensorBoard events file that stops for want of
  space is not reported apart.
  ``KJAX_VERBOSE=1`` keeps everything."""
  if os.environ.get("KJAX_VERBOSE", "") not in ("", "0"):
    return

  def keep(record: py_logging.LogRecord) -> bool:
    if record.pathname.startswith(KJAX_DIR):
      return True
    if record.levelno < py_logging.WARNING:
      return False
    # A full or read-only disk under orbax's save threads: hundreds of lines of tracebacks
    # (one per thread and array) for one fault that kjax reports itself, in one line
    # (kjax.checkpointing: WriteError).
    error = record.exc_info[1] if record.exc_info else ""
    return not is_disk_error(f"{record.getMessage()} {error}")
  handler.addFilter(keep)
  if getattr(threading.excepthook, "kjax", False):
    return  # installed by an earlier call
  default_hook = threading.excepthook

  def thread_hook(args: threading.ExceptHookArgs) -> None:
    if not is_disk_error(str(args.exc_value)):
      default_hook(args)
  thread_hook.kjax = True
  threading.excepthook = thread_hook


# How a full, over-quota or read-only disk reads in OSError text and TensorStore's errors.
DISK_ERROR_MARKERS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT),
                      os.strerror(errno.EROFS), f"os_error_code='{errno.ENOSPC}'",
                      f"os_error_code='{errno.EDQUOT}'", f"os_error_code='{errno.EROFS}'")


def is_disk_error(text: str) -> bool:
  """Whether an error's text is that of a full, over-quota or read-only disk."""
  return any(marker in text for marker in DISK_ERROR_MARKERS)


def hms(seconds: float) -> str:
  """``seconds`` as ``H:MM:SS`` (negative values as 0)."""
  seconds = max(0, int(seconds))
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
  """Logs ``kjax: WHAT: DONE/TOTAL UNIT (P%), ETA H:MM:SS`` as work is done.

  Args:
    what: the loop's name, e.g. ``'evaluation: likelihood (IWAE, k=5000)'``.
    total: units of work in the loop (> 0), e.g. images.
    unit: their name, e.g. ``'images'``.
    every_s: seconds between lines (the first comes after ``every_s``, so short loops stay
      silent; the last line comes when ``done`` reaches ``total``, if any line was logged).
  """

  def __init__(self, what: str, total: int, unit: str = "", every_s: float = 10.0):
    self.what, self.total, self.unit, self.every_s = what, max(1, int(total)), unit, every_s
    self._t0 = self._last = time.perf_counter()
    self._logged = False

  def update(self, done: int) -> None:
    """``done`` units (cumulative) are finished; logs a line if one is due."""
    now = time.perf_counter()
    finished = done >= self.total
    if now - self._last < self.every_s and not (finished and self._logged):
      return
    self._last, self._logged = now, True
    rate = done / max(now - self._t0, 1e-9)
    eta = (self.total - done) / max(rate, 1e-9)
    logging.info("kjax: %s: %d/%d %s (%.0f%%), %s", self.what, done, self.total, self.unit,
                 100 * done / self.total, "done in " + hms(now - self._t0) if finished
                 else "ETA " + hms(eta))
