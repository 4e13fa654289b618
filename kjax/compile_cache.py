"""The persistent compilation cache: compiled XLA programs kept on disk between launches.

A second launch of the same experiment (a resumed run, a sweep's next scheduler part, the
same config with another seed) loads its compiled programs instead of compiling them: the
β-VAE train step's 9–10 s of compilation on this CPU becomes a file read. It is JAX's own
cache (``jax_compilation_cache_dir``), on by default, in

    $KJAX_CACHE_DIR/xla/<key>        (KJAX_CACHE_DIR defaults to ~/.cache/kjax)

where ``<key>`` digests the jax and jaxlib versions, ``XLA_FLAGS`` and the CPU (model and
feature flags): JAX's own cache key covers the program, the versions and the compile
options but not the host CPU, and a program compiled for another CPU's instruction set may
be refused or wrong on this one (jax-ml/jax#38445). Each combination thus has its own
folder, and a stale entry is never loaded. Past 2 GiB, ``enable`` deletes the oldest
programs down to 1 GiB. ``KJAX_COMPILATION_CACHE=0`` turns the cache off; deleting the
folder clears it. Multi-process jobs compile their programs themselves. A run with a warm
cache equals the run that compiled its programs, bit for bit (``tests/test_compile_cache.py``).

If the process already configured JAX's cache (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config.update('jax_compilation_cache_dir', ...)``), kjax leaves that choice alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import threading

import jax

# Off switch: KJAX_COMPILATION_CACHE=0 (or off/false/no).
ENV_SWITCH = "KJAX_COMPILATION_CACHE"
_OFF = ("0", "off", "false", "no")
_ON = ("", "1", "on", "true", "yes")

# Beyond this many bytes of compiled programs, ``enable`` deletes the oldest entries.
MAX_SIZE_BYTES = 2 * 1024 ** 3

_lock = threading.Lock()
_state = {"enabled": None, "dir": None, "hits": 0, "misses": 0}


def _cpu_identity() -> str:
  """The host CPU's model name and feature flags (``/proc/cpuinfo`` on Linux), else
  ``platform.processor()``: what decides which instructions a compiled CPU program may use."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
      lines = f.read().splitlines()
  except OSError:
    return platform.processor()
  wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part")
  seen = {}
  for line in lines:
    name, _, value = line.partition(":")
    name = name.strip()
    if name in wanted and name not in seen:
      seen[name] = " ".join(sorted(value.split())) if name in ("flags", "Features") else \
          value.strip()
  return "|".join(f"{k}={seen[k]}" for k in sorted(seen))


def cache_key() -> str:
  """16 hex digits naming this process's program-compatibility class: jax and jaxlib
  versions, ``XLA_FLAGS``, the machine architecture and the CPU (``_cpu_identity``)."""
  import jaxlib  # noqa: PLC0415
  parts = [jax.__version__, getattr(jaxlib, "__version__", ""),
           os.environ.get("XLA_FLAGS", ""), platform.machine(), _cpu_identity()]
  return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def default_dir() -> str:
  """``$KJAX_CACHE_DIR/xla/<cache_key()>`` (``~/.cache/kjax/xla/...`` by default)."""
  root = os.environ.get("KJAX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "kjax")
  return os.path.join(root, "xla", cache_key())


def _count(event: str, **_) -> None:
  if event == "/jax/compilation_cache/cache_hits":
    _state["hits"] += 1
  elif event == "/jax/compilation_cache/cache_misses":
    _state["misses"] += 1


def enable() -> str | None:
  """Turns JAX's persistent compilation cache on in ``default_dir()``, once per process;
  call before the first compilation that should be cached (every kjax entry point does).

  Small CPU programs are cached too (``jax_persistent_cache_min_compile_time_secs=0``,
  ``jax_persistent_cache_min_entry_size_bytes=-1``): on CPU most of kjax's programs
  compile in under JAX's default one-second threshold, yet add up to seconds per launch.

  Off in a multi-process job (``jax.distributed`` initialized): JAX writes entries from
  process 0 only while the others read the folder. Call it after
  ``jax.distributed.initialize``.

  Returns:
    The cache folder in use (kjax's or one the process configured itself), or ``None``
    when ``KJAX_COMPILATION_CACHE=0`` turned it off or in a multi-process job. Never
    raises: a folder that cannot be made leaves the cache off with a warning (JAX itself
    warns, and compiles, when an entry cannot be read or written).
  """
  with _lock:
    if _state["enabled"] is not None:
      return _state["dir"]
    jax.monitoring.register_event_listener(_count)  # once: this body runs once
    switch = os.environ.get(ENV_SWITCH, "").strip().lower()
    switched_off = switch in _OFF
    if switch not in _OFF + _ON:
      from absl import logging  # noqa: PLC0415
      logging.warning("kjax: %s=%r is not a switch (expected one of %s); the compilation "
                      "cache stays on", ENV_SWITCH, switch, ", ".join(_OFF + _ON[1:]))
    # In a multi-process job JAX writes entries from process 0 only, while the others read
    # the same folder: a job compiles its programs itself.
    if switched_off or jax.distributed.is_initialized():
      _state.update(enabled=False, dir=None)
      return None
    path = jax.config.jax_compilation_cache_dir
    if not path:
      path = default_dir()
      try:
        os.makedirs(path, exist_ok=True)
      except OSError as e:
        from absl import logging  # noqa: PLC0415
        logging.warning("kjax: no compilation cache (%s); set KJAX_CACHE_DIR to a writable "
                        "folder or %s=0", e, ENV_SWITCH)
        _state.update(enabled=False, dir=None)
        return None
      jax.config.update("jax_compilation_cache_dir", path)
      jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
      jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
      # No jax_compilation_cache_max_size: JAX's bounded cache lists and stats the whole
      # folder on every write (measured here: 23 ms per write at 1,000 entries, 166 ms at
      # 4,000), which cost the test suite minutes. An entry read while another process
      # writes it fails to decompress: JAX warns and compiles the program itself.
      _prune(path, MAX_SIZE_BYTES)
    _state.update(enabled=True, dir=path)
    return path


def _prune(path: str, max_bytes: int) -> None:
  """Deletes the least recently written entries of the cache folder ``path`` until it
  holds at most half of ``max_bytes`` (bytes), if it holds more than ``max_bytes``."""
  try:
    stats = [(e.stat(), e.path) for e in os.scandir(path) if e.is_file()]
    entries = sorted((st.st_mtime, st.st_size, name) for st, name in stats)
  except OSError:
    return
  total = sum(size for _, size, _ in entries)
  if total <= max_bytes:
    return
  for _, size, name in entries:
    if total <= max_bytes // 2:
      break
    with contextlib.suppress(OSError):
      os.remove(name)
      total -= size


def stats() -> dict[str, object]:
  """``{"dir": str | None, "hits": int, "misses": int}``: the cache folder and the programs
  loaded from it / compiled and written to it by this process so far (JAX's
  ``/jax/compilation_cache/*`` monitoring events; counted once ``enable`` was called)."""
  return {"dir": _state["dir"], "hits": _state["hits"], "misses": _state["misses"]}
