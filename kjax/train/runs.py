"""One object per run of a job: what the loop's actions read and write for it."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections

from kjax import checkpointing
from kjax import metric_writers
from kjax import tasks


@dataclasses.dataclass
class RunSlot:
  """A run being trained (one of a sweep's stacked group, or the only one).

  Attributes:
    config, workdir, task: the run's own (``task`` built by ``kjax.train.prepare``).
    keys: its PRNG streams (``kjax.rng.stream_keys``: ``init``, ``train``, ``data``,
      ``eval``, ``figures``).
    ckpt: its ``kjax.checkpointing.Checkpointer`` (``WORKDIR/checkpoints``).
    record: the restored checkpoint's ``records`` item (None: none, or an older kjax's).
    config_dict: the JSON config each checkpoint records (``optim`` kept at a finished
      run's own when a relaunch changed it).
    config_history: the ``optim.*`` changes made on resume (``config_history.json``).
    restored_finite: whether the restored state held only finite values.
    writer: its ``kjax.metric_writers.MetricWriter`` (set once restored).
    figure_inputs: the fixed inputs of its previews and figures (``Task.figure_inputs``,
      from its ``figures`` stream; set by ``actions.EpochEnd``).
  """

  config: ml_collections.ConfigDict
  workdir: str
  task: tasks.Task
  keys: dict[str, Any]
  ckpt: checkpointing.Checkpointer
  record: dict[str, Any] | None = None
  config_dict: dict[str, Any] = dataclasses.field(default_factory=dict)
  config_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  restored_finite: bool = True
  writer: metric_writers.MetricWriter | None = None
  figure_inputs: dict[str, Any] | None = None

  @classmethod
  def open(cls, config, workdir, task, keys) -> RunSlot:
    """The run's slot, its checkpoint manager opened (nothing restored yet)."""
    return cls(config, workdir, task, keys,
               checkpointing.Checkpointer(os.path.join(workdir, "checkpoints"),
                                          config.train.keep_checkpoints))

  def save(self, step: int, state: Any, sums: Any) -> None:
    """Starts the checkpoint of ``step``: the run's state, the epoch's running sums and its
    records (``kjax.checkpointing.RECORDS``: config, history, config_history)."""
    self.ckpt.save(step, {"state": state, "sums": sums},
                   {"config": self.config_dict, "history": self.writer.history,
                    "config_history": self.config_history})
