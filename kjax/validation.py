"""Checks a config before anything is read or written, with one-line errors.

The fields every run has are checked here; each model family checks its own
(``Task.validate_config``, ``kjax.tasks``). The checks themselves: ``kjax.config_checks``.
"""

from __future__ import annotations

from absl import logging
import ml_collections

from kjax import autotune
from kjax import rng
from kjax import tasks
from kjax.config_checks import check as _check
from kjax.config_checks import integer as _int
from kjax.config_checks import one_of as _one_of
from kjax.config_checks import positive_ints
from kjax.config_checks import real as _real
from kjax.data import catalog, loading, style
from kjax.errors import ConfigError  # noqa: F401  (raised here, re-exported)
from kjax.models import conv


def _validate_eval(config) -> None:
  if "eval" not in config:
    return
  _check(isinstance(config.eval.at_end_of_training, bool), "eval.at_end_of_training",
         config.eval.at_end_of_training, "expected True or False")
  _check(isinstance(config.eval.classifier_workdir, str), "eval.classifier_workdir",
         config.eval.classifier_workdir, "expected a path, empty (the shipped evaluator) "
         "or 'none'")
  for name in ("iwae_samples", "iwae_chunk_size", "iwae_batch_size", "kid_subsets"):
    _int(config, f"eval.{name}", 1)
  _int(config, "eval.kid_subset_size", 2)
  _int(config, "eval.tsne_max_points", 5)
  for name in ("iwae_max_examples", "epoch_iwae_samples", "num_generated"):
    _int(config, f"eval.{name}", 0)
  _check(config.eval.num_generated != 1, "eval.num_generated", 1, "expected 0 or >= 2")
  if "prdc_k" in config.eval:  # configs written before issue 11 have neither
    _int(config, "eval.prdc_k", 1, 100)
  if "cas_epochs" in config.eval:
    _int(config, "eval.cas_epochs", 0, 1000)


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Validates a kjax config: the shared fields, then the model family's own
  (``tasks.task_class(config.model).validate_config``).

  Raises:
    ConfigError: the first bad value, e.g.
      ``config.objective.beta=-1.0 is not allowed: expected a finite number >= 0``, or a
      ``model.name`` that is not a registered family (``kjax.tasks.TASKS``).
    (also for an unknown ``config.data.name``, from ``catalog.get_dataset_info``).
  """
  _int(config, "seed", 0, rng.NUM_SEEDS - 1)  # larger seeds alias smaller ones
  info = catalog.get_dataset_info(config.data.name)
  _int(config, "data.style_pixel_threshold", 0, 254)
  _one_of(config, "data.style_reduction", style.REDUCTIONS)
  if "binarize" in config.data:  # configs written before issue 11 have none
    _one_of(config, "data.binarize", loading.BINARIZATIONS)
  _one_of(config, "model.name", tuple(tasks.TASKS))
  _int(config, "model.hidden", 1)
  positive_ints(config, "model.channels")
  _real(config, "optim.learning_rate", 0, low_open=True)
  for name in ("num_epochs", "batch_size", "eval_batch_size",
               "log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
    _int(config, f"train.{name}", 1)
  autotune.steps_per_call(config.train.steps_per_call, 1, "cpu")  # 'auto' or an int >= 1

  _validate_eval(config)
  if "mesh" in config:  # configs written before issue 12 have none
    _int(config, "mesh.runs", 0)
    _int(config, "mesh.data", 0)
  family = tasks.task_class(config.model)
  if "conv_impl" in config.model:
    _one_of(config, "model.conv_impl", conv.IMPLS)
    if config.model.conv_impl != "auto" and not family.has_convolutions(config.model):
      logging.warning("kjax: config.model.conv_impl=%r is ignored: the %s %r network has no "
                      "convolutions", config.model.conv_impl, config.model.name,
                      config.model.get("architecture", ""))
  family.validate_config(config, info)
