"""The model families kjax trains, by ``config.model.name``."""

from __future__ import annotations

import ml_collections

from kjax import errors
from kjax.data import catalog
from kjax.tasks.base import Task, TrainState
from kjax.tasks.cgan import CGANTask, GANState
from kjax.tasks.classifier import ClassifierTask
from kjax.tasks.vae import BetaVAETask, CVAETask

TASKS = {"beta_vae": BetaVAETask, "cvae": CVAETask, "cgan": CGANTask,
         "classifier": ClassifierTask}


def get_task(config: ml_collections.ConfigDict) -> Task:
  """The task for ``config.model.name`` on ``config.data.name``.

  Raises:
    ConfigError: unknown model or data set name.
  """
  if config.model.name not in TASKS:
    raise errors.ConfigError(f"config.model.name={config.model.name!r} is not one of "
                             f"{tuple(TASKS)}")
  return TASKS[config.model.name](config, catalog.get_dataset_info(config.data.name))


__all__ = ["TASKS", "Task", "TrainState", "GANState", "BetaVAETask", "CVAETask", "CGANTask",
           "ClassifierTask", "get_task"]
