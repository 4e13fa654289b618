"""On-disk caches of arrays computed from data alone, keyed by content (SHA-256).

Entries live in ``<cache_dir>/<kind>/<digest>.npy`` (``cache_dir``: ``config.data.cache_dir``,
else ``$KJAX_CACHE_DIR``, else ``~/.cache/kjax``). A changed input changes the digest, so a
stale entry is never reused. Every entry is validated when it is read: a bad one
(truncated, garbage, a pickle, a wrong shape, dtype or value) is recomputed and replaced,
with one warning line naming the file and what was wrong; an entry that cannot be written
(full disk, read-only cache) is skipped with a one-line warning. Writes are atomic, so
concurrent runs never read a partial file.

Used for the style thresholds of a split (``kjax.data.style``) and, since issue 27, the
domain evaluator's features of the real splits and their nearest-train distances
(``kjax.evaluation.base``), which every run on the same data and evaluator shares.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable

from absl import logging
import numpy as np

from kjax import errors
from kjax import files


def digest(*parts) -> str:
  """The first 32 hex digits of the SHA-256 of ``parts`` in order: numpy arrays by their
  bytes (C order), anything else by ``str``."""
  h = hashlib.sha256()
  for part in parts:
    h.update(np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray)
             else str(part).encode())
  return h.hexdigest()[:32]


def load_npy(path: str) -> tuple[np.ndarray | None, str]:
  """``(array, '')`` of a readable ``.npy`` file without pickled objects, else
  ``(None, why)``."""
  try:
    with open(path, "rb") as f:
      magic = f.read(6)
    if magic != b"\x93NUMPY":
      what = ("empty" if not magic else "a pickle" if magic[:1] == b"\x80" else
              f"it starts with {magic!r}")
      return None, f"not a .npy file: {what}"
    return np.load(path, allow_pickle=False), ""
  except (OSError, ValueError, EOFError) as e:  # truncated, an object array, a bad header
    reason = " ".join(str(e).split()) or type(e).__name__
    if "pickle" in reason:
      return None, "an array of pickled objects, which kjax never loads"
    return None, f"not a readable .npy file: {reason}"


def cached_npy(cache_dir: str | None, kind: str, key: str, compute: Callable[[], np.ndarray],
               check: Callable[[np.ndarray], str | None], what: str) -> np.ndarray:
  """``compute()``, or the valid entry ``<cache_dir>/<kind>/<key>.npy`` that holds it.

  Args:
    cache_dir: the cache's root, or None (no cache: ``compute()``).
    kind: the entries' folder, also the warnings' name (``'style'``, ``'features'``).
    key: the inputs' ``digest``.
    compute: the value, an array.
    check: what is wrong with a loaded array (shape, dtype, values), or None.
    what: the value's name in the warning of an entry not written.

  Returns:
    The array, from the cache or computed (and then cached).
  """
  if cache_dir is None:
    return compute()
  path = os.path.join(cache_dir, kind, key + ".npy")
  if os.path.isfile(path):
    cached, why = load_npy(path)
    why = why or check(cached)
    if not why:
      return cached
    logging.warning("kjax: the %s cache entry %s is bad (%s); recomputing and replacing it",
                    kind, path, why)
  value = compute()
  try:
    files.makedirs(os.path.dirname(path))
    files.save_npy(path, value)
  except errors.WriteError as e:  # a cache: the value is known, the run goes on
    logging.warning("kjax: %s are not cached: %s", what, e)
  return value


def check_array(array: np.ndarray, shape: tuple, dtype=np.float64,
                nonnegative: bool = True) -> str | None:
  """What is wrong with a cached float array: its ``shape`` (``None`` entries: any size),
  ``dtype``, NaN/Inf, negative values (with ``nonnegative``); or None."""
  if array.ndim != len(shape) or any(s is not None and s != a
                                     for s, a in zip(shape, array.shape)):
    want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1
                                                                           else "") + ")"
    return f"shape {array.shape}, expected {want}"
  if array.dtype != dtype:
    return f"dtype {array.dtype}, expected {np.dtype(dtype).name}"
  if not np.all(np.isfinite(array)):
    return "it holds NaN or infinite values"
  if nonnegative and array.size and array.min() < 0:
    return f"it holds negative values (min {array.min():g})"
  return None
