"""Atomic writes of every file kjax writes outside orbax (configs, summaries, results,
figures, frames, reports, metrics lines, caches).

Each helper writes a temporary file in the target's folder (``<path>.<pid>.<n>.tmp``), then
renames it over ``path`` (``os.replace``, atomic on POSIX). A full disk, an unwritable or
missing folder, a quota or a kill mid-write therefore leaves the previous version of
``path`` intact (or no file, if there was none) and no temporary file behind, except after
a kill, which can leave one ``*.tmp`` file that no reader of kjax lists.

Any ``OSError`` of the write (ENOSPC, EACCES, EROFS, EDQUOT, ENOENT, ...) is raised as
``kjax.errors.WriteError`` with the one-line message ``cannot write <path>: <OS error>``
(its ``errno`` is the OS error's); the command line prints it as ``kjax: error: ...``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import threading
from typing import IO, Any, Iterator

from kjax import errors

_counter = itertools.count()
_lock = threading.Lock()


def _tmp_path(path: str) -> str:
  with _lock:
    n = next(_counter)
  return f"{path}.{os.getpid()}.{n}.tmp"


def write_error(path: str, e: OSError) -> errors.WriteError:
  """The ``WriteError`` for ``e`` raised writing ``path``: ``cannot write <path>: <reason>``
  on one line, with ``e``'s errno."""
  if isinstance(e, errors.WriteError):
    return e
  reason = " ".join(str(e.strerror or e).split()) or type(e).__name__
  err = errors.WriteError(f"cannot write {path}: {reason}")
  err.errno = e.errno
  return err


def makedirs(path: str) -> str:
  """``os.makedirs(path, exist_ok=True)``; returns ``path``.

  Raises:
    WriteError: the folder cannot be created (read-only parent, full disk, a file in the
      way); the message names ``path`` and the OS error.
  """
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise write_error(path, e) from e
  return path


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", encoding: str | None = None) -> Iterator[IO[Any]]:
  """Opens a temporary file beside ``path`` for writing; on a clean exit of the block it is
  flushed, fsync'ed and renamed over ``path``.

  Args:
    path: the file to (re)write; its folder must exist.
    mode: ``'w'`` (text) or ``'wb'`` (binary).
    encoding: text encoding (``'w'`` only); None: UTF-8.

  Yields:
    The temporary file's object.

  Raises:
    WriteError: an ``OSError`` while opening, writing, flushing or renaming (full disk,
      unwritable or missing folder, ...): ``path`` keeps its previous content and the
      temporary file is removed. Any other exception of the block (a kill's
      ``KeyboardInterrupt`` included) likewise removes the temporary file, leaves ``path``
      as it was, and propagates unchanged.
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_write: mode={mode!r} is not allowed: expected 'w' or 'wb'")
  if mode == "w" and encoding is None:
    encoding = "utf-8"
  tmp = _tmp_path(path)
  try:
    f = open(tmp, mode, encoding=encoding)  # noqa: SIM115  (closed below)
  except OSError as e:
    raise write_error(path, e) from e
  try:
    try:
      yield f
      f.flush()
      os.fsync(f.fileno())
    finally:
      f.close()
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    if isinstance(e, OSError) and not isinstance(e, errors.KjaxError):
      raise write_error(path, e) from e
    raise


def write_text(path: str, text: str, encoding: str = "utf-8") -> str:
  """Writes ``text`` to ``path`` atomically; returns ``path``.

  Raises:
    WriteError: see ``atomic_write``.
  """
  with atomic_write(path, "w", encoding=encoding) as f:
    f.write(text)
  return path


def update_text(path: str, text: str) -> bool:
  """``write_text(path, text)`` unless ``path`` already holds exactly ``text`` (then the
  file is left alone, modification time included: a finished run launched again rewrites
  nothing); returns whether it wrote.

  Raises:
    WriteError: see ``atomic_write``.
  """
  try:
    with open(path, encoding="utf-8") as f:
      if f.read() == text:
        return False
  except (OSError, UnicodeDecodeError):
    pass
  write_text(path, text)
  return True


def write_bytes(path: str, data: bytes) -> str:
  """Writes ``data`` to ``path`` atomically; returns ``path``.

  Raises:
    WriteError: see ``atomic_write``.
  """
  with atomic_write(path, "wb") as f:
    f.write(data)
  return path


def write_json(path: str, obj: Any) -> str:
  """Writes ``obj`` as JSON (2-space indent, sorted keys, trailing newline) to ``path``
  atomically; returns ``path``.

  The text is built before the file is opened, so an object that is not JSON-serialisable
  (TypeError, ValueError) leaves ``path`` untouched too.

  Raises:
    WriteError: see ``atomic_write``.
  """
  return write_text(path, json_text(obj))


def json_text(obj: Any) -> str:
  """``obj`` as ``write_json`` writes it: 2-space indent, sorted keys, trailing newline."""
  return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def update_json(path: str, obj: Any) -> bool:
  """``update_text`` of ``obj`` as ``write_json`` writes it; returns whether it wrote.

  Raises:
    WriteError: see ``atomic_write``; TypeError, ValueError: ``obj`` is not JSON.
  """
  return update_text(path, json_text(obj))


def _format(path: str) -> str:
  return os.path.splitext(path)[1].lower().lstrip(".")


def save_figure(fig, path: str, **savefig_kwargs: Any) -> str:
  """``fig.savefig`` into ``path`` atomically, in the format of its extension (``.png``,
  ``.pdf``, ``.svg``, ``.jpg``, ...); ``savefig_kwargs`` go to ``savefig``. Returns
  ``path``; the figure is not closed.

  Raises:
    WriteError: see ``atomic_write``.
  """
  savefig_kwargs.setdefault("format", _format(path))
  with atomic_write(path, "wb") as f:
    fig.savefig(f, **savefig_kwargs)
  return path


def save_image(image, path: str, **kwargs: Any) -> str:
  """``PIL.Image.Image.save`` into ``path`` atomically, in the format of its extension
  (``.png``, ``.gif``, ``.jpg``, ...); ``kwargs`` go to ``save`` (e.g. ``save_all``,
  ``append_images``, ``duration``, ``loop`` for a GIF). Returns ``path``.

  Raises:
    WriteError: see ``atomic_write``.
  """
  from PIL import Image  # noqa: PLC0415

  fmt = kwargs.pop("format", None) or Image.registered_extensions().get(
      os.path.splitext(path)[1].lower())
  if fmt is None:
    raise ValueError(f"save_image: unknown image extension of {path!r}")
  buf = io.BytesIO()  # encoded first: an encoder error leaves no temporary file either
  image.save(buf, format=fmt, **kwargs)
  return write_bytes(path, buf.getvalue())


def save_npz(path: str, **arrays: Any) -> str:
  """``np.savez_compressed`` of ``arrays`` (name → array) into ``path`` atomically; returns
  ``path``. Read back with ``np.load(path, allow_pickle=False)``.

  Raises:
    WriteError: see ``atomic_write``.
  """
  import numpy as np  # noqa: PLC0415

  with atomic_write(path, "wb") as f:
    np.savez_compressed(f, **arrays)
  return path


def save_npy(path: str, array: Any) -> str:
  """``np.save`` of one array (no pickles) into ``path`` atomically; returns ``path``.

  Raises:
    WriteError: see ``atomic_write``.
  """
  import numpy as np  # noqa: PLC0415

  with atomic_write(path, "wb") as f:
    np.save(f, np.asarray(array), allow_pickle=False)
  return path
