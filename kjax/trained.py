"""One record of a trained run, whoever made or read it: the training loop returns it
(``kjax.train``), ``kjax.generate`` restores it from a workdir, and the evaluations see it
(``kjax.evaluation.base.Run`` adds their evaluator and caches)."""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from kjax import tasks
from kjax.data import loading


@dataclasses.dataclass
class TrainedRun:
  """A trained (or restored) run.

  Attributes:
    config: its config (``config.json``, or the one its newest checkpoint recorded).
    workdir: its directory.
    task: the model family (``kjax.tasks``), the data set's classes and image shape in
      ``task.info``.
    state: its train state (final, or restored from the newest checkpoint).
    step: that state's step.
    train_ds, eval_ds: its splits (``kjax.data.Dataset``; None where a reader loaded none:
      ``kjax.generate``).
    summary, timing: its ``summary.json`` and ``timing.json`` (empty where not read).
  """

  config: ml_collections.ConfigDict
  workdir: str
  task: tasks.Task
  state: Any
  step: int
  train_ds: loading.Dataset | None = None
  eval_ds: loading.Dataset | None = None
  summary: dict[str, Any] = dataclasses.field(default_factory=dict)
  timing: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def sample(self):
    """The task's compiled ``sample`` (``Task.jit_sample``, shared with its figures): float
    ``[B, latent_dim]`` noise, int ``[B]`` classes and styles → float ``[B, H, W, 1]``
    images in [0, 1]; compiled once per run and shape."""
    return self.task.jit_sample
