"""The workdir contract (DESIGN.md): what a run's directory holds and who may continue it.

``config.json`` (the resolved config), ``checkpoints/`` (orbax), ``metrics.jsonl``,
``summary.json``, figures, ``eval/``. This module checks that a config may continue the run
in a workdir, and restores a trained run (config and newest checkpoint) for ``kjax.generate``
and ``kjax.evaluation``.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
from typing import Any, Iterator

import ml_collections

from kjax import checkpointing
from kjax import config_fields
from kjax import errors
from kjax import files
from kjax import preemption
from kjax import rng
from kjax import tasks
from kjax import workdir_config
from kjax.workdir_config import flatten  # noqa: F401  (kworkdir.flatten, as before)


def _fields(config_dict: dict) -> dict:
  """The table of config fields of ``config_dict``'s model family (the shared rows for a
  config without a known family)."""
  try:
    return tasks.fields_of(config_dict.get("model") or {})
  except errors.ConfigError:
    return config_fields.SHARED


def check_resumable(workdir: str, config_dict: dict,
                    hint: str = "use another --workdir for a different experiment",
                    optim_may_change: bool = True) -> None:
  """Refuses ``config_dict`` if the run in ``workdir`` was trained with a config that
  differs from it in a setting that changes the run's trajectory (every field but those
  whose row in the table of config fields is ``resumable``: ``kjax.config_fields``).

  The run's config is the one its newest checkpoint recorded (``kjax.checkpointing``'s
  ``records`` item), so a deleted or edited ``config.json`` cannot let another experiment
  resume; ``config.json`` is read only for a checkpoint saved by an older kjax (without
  records) or a sweep's folder. With a recorded config the optimiser's settings
  (``optim.*``) may change (unless ``optim_may_change`` is False: a sweep's runs, whose
  table compares settings): training continues from the checkpoint with the new ones and
  records the change (``kjax.train``, ``config_history.json``). Settings added to kjax after
  the run was made (absent from its config) are not compared: their defaults reproduce the
  older behaviour (e.g. ``objective.name='beta_vae'``). A workdir with no finished
  checkpoint (a start that crashed before its first one) holds no training to protect:
  its ``config.json`` is not compared and is replaced by the new run (a sweep's folder,
  with its ``runs/``, always is compared).

  Raises:
    ConfigError: one line naming every differing setting with both values, then ``hint``;
      or ``config.json`` cannot be read when it is the only record.
  """
  path = os.path.join(workdir, "config.json")
  recorded = checkpointing.read_records(os.path.join(workdir, "checkpoints"))
  optim_may_change = optim_may_change and recorded is not None
  if recorded is not None:
    step, records = recorded
    old = flatten(records["config"])
    source = f"the config of the checkpoint at step {step} in {workdir}"
  else:
    if not os.path.exists(path):
      return
    if not has_checkpoint(workdir) and not os.path.isdir(os.path.join(workdir, "runs")):
      # A run that stopped before its first checkpoint (a crash while compiling, a bad
      # flag found late) has trained nothing to protect: its config.json is replaced.
      return
    try:
      with open(path) as f:
        old = flatten(json.load(f))
    except (OSError, ValueError) as e:
      raise errors.ConfigError(
          f"{path} cannot be read ({e}); restore it from a copy, or move the run aside and "
          "use another --workdir") from None
    source = path
  new = flatten(json.loads(json.dumps(config_dict)))  # tuples as JSON lists
  if any(k.startswith("sweep.") for k in old) and not any(k.startswith("sweep.") for k in new):
    raise errors.ConfigError(f"--workdir={workdir!r} holds a sweep; a single run needs its "
                             "own workdir (each run of the sweep is in its runs/ folder)")
  keys = sorted(set(old) | set(new))
  resumable = set(config_fields.keys_with(_fields(config_dict), keys, "resumable"))
  if optim_may_change:
    resumable |= {k for k in keys if k.startswith("optim.")}
  differences = [
      f"config.{key}={new.get(key)!r} (the run has {old.get(key)!r})"
      for key in keys
      # A key the run's kjax did not have yet keeps its old behaviour by default.
      if key not in resumable and key in old and old.get(key) != new.get(key)]
  if differences:
    raise errors.ConfigError(
        f"{len(differences)} setting(s) differ from {source}: {'; '.join(differences)}; "
        f"{hint}")


def read_config(workdir: str, flag: str = "--workdir") -> ml_collections.ConfigDict:
  """The config of the run in ``workdir``: its ``config.json``, or the one its newest
  checkpoint recorded when that file is missing or damaged (``workdir_config.get_config``).

  Raises:
    ConfigError: there is neither, or ``config.json`` is damaged and no checkpoint holds a
      config (``flag`` names the setting that gave ``workdir``).
  """
  path = os.path.join(workdir, "config.json")
  try:
    return workdir_config.get_config(workdir)
  except FileNotFoundError:
    raise errors.ConfigError(f"{flag}={workdir!r} is not a kjax run: {path} not found") from None
  except ValueError as e:  # not JSON: a damaged file, and no checkpoint holds the config
    raise errors.ConfigError(f"{flag}={workdir!r}: {e}") from None


def restore_state(task: tasks.Task, config: ml_collections.ConfigDict, workdir: str,
                  flag: str = "--workdir") -> Any:
  """The train state of the newest checkpoint in ``workdir``, in the structure that
  ``task.init_state`` builds for ``config``.

  Raises:
    ConfigError: no checkpoint yet. CheckpointMismatchError: it holds another model, or
      no checkpoint can be read (a corrupt newest one is skipped with a warning, in place:
      a reader moves nothing).
  """
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):  # checked first: the manager would create the folder
    raise errors.ConfigError(f"{flag}={workdir!r} has no checkpoint yet; train it first")
  ckpt = checkpointing.Checkpointer(directory, keep=1_000_000, reader=True)
  try:
    template = task.fresh_state(rng.stream_keys(config.seed)["init"])
    found = checkpointing.restore_newest([ckpt], [{"state": template}], set_aside=False)
  finally:
    ckpt.close()
  if found is None:
    raise errors.ConfigError(f"{flag}={workdir!r} has no checkpoint yet; train it first")
  return found[1][0]["state"]


def has_checkpoint(workdir: str) -> bool:
  """Whether ``WORKDIR/checkpoints`` holds a finished orbax step (a folder named by its
  step; orbax's temporary folders of an unfinished save do not count)."""
  directory = os.path.join(workdir, "checkpoints")
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def check_writable(workdir: str, flag: str = "--workdir") -> None:
  """Refuses a ``workdir`` that cannot be created or written, before anything is written.

  Raises:
    ConfigError: ``workdir`` (or a parent) exists but is not a folder, or the folder that
      would hold it, or ``workdir`` itself, is not writable by this user.
  """
  path = os.path.abspath(workdir)
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise errors.ConfigError(f"{flag}={workdir!r} cannot be created: {existing} is a file, "
                             "not a folder")
  if not os.access(existing, os.W_OK | os.X_OK):
    what = "the run's folder" if existing == path else "its parent folder"
    raise errors.ConfigError(f"{flag}={workdir!r} cannot be written: {what} {existing} is "
                             "not writable (permission denied)")


LOCK_FILE = ".kjax.lock"  # in a workdir: who trains or evaluates it (PID, host, since)
_held: dict[str, int] = {}  # lock path -> the open file descriptor holding the flock


def _lock_path(workdir: str) -> str:
  return os.path.join(os.path.realpath(workdir), LOCK_FILE)


def _holder(fd: int) -> str:
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    info = json.loads(os.read(fd, 4096) or b"{}")
    return (f"process {info['pid']} on {info['host']} (since {info['since']}: "
            f"{info['command']})")
  except (OSError, ValueError, KeyError):
    return "another process"


def _locked_error(workdir: str, holder: str) -> errors.WorkdirLockedError:
  return errors.WorkdirLockedError(
      f"--workdir={workdir!r} is in use by {holder}; wait for it to finish or stop it "
      "(a lock left by a process that died does not block), or use another --workdir")


def check_unlocked(workdir: str) -> None:
  """Refuses early (before loading data) a ``workdir`` another process holds; writes
  nothing. ``lock`` is what takes the lock.

  Raises:
    WorkdirLockedError: the holder's PID and host.
  """
  path = _lock_path(workdir)
  if path in _held or not os.path.exists(path):
    return
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno in (errno.EAGAIN, errno.EACCES):
      raise _locked_error(workdir, _holder(fd)) from None
  finally:
    os.close(fd)


def lock(workdir: str) -> None:
  """Makes this process the one writer of ``workdir`` (creating the folder) until
  ``unlock`` or the process exits; a no-op if this process holds it already.

  The lock is an ``fcntl.flock`` on ``WORKDIR/.kjax.lock``, which records the holder's
  PID, host, start time and command; the kernel releases it when the process dies (even
  by SIGKILL), so a lock left behind never blocks. ``flock`` is per host on most network
  file systems: two machines writing one workdir are not refused.

  Raises:
    WorkdirLockedError: another live process holds it; the message names its PID and host.
  """
  path = _lock_path(workdir)
  if path in _held:
    return
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    holder = _holder(fd)
    os.close(fd)
    if e.errno in (errno.EAGAIN, errno.EACCES):
      raise _locked_error(workdir, holder) from None
    raise
  info = {"pid": os.getpid(), "host": socket.gethostname(),
          "since": datetime.datetime.now().isoformat(timespec="seconds"),
          "command": " ".join(os.path.basename(a) if i == 0 else a
                              for i, a in enumerate(sys.argv))[:300]}
  os.ftruncate(fd, 0)
  os.write(fd, json.dumps(info).encode())
  _held[path] = fd


def unlock(workdir: str) -> None:
  """Releases this process's lock on ``workdir`` (a no-op if it holds none)."""
  fd = _held.pop(_lock_path(workdir), None)
  if fd is not None:
    os.close(fd)  # releases the flock


def unlock_all() -> None:
  """Releases every workdir lock this process holds (the end of ``launch.py``)."""
  for path in list(_held):
    os.close(_held.pop(path))


@contextlib.contextmanager
def locked(workdir: str) -> Iterator[None]:
  """``lock(workdir)`` for the duration of a ``with`` block; a lock this process held
  before the block stays held after it."""
  held = _lock_path(workdir) in _held
  lock(workdir)
  try:
    yield
  finally:
    if not held:
      unlock(workdir)


def repair(workdir: str) -> list[str]:
  """``launch.py --mode=repair --workdir=W``: rebuilds the readable records of the run in
  ``workdir`` from the ``records`` item of its newest checkpoint that has a readable one
  (``kjax.checkpointing``), without loading data or arrays, holding the run's lock; returns
  one line per file rebuilt:

  * ``config.json``, when missing or damaged (a valid one is kept: it may hold settings
    changed for the steps still to train);
  * ``metrics.jsonl``: its rows up to the checkpoint's step become the checkpoint's history
    (damaged, missing or edited rows); valid rows after that step (a run stopped before its
    next checkpoint, replayed on resume) are kept;
  * ``summary.json``, when the checkpoint ends the run (its last history row is at the
    checkpoint's step and epoch ``config.train.num_epochs``): the last row;
  * ``config_history.json``, the optimiser changes made on resume, when there are any.

  Files that agree are left byte-identical; the arrays are verified by the next run that
  restores them. A sweep's folder (``runs/``) or a benchmark's (``<study>/runs/``) repairs
  each run in it; a run without records there is named and skipped.

  Raises:
    ConfigError: ``workdir`` is not a run, a sweep or a benchmark, or (a single run) has
      no checkpoint with records (none yet, or saved by a kjax older than the records).
    WorkdirLockedError: another process trains or evaluates a run.
    WriteError: a file cannot be written.
  """
  preemption.phase("repair", workdir)
  runs = _runs_under(workdir)
  if runs is None:
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
      raise errors.ConfigError(f"--workdir={workdir!r} is not a kjax run: it has no "
                               "checkpoints/ (and no runs/ of a sweep)")
    with locked(workdir):
      return _repair_run(workdir)
  if not runs:
    raise errors.ConfigError(f"--workdir={workdir!r} holds no run with a checkpoint")
  lines = []
  for run in runs:
    try:
      with locked(run):
        lines += _repair_run(run)
    except errors.ConfigError as e:
      lines.append(f"skipped {run}: {e}")
  return lines


def _runs_under(workdir: str) -> list[str] | None:
  """The run folders with ``checkpoints/`` under a sweep's ``runs/`` or a benchmark's
  ``<study>/runs/`` in ``workdir``; None when ``workdir`` is neither (a single run)."""
  if os.path.isdir(os.path.join(workdir, "checkpoints")) or not os.path.isdir(workdir):
    return None
  folders = [workdir] + [os.path.join(workdir, n) for n in sorted(os.listdir(workdir))]
  studies = [f for f in folders if os.path.isdir(os.path.join(f, "runs"))]
  if not studies:
    return None
  return [os.path.join(study, "runs", n) for study in studies
          for n in sorted(os.listdir(os.path.join(study, "runs")))
          if os.path.isdir(os.path.join(study, "runs", n, "checkpoints"))]


def _repair_run(workdir: str) -> list[str]:
  from kjax import metric_writers  # noqa: PLC0415  (kjax.metric_writers imports tensorboardX)
  found = checkpointing.read_records(os.path.join(workdir, "checkpoints"))
  if found is None:
    raise errors.ConfigError(
        f"--workdir={workdir!r} has no checkpoint with records to repair from (none yet, or "
        "saved by an older kjax); launch the run again to rebuild what it can")
  step, records = found
  where = f"from the checkpoint at step {step}"
  lines = []
  path = os.path.join(workdir, "config.json")
  if workdir_config.config_json_damage(workdir):
    files.write_json(path, records["config"])
    lines.append(f"rebuilt {path} {where}")
  history = [r for r in records.get("history", []) if isinstance(r, dict)]
  path = os.path.join(workdir, "metrics.jsonl")
  later = [r for r in metric_writers.read_jsonl(path) if r["step"] > step]
  if files.update_text(path, metric_writers.jsonl_text(history + later)):
    lines.append(f"rebuilt {path} {where} ({len(history)} rows)")
  num_epochs = records["config"].get("train", {}).get("num_epochs")
  if history and history[-1].get("step") == step and history[-1].get("epoch") == num_epochs:
    path = os.path.join(workdir, "summary.json")
    if files.update_json(path, history[-1]):
      lines.append(f"rebuilt {path} {where}")
  if records.get("config_history"):
    path = os.path.join(workdir, workdir_config.HISTORY_FILE)
    if files.update_json(path, records["config_history"]):
      lines.append(f"rebuilt {path} {where}")
  return lines
