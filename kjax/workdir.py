"""The workdir contract (DESIGN.md): what a run's directory holds and who may continue it.

``config.json`` (the resolved config), ``checkpoints/`` (orbax), ``metrics.jsonl``,
``summary.json``, figures, ``eval/``. This module checks that a config may continue the run
in a workdir, and restores a trained run (config and newest checkpoint) for ``kjax.generate``
and ``kjax.evaluation``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

from kjax import checkpointing
from kjax import errors
from kjax import rng
from kjax import tasks
from kjax import workdir_config
from kjax.workdir_config import flatten  # noqa: F401  (kworkdir.flatten, as before)

# Settings that may change when a run is resumed: they do not change its trajectory.
RESUMABLE_KEYS = ("train.num_epochs", "train.log_every_steps", "train.checkpoint_every_steps",
                  "train.keep_checkpoints", "train.eval_batch_size", "train.steps_per_call",
                  "model.conv_impl",
                  "data.data_dir", "data.tfds_data_dir", "data.cache_dir",
                  "data.verify_checksums", "figures", "eval.", "sweep.",
                  # The devices: a run resumes on another mesh or number of hosts.
                  "mesh.")


def check_resumable(workdir: str, config_dict: dict,
                    hint: str = "use another --workdir for a different experiment") -> None:
  """Refuses ``config_dict`` if ``WORKDIR/config.json`` exists and differs from it in a
  setting that changes the run's trajectory (all but ``RESUMABLE_KEYS``). Settings added
  to kjax after the run was made (absent from its ``config.json``) are not compared: their
  defaults reproduce the older behaviour (e.g. ``objective.name='beta_vae'``).

  Raises:
    ConfigError: one line naming every differing setting with both values, then ``hint``.
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = flatten(json.load(f))
  new = flatten(json.loads(json.dumps(config_dict)))  # tuples as JSON lists
  if any(k.startswith("sweep.") for k in old) and not any(k.startswith("sweep.") for k in new):
    raise errors.ConfigError(f"--workdir={workdir!r} holds a sweep; a single run needs its "
                             "own workdir (each run of the sweep is in its runs/ folder)")
  differences = [
      f"config.{key}={new.get(key)!r} (the run has {old.get(key)!r})"
      for key in sorted(set(old) | set(new))
      # A key the run's kjax did not have yet keeps its old behaviour by default.
      if not key.startswith(RESUMABLE_KEYS) and key in old and old.get(key) != new.get(key)]
  if differences:
    raise errors.ConfigError(
        f"{len(differences)} setting(s) differ from {path}: {'; '.join(differences)}; {hint}")


def read_config(workdir: str, flag: str = "--workdir") -> ml_collections.ConfigDict:
  """The ``config.json`` of the run in ``workdir``.

  Raises:
    ConfigError: there is none (``flag`` names the setting that gave ``workdir``).
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise errors.ConfigError(f"{flag}={workdir!r} is not a kjax run: {path} not found")
  try:
    return workdir_config.get_config(workdir)
  except ValueError as e:  # not JSON: a damaged file
    raise errors.ConfigError(f"{flag}={workdir!r}: {e}") from None


def restore_state(task: tasks.Task, config: ml_collections.ConfigDict, workdir: str,
                  flag: str = "--workdir") -> Any:
  """The train state of the newest checkpoint in ``workdir``, in the structure that
  ``task.init_state`` builds for ``config``.

  Raises:
    ConfigError: no checkpoint yet. CheckpointMismatchError: it holds another model.
  """
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):  # checked first: the manager would create the folder
    raise errors.ConfigError(f"{flag}={workdir!r} has no checkpoint yet; train it first")
  ckpt = checkpointing.Checkpointer(directory, keep=1_000_000)
  try:
    template = task.init_state(rng.stream_keys(config.seed)["init"])
    restored = ckpt.restore_latest({"state": template})
  finally:
    ckpt.close()
  if restored is None:
    raise errors.ConfigError(f"{flag}={workdir!r} has no checkpoint yet; train it first")
  return restored["state"]
