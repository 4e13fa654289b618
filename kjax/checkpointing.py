"""Periodic, atomic, resumable checkpoints with orbax ``CheckpointManager``.

Each training checkpoint holds, beside the arrays (``state``, ``sums``), a JSON item
``records``: the config the run was trained with, its metric history up to the step (the
rows of ``metrics.jsonl``), the optimiser changes made on resume (``config_history``) and a
checksum of every array (``checksums``). The workdir's ``config.json``, ``metrics.jsonl`` and
``summary.json`` are readable copies, rebuilt from it (``kjax.train``).

A checkpoint that cannot be restored (truncated or missing files, another tree) or whose
arrays fail their checksums is never resumed: ``restore_newest`` falls back to the newest
one that restores and moves the bad ones aside to ``WORKDIR/checkpoints.corrupt/<step>``
(kept for inspection, never deleted).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from typing import Any, Iterator, Sequence

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from kjax import errors
from kjax import sharding as ksharding
from kjax import workdir_config

CORRUPT_DIR = "checkpoints.corrupt"  # beside checkpoints/: the checkpoints set aside
RECORDS = "records"  # a checkpoint's JSON item: config, history, config_history, checksums
RECORDS_FORMAT = 1


def checksums(tree: Any) -> dict[str, str]:
  """A checksum of every array in ``tree``, by its path (``jax.tree_util.keystr``).

  Each is BLAKE2b (``hashlib``, 128 bits) of the array's dtype (as JAX holds it: int32
  for a Python int without x64), shape and bytes, read on the host (the copy orbax makes to save it anyway; PRNG keys by their key data). Equal arrays
  give equal checksums; damaged bytes go unnoticed with odds about 2⁻¹²⁸. A collective in a
  multi-process job when an array spans other processes' devices (``kjax.sharding.to_host``:
  every process calls it with the same tree).

  Args:
    tree: a pytree of arrays (``jax.Array`` or numpy), e.g. a train state.

  Returns:
    ``{"['params']['Dense_0']['kernel']": '3f2a…' (32 hex digits), …}``.
  """
  def data(x):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.key_data(x)
    return x

  with_paths = jax.tree_util.tree_leaves_with_path(tree)
  host = ksharding.to_host([data(x) for _, x in with_paths])
  out = {}
  for (path, _), array in zip(with_paths, host):
    array = np.asarray(array)
    # JAX's dtype of the value (int32 without x64): a Python int or an int64 restored
    # from a saved int32 hashes as it was saved.
    array = np.ascontiguousarray(array.astype(jax.dtypes.canonicalize_dtype(array.dtype),
                                              copy=False))
    digest = hashlib.blake2b(f"{array.dtype.str}{array.shape}".encode(), digest_size=16)
    digest.update(array.tobytes())
    out[jax.tree_util.keystr(path)] = digest.hexdigest()
  return out


# Reading a checkpoint's records needs no orbax: the light readers live with the workdir's
# config (kjax.workdir_config, imported by the command line before JAX).
read_records = workdir_config.read_records
read_records_at = workdir_config.read_records_at


class Checkpointer:
  """Saves ``{name: pytree}`` items, keeping the last ``keep`` checkpoints.

  Orbax writes each step to a temporary directory and renames it when complete, so a
  killed run never leaves a partial checkpoint that ``restore_latest`` would pick up, and
  an older checkpoint is only deleted once a newer one is complete.

  Args:
    directory: the checkpoint directory (``WORKDIR/checkpoints``), created on first save.
    keep: number of most recent checkpoints kept.
    reader: only restores (``kjax.generate``, evaluation): leaves the temporary folders
      of a save in progress alone (the run may still be training).
  """

  def __init__(self, directory: str, keep: int, reader: bool = False):
    # cleanup_tmp_directories: a save cut short (a kill, a full disk) leaves orbax's
    # temporary directory, which is never a checkpoint; the next run removes it.
    # Asynchronous in one process only: orbax ends a save with a barrier that is a device
    # collective (multihost_utils.sync_global_devices), run by its background thread. In
    # a job of several processes it ran beside the main thread's collectives (the next
    # run's save, the next steps), which the processes could then enter in different
    # orders, each waiting on the other for ever (seen in tests/test_scale_out.py's
    # relaunch). There a save completes before the loop goes on.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=jax.process_count() == 1,
                                           cleanup_tmp_directories=not reader)
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(self.directory, options=options)
    self._closed = False

  def latest_step(self) -> int | None:
    """The step of the newest complete checkpoint, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """The steps of every complete checkpoint kept, ascending."""
    return sorted(self._manager.all_steps())

  def restore_latest(self, templates: dict[str, Any]) -> dict[str, Any] | None:
    """Restores the newest checkpoint into the structure (and shardings) of ``templates``.

    Returns:
      The restored items, or None when there is no checkpoint.

    Raises:
      CheckpointMismatchError: see ``restore``.
    """
    step = self._manager.latest_step()
    return None if step is None else self.restore(step, templates)

  def restore(self, step: int, templates: dict[str, Any]) -> dict[str, Any]:
    """Restores the checkpoint of ``step`` into the structure of ``templates`` and verifies
    every array against the checksums saved with it (``checksums``).

    Returns:
      ``{name: pytree}`` for each name of ``templates``, plus ``'records'`` (the JSON item:
      ``config``, ``history``, ``config_history``, ``checksums``) when the checkpoint has
      one (checkpoints saved by an older kjax have none and are not verified).

    Raises:
      CheckpointMismatchError: the checkpoint's tree or shapes differ from ``templates``
        (a different model, or a run saved by an older kjax), or its files cannot be read
        (truncated, missing) or an array differs from its checksum (``corrupt`` is then
        True); nothing is changed on disk.
    """
    abstract = {k: jax.tree.map(ocp.utils.to_shape_dtype_struct, v) for k, v in templates.items()}
    args = {k: ocp.args.StandardRestore(v) for k, v in abstract.items()}
    has_records = os.path.isdir(os.path.join(self.directory, str(step), RECORDS))
    if has_records:
      args[RECORDS] = ocp.args.JsonRestore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**args))
    except ValueError as e:
      if isinstance(e, (json.JSONDecodeError, UnicodeDecodeError)):  # damaged metadata
        raise errors.CheckpointMismatchError(
            f"the checkpoint at step {step} in {self.directory} cannot be read "
            f"(damaged metadata: {first_line(e)})", corrupt=True) from None
      raise errors.CheckpointMismatchError(
          f"the checkpoint at step {step} in {self.directory} does not match the state "
          f"this config builds ({first_line(e)}); use the config it was trained with, or "
          "another --workdir") from None
    except Exception as e:  # noqa: BLE001  (orbax and TensorStore raise bare Exceptions)
      raise errors.CheckpointMismatchError(
          f"the checkpoint at step {step} in {self.directory} cannot be read "
          f"({type(e).__name__}: {first_line(e)})", corrupt=True) from None
    out = {k: restored[k] for k in templates}
    if has_records:
      records = restored[RECORDS]
      saved = records.get("checksums", {}) if isinstance(records, dict) else None
      if not isinstance(saved, dict) or not all(isinstance(saved.get(n, {}), dict)
                                                for n in templates):
        raise errors.CheckpointMismatchError(
            f"the checkpoint at step {step} in {self.directory} cannot be read (its "
            f"{RECORDS} item is not a JSON object)", corrupt=True)
      for name in templates:
        if name not in saved:
          continue
        found = checksums(out[name])
        bad = [p for p in sorted(set(found) | set(saved[name]))
               if found.get(p) != saved[name].get(p)]
        if bad:
          raise errors.CheckpointMismatchError(
              f"the checkpoint at step {step} in {self.directory} is damaged: {len(bad)} "
              f"array(s) of {name!r} differ from their checksums (first: {name}{bad[0]})",
              corrupt=True)
      out[RECORDS] = records
    return out

  def set_aside(self, step: int) -> str:
    """Moves the checkpoint of ``step`` to ``WORKDIR/checkpoints.corrupt/<step>`` (a
    timestamp is appended if that exists) and returns the new path. Only process 0 moves
    (``restore_newest`` then has every process re-read the list of steps).

    Raises:
      OSError: the move failed.
    """
    target = os.path.join(os.path.dirname(self.directory), CORRUPT_DIR, str(step))
    if jax.process_index() == 0:
      self._manager.wait_until_finished()
      os.makedirs(os.path.dirname(target), exist_ok=True)
      if os.path.exists(target):
        target += time.strftime(".%Y%m%d-%H%M%S")
      shutil.move(os.path.join(self.directory, str(step)), target)
    self._manager.reload()
    return target

  def save(self, step: int, items: dict[str, Any],
           records: dict[str, Any] | None = None) -> None:
    """Starts an asynchronous save of ``items`` as ``step`` (a no-op if ``step`` exists:
    a deterministic run that replays steps writes the same state again).

    Args:
      step: the training step.
      items: ``{name: pytree of arrays}`` (``state``, ``sums``).
      records: JSON-serialisable ``{'config', 'history', 'config_history'}`` saved as the
        ``records`` item, with the ``checksums`` of every array of ``items`` added
        (verified by ``restore``); None saves the arrays alone.

    Raises:
      WriteError: this save, or the previous one still being written, failed on the disk
        (full, quota, read-only); the checkpoints completed before it are intact.
    """
    if step not in self._manager.all_steps():
      args = {k: ocp.args.StandardSave(v) for k, v in items.items()}
      if records is not None:
        # Serialised now: orbax writes the item in a background thread, and the history
        # list goes on growing (the next epoch's row) while it does.
        args[RECORDS] = ocp.args.JsonSave(json.loads(json.dumps({
            "format": RECORDS_FORMAT, "step": int(step), **records,
            "checksums": {k: checksums(v) for k, v in items.items()}})))
      with self._disk_errors():
        self._manager.save(step, args=ocp.args.Composite(**args), force=True)

  def wait(self) -> None:
    """Waits for the save in flight, if any, to be complete.

    Raises:
      WriteError: as ``save``.
    """
    with self._disk_errors():
      self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves to finish, then releases the manager (once: later calls
    do nothing).

    Raises:
      WriteError: as ``save``.
    """
    if self._closed:
      return
    self._closed = True
    with self._disk_errors():
      self._manager.wait_until_finished()
    # Not after a failed save: closing orbax's event loop under TensorStore's pending
    # writes prints a traceback per write. The process is leaving anyway.
    self._manager.close()

  @contextlib.contextmanager
  def _disk_errors(self) -> Iterator[None]:
    """Orbax reports a failed write (in its own thread) as a ValueError or a bare
    Exception carrying TensorStore's ``[os_error_code='28']``; those become one line."""
    try:
      yield
    except OSError as e:
      raise errors.WriteError(f"cannot write a checkpoint in {self.directory}: "
                              f"{e.strerror or e}; the complete checkpoints before it are "
                              "kept") from None
    except Exception as e:  # noqa: BLE001
      code = re.search(r"os_error_code='(\d+)'", str(e))
      if code is None:
        raise
      # The failed save may be an earlier one still being written: no step is named.
      raise errors.WriteError(
          f"cannot write a checkpoint in {self.directory}: "
          f"{os.strerror(int(code.group(1)))}; the complete checkpoints before it are "
          "kept") from None


