"""The config of an existing run, rebuilt from its ``WORKDIR/config.json``.

``kjax --mode=evaluate --workdir=W`` loads it as ``--config=kjax/workdir_config.py:W``, so
that ``--config.eval.*`` overrides apply to the run's own config; ``kjax.workdir.read_config``
uses the same conversion. Light on purpose (no JAX import): ``--help`` and flag errors stay fast.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
  """A nested config (a ``ConfigDict`` or a dict) as ``{'objective.beta': 4.0, ...}``: the
  dotted names of ``--config.x.y=`` overrides; sections are descended, every other value is
  a leaf."""
  out = {}
  for k, v in config.items():
    name = f"{prefix}{k}"
    if hasattr(v, "items"):
      out.update(flatten(v, name + "."))
    else:
      out[name] = v
  return out


def from_json(value: Any) -> Any:
  """A ``config.json`` value as the config file wrote it: JSON lists back to tuples (every
  sequence in ``configs/*.py`` is a tuple), dicts to ``ConfigDict`` sections."""
  if isinstance(value, dict):
    return ml_collections.ConfigDict({k: from_json(v) for k, v in value.items()})
  if isinstance(value, list):
    return tuple(from_json(v) for v in value)
  return value


RECORDS_FILE = os.path.join("records", "metadata")  # orbax's JSON item in a checkpoint step
HISTORY_FILE = "config_history.json"  # in a workdir: the optim.* changes made on resume


def read_records(directory: str) -> tuple[int, dict[str, Any]] | None:
  """The ``records`` item (``kjax.checkpointing``) of the newest checkpoint in
  ``directory`` that has a readable one (a damaged or missing item is skipped for an older
  checkpoint's), read as plain JSON: no array is restored, nothing is created.

  Returns:
    ``(step, {'config': dict, 'history': [rows], 'config_history': [...], 'checksums':
    {...}})``, or None: no checkpoint, or none with records (saved by a kjax older than
    the records).
  """
  try:
    steps = sorted((int(n) for n in os.listdir(directory) if n.isdigit()), reverse=True)
  except OSError:
    return None
  return next(filter(None, (read_records_at(directory, step) for step in steps)), None)


def read_records_at(directory: str, step: int) -> tuple[int, dict[str, Any]] | None:
  """``(step, records)`` of the checkpoint of ``step`` (``read_records``), or None when it
  has none or it cannot be read."""
  try:
    with open(os.path.join(directory, str(step), RECORDS_FILE)) as f:
      records = json.load(f)
  except (OSError, ValueError):
    return None
  if isinstance(records, dict) and isinstance(records.get("config"), dict):
    return step, records
  return None


def recorded_config(workdir: str) -> tuple[int, dict[str, Any]] | None:
  """``(step, config dict)`` that the newest checkpoint of ``workdir`` recorded
  (``read_records``), or None when no checkpoint has one."""
  found = read_records(os.path.join(workdir, "checkpoints"))
  return None if found is None else (found[0], found[1]["config"])


def config_json_damage(workdir: str) -> str | None:
  """``'missing'`` or ``'damaged'`` (unreadable, not JSON) for ``WORKDIR/config.json``;
  None when it reads as JSON."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      json.load(f)
  except FileNotFoundError:
    return "missing"
  except (OSError, ValueError):
    return "damaged"
  return None


def get_config(workdir: str) -> ml_collections.ConfigDict:
  """The ``ConfigDict`` of the run in ``workdir``: its ``config.json``, or, when that is
  missing or damaged, the config its newest checkpoint recorded (``recorded_config``; a
  warning names the file to rebuild by launching the run again).

  Raises:
    FileNotFoundError: ``workdir`` has no ``config.json`` and no checkpoint with a config.
    ValueError: it is not valid JSON (its message names the file) and no checkpoint holds
      a config.
  """
  path = os.path.join(workdir, "config.json")
  try:
    with open(path) as f:
      try:
        return from_json(json.load(f))
      except json.JSONDecodeError as e:
        problem: Exception = ValueError(f"{path} is not valid JSON ({e})")
  except FileNotFoundError as e:
    problem = e
  recorded = recorded_config(workdir)
  if recorded is None:
    raise problem
  if path not in _warned:  # once per process: the CLI and the launcher both read it
    _warned.add(path)
    from absl import logging  # noqa: PLC0415
    logging.warning("kjax: %s is %s; using the config the checkpoint at step %d recorded "
                    "(--mode=repair rebuilds the file)", path,
                    "missing" if isinstance(problem, FileNotFoundError) else "damaged",
                    recorded[0])
  return from_json(recorded[1])


_warned: set[str] = set()  # config.json paths already reported missing or damaged
