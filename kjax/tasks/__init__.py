"""The model families kjax trains, by ``config.model.name``."""

from __future__ import annotations

from typing import Any

import ml_collections

from kjax import config_fields
from kjax import errors
from kjax.data import catalog
from kjax.tasks.base import Task, TrainState
from kjax.tasks.cgan import CGANTask, GANState
from kjax.tasks.classifier import ClassifierTask
from kjax.tasks.cvae import CVAETask
from kjax.tasks.vae import BetaVAETask

TASKS = {"beta_vae": BetaVAETask, "cvae": CVAETask, "cgan": CGANTask,
         "classifier": ClassifierTask}


def get_task(config: ml_collections.ConfigDict, num_train_examples: int | None) -> Task:
  """The task for ``config.model.name`` on ``config.data.name``, built with the train
  split's size ``num_train_examples`` (N: schedules and the β-TC-VAE read it), or None for
  a template that restores a checkpoint and samples but does not train (``Task.__init__``).

  Raises:
    ConfigError: unknown model or data set name.
  """
  return task_class(config.model)(config, catalog.get_dataset_info(config.data.name),
                                  num_train_examples)


def task_class(model: Any) -> type[Task]:
  """The ``Task`` class of ``config.model`` (a dict or ConfigDict with ``name``).

  Raises:
    ConfigError: unknown model name.
  """
  name = model.get("name")
  if name not in TASKS:
    raise errors.ConfigError(f"config.model.name={name!r} is not one of {tuple(TASKS)}")
  return TASKS[name]


def has_convolutions(model: Any) -> bool:
  """Whether ``config.model`` describes a network with convolutions (``Task.has_convolutions``)."""
  return task_class(model).has_convolutions(model)


def fields_of(model: Any) -> dict[str, config_fields.Field]:
  """The table of config fields of ``config.model``'s family: ``config_fields.SHARED``, the
  family's own rows (``Task.fields``) replacing a shared row of the same key."""
  return task_class(model).table()


def stackable_keys(model: Any) -> tuple[str, ...]:
  """The config keys in which runs of ``config.model``'s family may differ and still share
  one compiled program: ``seed`` and the family's ``Task.stackable``."""
  return ("seed", *task_class(model).stackable)


__all__ = ["TASKS", "Task", "TrainState", "GANState", "BetaVAETask", "CVAETask", "CGANTask",
           "ClassifierTask", "fields_of", "get_task", "has_convolutions", "stackable_keys", "task_class"]
