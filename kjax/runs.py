"""Trained runs on disk: a workdir's ``config.json`` and its newest checkpoint.

Shared by ``kjax.generate`` (sampling) and ``kjax.evaluate`` (metrics, domain classifier).
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

from kjax import checkpointing
from kjax import errors
from kjax import tasks
from kjax import train


def read_config(workdir: str, flag: str = "--workdir") -> ml_collections.ConfigDict:
  """The ``config.json`` of the run in ``workdir``.

  Raises:
    ConfigError: there is none (``flag`` names the setting that gave ``workdir``).
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise errors.ConfigError(f"{flag}={workdir!r} is not a kjax run: {path} not found")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def restore_state(task: tasks.Task, config: ml_collections.ConfigDict, workdir: str,
                  flag: str = "--workdir") -> Any:
  """The train state of the newest checkpoint in ``workdir``, in the structure that
  ``task.init_state`` builds for ``config``.

  Raises:
    ConfigError: no checkpoint yet. CheckpointMismatchError: it holds another model.
  """
  ckpt = checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"), keep=1_000_000)
  try:
    template = task.init_state(train.stream_keys(config.seed)["init"])
    restored = ckpt.restore_latest({"state": template})
  finally:
    ckpt.close()
  if restored is None:
    raise errors.ConfigError(f"{flag}={workdir!r} has no checkpoint yet; train it first")
  return restored["state"]
