"""Resuming runs: the newest common checkpoint, optimiser changes, the records beside it.

A relaunch restores every run of a job at the newest step all of them kept
(``kjax.checkpointing.restore_newest``: a corrupt checkpoint is set aside and an older one
used). ``optim.*`` settings may change on resume (a diverged run continued with a smaller
step): the optimiser's moments are kept, its settings come from the new config, and the
change is recorded in ``config_history.json``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kjax import checkpointing
from kjax import files
from kjax import sharding as ksharding
from kjax import workdir as kworkdir
from kjax import workdir_config
from kjax.train.runs import RunSlot

HISTORY_FILE = workdir_config.HISTORY_FILE  # the optim.* changes made on resume


def optim_changes(recorded: dict[str, Any], config: dict[str, Any]) -> dict[str, dict]:
  """The ``optim.*`` settings of ``config`` that differ from the ``recorded`` config of a
  checkpoint: ``{'optim.learning_rate': {'from': 0.001, 'to': 0.0001}}`` (settings the
  recorded config lacks, added to kjax later, are not compared)."""
  old = kworkdir.flatten(json.loads(json.dumps(recorded)))
  new = kworkdir.flatten(json.loads(json.dumps(config)))
  return {k: {"from": old[k], "to": new.get(k)} for k in sorted(old)
          if k.startswith("optim.") and old[k] != new.get(k)}


def with_optimizer_settings(restored: Any, fresh: Any) -> Any:
  """``restored`` with every ``optax.inject_hyperparams`` value (the leaves under an
  ``opt_state``'s ``hyperparams``: learning rates, Adam's b1, b2, eps) taken from ``fresh``,
  the state a changed ``config.optim`` builds: the moments and step counts are kept, the
  new settings apply from the next update. Both trees have one structure."""
  def pick(path, old, new):
    names = [getattr(k, "name", getattr(k, "key", None)) for k in path]
    return new if "hyperparams" in names else old
  return jax.tree_util.tree_map_with_path(pick, restored, fresh)


def all_finite(tree: Any) -> bool:
  """Whether every floating-point value of ``tree`` is finite (a collective in a
  multi-process job: ``kjax.sharding.to_host``)."""
  floats = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  return all(np.isfinite(a).all() for a in ksharding.to_host(floats))


def lower_learning_rate_flags(config: ml_collections.ConfigDict) -> str:
  """The flags that continue a diverged run with a tenth of its learning rate(s), e.g.
  ``--config.optim.learning_rate=0.0001`` (the CGAN's ``g_``/``d_learning_rate`` too when
  set)."""
  o = config.optim
  keys = ["learning_rate"] + [k for k in ("g_learning_rate", "d_learning_rate")
                              if o.get(k) is not None]
  return " ".join(f"--config.optim.{k}={o[k] / 10:g}" for k in keys)


def resume(runs: Sequence[RunSlot], fresh: list, sums: list, total_steps: int
           ) -> tuple[list, list, int]:
  """Restores ``runs`` at the newest step all of them can restore, applies ``optim.*``
  changes and writes each run's ``config.json`` and ``config_history.json`` (process 0).

  Args:
    runs: the job's runs (``record``, ``config_dict``, ``config_history`` and
      ``restored_finite`` are set here).
    fresh: each run's initial state (the template, and the new optimiser settings).
    sums: each run's zero running sums (the template).
    total_steps: the schedule's length (a run at or past it is finished).

  Returns:
    ``(states, sums, start_step)``: ``fresh, sums, 0`` when there is no checkpoint.

  Raises:
    CheckpointMismatchError: no common checkpoint restores (``restore_newest``).
  """
  found = checkpointing.restore_newest(
      [r.ckpt for r in runs], [{"state": s, "sums": m} for s, m in zip(fresh, sums)])
  states, start_step = list(fresh), 0
  if found is not None:
    start_step, restored = found
    states, sums = [r["state"] for r in restored], [r["sums"] for r in restored]
    for run, r in zip(runs, restored):
      run.record = r.get(checkpointing.RECORDS)
  finished = start_step >= total_steps > 0
  for i, run in enumerate(runs):
    run.config_dict = json.loads(json.dumps(run.config.to_dict()))
    run.config_history = list((run.record or {}).get("config_history", []))
    if _apply_optim_changes(run, start_step, finished):
      states[i] = with_optimizer_settings(states[i], fresh[i])
    # A restored state that holds NaN/Inf: the checkpoint, not the step size, is the suspect.
    run.restored_finite = all_finite(states[i]) if start_step else True
  if ksharding.is_writer():
    for run in runs:
      _write_records(run, start_step)
  if finished:
    logging.info("kjax: %s already finished at step %d: nothing to train",
                 ", ".join(r.workdir for r in runs), start_step)
  elif start_step:
    logging.info("kjax: resumed from the checkpoint at step %d", start_step)
  return states, sums, start_step


def _apply_optim_changes(run: RunSlot, start_step: int, finished: bool) -> bool:
  """Records the run's ``optim.*`` changes since its checkpoint; returns whether its state
  takes the new optimiser settings (not for a finished run: nothing is left to train)."""
  changes = optim_changes(run.record["config"], run.config_dict) if run.record else {}
  if not changes:
    return False
  named = ", ".join(f"config.{k}={v['to']!r} (was {v['from']!r})" for k, v in changes.items())
  if finished:
    run.config_dict["optim"] = run.record["config"]["optim"]
    logging.warning("kjax: %s is already finished at step %d; %s would train no step and "
                    "is not used (raise config.train.num_epochs to continue with it)",
                    run.workdir, start_step, named)
    return False
  # Continuing a run with a new step size (e.g. after a non-finite loss): the optimiser
  # state is kept, its settings come from the config; the change is recorded.
  run.config_history.append({"step": int(start_step), "changes": changes})
  logging.warning("kjax: %s continues from step %d with %s (recorded in %s)", run.workdir,
                  start_step, named, HISTORY_FILE)
  for newer in [s for s in run.ckpt.all_steps() if s > start_step]:
    # A stack's run saved past the common step with the old settings: not this run now.
    logging.warning("kjax: %s: the checkpoint at step %d was trained with the previous "
                    "settings; moved to %s", run.workdir, newer, run.ckpt.set_aside(newer))
  return True


def _write_records(run: RunSlot, step: int) -> None:
  """``WORKDIR/config.json`` (unchanged bytes when equal; a damaged copy is rebuilt with one
  line: the checkpoint's own config was the one compared, ``kjax.workdir.check_resumable``)
  and ``config_history.json`` (removed when the run resumed from before its changes)."""
  path = os.path.join(run.workdir, "config.json")
  damage = workdir_config.config_json_damage(run.workdir)
  files.update_json(path, run.config_dict)
  if damage and step:
    logging.warning("kjax: rebuilt %s (it was %s); the config was checked against the one "
                    "the checkpoint at step %d recorded", path, damage, step)
  path = os.path.join(run.workdir, HISTORY_FILE)
  if run.config_history:
    files.update_json(path, run.config_history)
  elif run.record is not None and os.path.exists(path):
    os.remove(path)  # resumed from a checkpoint before the changes it lists