def first_line(e: BaseException) -> str:
  """The first non-empty line of an exception's message, at most 200 characters, without
  TensorStore's ``See full TensorStore details: <bound method …>`` tail."""
  line = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
  return line.split(" See full TensorStore details")[0].rstrip(". ")[:200]


def restore_newest(ckpts: Sequence[Checkpointer], templates: Sequence[dict[str, Any]],
                   set_aside: bool = True) -> tuple[int, list[dict[str, Any]]] | None:
  """Restores every run of ``ckpts`` at the newest step all of them have and can restore.

  Steps are tried from the newest step that every run has kept down to the oldest. A run
  whose checkpoint at a step cannot be restored (``Checkpointer.restore``) sends the search
  to the next older step; once one restores for every run, the newer checkpoints that
  failed are moved aside (``Checkpointer.set_aside``; with ``set_aside=False``, by a
  reader such as ``kjax.generate``, only named) with a warning. A stack of runs killed
  while saving, or extended with a new run, can have no common step: then, as with no
  checkpoint at all, None (every run starts afresh: a run is deterministic, so replayed
  steps give the checkpoints it already has).

  Args:
    ckpts: one ``Checkpointer`` per run.
    templates: one ``{name: pytree}`` per run (``Checkpointer.restore``).
    set_aside: move the checkpoints that failed to ``checkpoints.corrupt/``.

  Returns:
    ``(step, [restored items per run])``, or None.

  A reader (``set_aside=False``) beside a live run may find the checkpoint it reads
  deleted by the run's rotation (``keep``) half-way: that is not damage; it lists the steps
  again and restores the newest (up to ``READER_RETRIES`` times).

  Raises:
    CheckpointMismatchError: no common step restores for every run; the message names
      each failure and nothing is changed on disk.
  """
  for _ in range(READER_RETRIES):
    try:
      return _restore_newest(ckpts, templates, set_aside)
    except _Rotated:  # a live run deleted the step while a reader read it: list again
      for c in ckpts:
        c._manager.reload()  # noqa: SLF001
  raise errors.CheckpointMismatchError(
      f"the checkpoints in {ckpts[0].directory} were rotated away {READER_RETRIES} times "
      "while being read: the run is live and saving fast; try again, or read a copy")


