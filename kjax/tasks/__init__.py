"""The model families kjax trains, by ``config.model.name``.

A new family is a ``Task`` subclass (its Flax module, pure ``init_state``, ``train_step``,
``eval_sums`` and ``sample``, its config rows ``fields``) registered with ``register``:
from then on ``kjax.train_and_evaluate``, sweeps, the evaluation and ``kjax.generate``
take configs with its ``model.name`` (``tests/test_plugin_family.py`` defines one in a
test file).
"""

from __future__ import annotations

from typing import Any

import ml_collections

from kjax import config_fields
from kjax import errors
from kjax import workdir_config
from kjax.data import catalog
from kjax.tasks.base import FIGURE_FIELDS, Task, TrainState
from kjax.tasks.cgan import CGANTask, GANState
from kjax.tasks.classifier import ClassifierTask
from kjax.tasks.cvae import CVAETask
from kjax.tasks.vae import BetaVAETask

TASKS = {"beta_vae": BetaVAETask, "cvae": CVAETask, "cgan": CGANTask,
         "classifier": ClassifierTask}
BUILTIN = tuple(TASKS)


def register(cls: type[Task]) -> type[Task]:
  """Adds the model family ``cls`` under ``cls.name`` (usable as a class decorator).

  Raises:
    ConfigError: ``cls`` is not a ``Task`` subclass, has no ``name``, or its name is taken.
  """
  if not (isinstance(cls, type) and issubclass(cls, Task)):
    raise errors.ConfigError(f"kjax.tasks.register({cls!r}): expected a subclass of "
                             "kjax.tasks.Task")
  if not cls.name or cls.name in TASKS:
    raise errors.ConfigError(f"kjax.tasks.register: the name {cls.name!r} of {cls.__name__} is "
                             f"{'taken' if cls.name else 'empty'}; the families are "
                             f"{tuple(TASKS)}")
  TASKS[cls.name] = cls
  return cls


def unregister(name: str) -> None:
  """Removes the family ``name`` that ``register`` added (a test's clean-up).

  Raises:
    ConfigError: no such family, or one of kjax's own.
  """
  if name not in TASKS or name in BUILTIN:
    raise errors.ConfigError(f"kjax.tasks.unregister({name!r}): not a registered family "
                             f"(kjax's own {BUILTIN} stay)")
  del TASKS[name]


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


def unknown_fields(config: ml_collections.ConfigDict) -> list[str]:
  """The dotted fields of a run, sweep or benchmark ``config`` that no row of the table of
  config fields describes (a run's: its family's ``fields_of``; a benchmark's:
  ``config_fields.BENCHMARK`` and each study's family). A config of an unknown family has
  none here (validation names the family).
  """
  flat = workdir_config.flatten(config)
  if "studies" in config:
    table = config_fields.merged(config_fields.SHARED, config_fields.BENCHMARK)
    out = [k for k in flat if not k.startswith("studies.")
           and config_fields.lookup(table, k) is None]
    for name, study in config.studies.items():
      out += [f"studies.{name}.{k}" for k in unknown_fields(study)]
    return out
  try:
    table = fields_of(config.get("model") or {})
  except errors.ConfigError:
    return []
  return [k for k in flat if config_fields.lookup(table, k) is None]


def fields_markdown() -> str:
  """The table of config fields of every registered family, as Markdown: the generated
  part of ``docs/configs.md`` (``tests/test_config_fields.py`` keeps them equal)."""
  return config_fields.markdown({name: cls.table() for name, cls in TASKS.items()})


def stackable_keys(model: Any) -> tuple[str, ...]:
  """The config keys in which runs of ``config.model``'s family may differ and still share
  one compiled program: ``seed`` and the family's ``Task.stackable``."""
  return ("seed", *task_class(model).stackable)


__all__ = ["FIGURE_FIELDS", "TASKS", "Task", "TrainState", "GANState", "BetaVAETask",
           "CVAETask", "CGANTask", "ClassifierTask", "fields_markdown", "fields_of", "get_task",
           "has_convolutions", "register", "stackable_keys", "task_class", "unknown_fields",
           "unregister"]
