"""Periodic, atomic, resumable checkpoints with orbax ``CheckpointManager``."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from kjax import errors


class Checkpointer:
  """Saves ``{name: pytree}`` items, keeping the last ``keep`` checkpoints.

  Orbax writes each step to a temporary directory and renames it when complete, so a
  killed run never leaves a partial checkpoint that ``restore_latest`` would pick up, and
  an older checkpoint is only deleted once a newer one is complete.

  Args:
    directory: the checkpoint directory (``WORKDIR/checkpoints``), created on first save.
    keep: number of most recent checkpoints kept.
  """

  def __init__(self, directory: str, keep: int):
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=True)
    self._manager = ocp.CheckpointManager(os.path.abspath(directory), options=options)

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
    """Restores the checkpoint of ``step`` into the structure of ``templates``.

    Raises:
      CheckpointMismatchError: the checkpoint's tree or shapes differ from ``templates``
        (a different model, or a run saved by an older kjax); nothing is changed on disk.
    """
    abstract = {k: jax.tree.map(ocp.utils.to_shape_dtype_struct, v) for k, v in templates.items()}
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          **{k: ocp.args.StandardRestore(v) for k, v in abstract.items()}))
    except ValueError as e:
      first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
      raise errors.CheckpointMismatchError(
          f"the checkpoint at step {step} in {self._manager.directory} does not match the "
          f"state this config builds ({first[:200]}); use the config it was trained with, "
          "or another --workdir") from None
    return {k: restored[k] for k in templates}

  def save(self, step: int, items: dict[str, Any]) -> None:
    """Starts an asynchronous save of ``items`` as ``step`` (a no-op if ``step`` exists:
    a deterministic run that replays steps writes the same state again)."""
    if step not in self._manager.all_steps():
      self._manager.save(step, args=ocp.args.Composite(
          **{k: ocp.args.StandardSave(v) for k, v in items.items()}), force=True)

  def close(self) -> None:
    """Waits for pending saves to finish, then releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