# A reader beside a live run (kjax.generate, --mode=evaluate): how often it lists the steps
# again after the run deleted (rotated away) the one it was reading.
READER_RETRIES = 5


class _Rotated(Exception):
  """A reader's checkpoint was deleted while it was read (the run keeps ``keep``)."""


def _gone(c: Checkpointer, step: int) -> bool:
  """Whether the checkpoint of ``step`` is no longer on disk (rotated away by the run)."""
  return not os.path.isdir(os.path.join(c.directory, str(step)))


def _restore_newest(ckpts, templates, set_aside):
  """``restore_newest``, once; raises ``_Rotated`` (readers only) when a step vanished."""
  if any(c.latest_step() is None for c in ckpts):
    return None
  common = sorted(set.intersection(*(set(c.all_steps()) for c in ckpts)), reverse=True)
  failures: list[tuple[Checkpointer, int, errors.CheckpointMismatchError]] = []
  for step in common:
    restored, failed = [], []
    for c, t in zip(ckpts, templates):  # every run: each bad one is set aside
      try:
        restored.append(c.restore(step, t))
      except errors.CheckpointMismatchError as e:
        if not set_aside and _gone(c, step):  # not damage: the run rotated it away
          raise _Rotated from None
        failed.append((c, step, e))
    failures += failed
    # Every process of a job must take the same step: each reads only its own shards.
    if _all_processes(not failed):
      for c, bad, e in failures:
        where = c.set_aside(bad) if set_aside else "left in place"
        logging.warning("kjax: %s; restored the checkpoint at step %d instead (the bad one: "
                        "%s)", e, step, where)
      if set_aside and jax.process_count() > 1:
        # Process 0 moved what it found bad (another process's bad shards stay listed);
        # every process re-reads the steps after the moves.
        from jax.experimental import multihost_utils  # noqa: PLC0415
        multihost_utils.sync_global_devices("kjax_restore_newest")
        for c in ckpts:
          c._manager.reload()  # noqa: SLF001
      return step, restored
  if failures:
    if all(not e.corrupt for _, _, e in failures):
      raise failures[0][2]  # another model: the first (newest) message says so
    bad = ", ".join(dict.fromkeys(c.directory for c, _, _ in failures))
    advice = (f"move {bad} aside to train afresh, or use another --workdir" if set_aside
              else "train the run again, or restore its checkpoints from a copy")
    raise errors.CheckpointMismatchError(
        f"no checkpoint restores: {'; '.join(str(e) for _, _, e in failures)}; nothing was "
        f"changed; {advice}", corrupt=True)
  return None


def _all_processes(ok: bool) -> bool:
  """``ok`` on every process of the job (a collective when there are several)."""
  if jax.process_count() == 1:
    return ok
  import numpy as np  # noqa: PLC0415
  from jax.experimental import multihost_utils  # noqa: PLC0415
  return bool(np.asarray(multihost_utils.process_allgather(np.int32(ok))).all())
