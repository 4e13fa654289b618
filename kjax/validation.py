"""Checks a config before anything is read or written, with one-line errors.

Every field against its row of the table of config fields (``kjax.config_fields``, the
rows of the config's model family merged in: ``kjax.tasks.fields_of``), then what one row
cannot say: the family's own rules across fields (``Task.validate_config``). The checks
themselves: ``kjax.config_checks``.
"""

from __future__ import annotations

from numbers import Integral

from absl import logging
import ml_collections

from kjax import config_fields
from kjax import tasks
from kjax import workdir_config
from kjax.config_checks import check as _check
from kjax.config_checks import one_of as _one_of
from kjax.data import catalog
from kjax.errors import ConfigError  # noqa: F401  (raised here, re-exported)


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Validates a kjax config: every field against its row (``tasks.fields_of``), then the
  model family's rules across fields (``tasks.task_class(config.model).validate_config``).

  Raises:
    ConfigError: the first bad value, e.g.
      ``config.objective.beta=-1.0 is not allowed: expected a finite number >= 0``, or a
      ``model.name`` that is not a registered family (``kjax.tasks.TASKS``).
    (also for an unknown ``config.data.name``, from ``catalog.get_dataset_info``).
  """
  info = catalog.get_dataset_info(config.data.name)
  _one_of(config, "model.name", tuple(tasks.TASKS))
  table = tasks.fields_of(config.model)
  config_fields.check_all(table, config, workdir_config.flatten(config))
  family = tasks.task_class(config.model)
  if "eval" in config:
    _check(config.eval.num_generated != 1, "eval.num_generated", 1, "expected 0 or >= 2")
    sampler = config.eval.get("sampler", "prior")
    _check(sampler == "prior" or family.has_encoder, "eval.sampler", sampler,
           f"expected 'prior': the {config.model.name} family has no encoder, so no z_mean "
           "to fit a mixture to")
  value = config.get("figures", {}).get("interpolate_classes", (0, 1))
  classes = tuple(value) if isinstance(value, (tuple, list)) else ()
  _check(len(classes) == 2 and all(isinstance(c, Integral) and not isinstance(c, bool)
                                   and 0 <= c < info.num_classes for c in classes),
         "figures.interpolate_classes", value,
         f"expected two class indices in [0, {info.num_classes - 1}]")
  if "conv_impl" in config.model:
    if config.model.conv_impl != "auto" and not family.has_convolutions(config.model):
      logging.warning("kjax: config.model.conv_impl=%r is ignored: the %s %r network has no "
                      "convolutions", config.model.conv_impl, config.model.name,
                      config.model.get("architecture", ""))
  family.validate_config(config, info)
