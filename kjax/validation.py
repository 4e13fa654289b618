"""Checks a config before anything is read or written, with one-line errors."""

from __future__ import annotations

import math
from numbers import Integral, Real

import ml_collections

from kjax.data import catalog, style
from kjax.models.vae import UPSAMPLE_METHODS
from kjax.objectives import LIKELIHOODS


from kjax.errors import ConfigError  # noqa: F401  (raised here, re-exported)


def _check(ok: bool, name: str, value, allowed: str) -> None:
  if not ok:
    raise ConfigError(f"config.{name}={value!r} is not allowed: {allowed}")


def _int(config, name, low, high=None):
  value = config
  for part in name.split("."):
    value = value[part]
  ok = isinstance(value, Integral) and not isinstance(value, bool) and value >= low
  ok = ok and (high is None or value <= high)
  _check(ok, name, value, f"expected an integer >= {low}" + (f" and <= {high}" if high else ""))


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Validates a β-VAE config.

  Raises:
    ConfigError: the first bad value, e.g.
      ``config.objective.beta=-1.0 is not allowed: expected a finite number >= 0``.
    (also for an unknown ``config.data.name``, from ``catalog.get_dataset_info``).
  """
  _int(config, "seed", 0)
  info = catalog.get_dataset_info(config.data.name)
  _int(config, "data.style_pixel_threshold", 0, 254)
  _check(config.data.style_reduction in style.REDUCTIONS, "data.style_reduction",
         config.data.style_reduction, f"expected one of {style.REDUCTIONS}")
  _int(config, "model.latent_dim", 1)
  _int(config, "model.hidden", 1)
  channels = tuple(config.model.channels)
  _check(1 <= len(channels) <= 4 and all(isinstance(c, Integral) and c > 0 for c in channels),
         "model.channels", config.model.channels, "expected 1 to 4 positive integers")
  _check(config.model.upsample in UPSAMPLE_METHODS, "model.upsample", config.model.upsample,
         f"expected one of {UPSAMPLE_METHODS}")
  beta = config.objective.beta
  _check(isinstance(beta, Real) and math.isfinite(beta) and beta >= 0, "objective.beta", beta,
         "expected a finite number >= 0")
  _check(config.objective.likelihood in LIKELIHOODS, "objective.likelihood",
         config.objective.likelihood, f"expected one of {LIKELIHOODS}")
  variance = config.objective.gaussian_variance
  _check(isinstance(variance, Real) and math.isfinite(variance) and variance > 0,
         "objective.gaussian_variance", variance, "expected a finite number > 0")
  lr = config.optim.learning_rate
  _check(isinstance(lr, Real) and math.isfinite(lr) and lr > 0, "optim.learning_rate", lr,
         "expected a finite number > 0")
  for name in ("num_epochs", "batch_size", "eval_batch_size", "steps_per_call",
               "log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
    _int(config, f"train.{name}", 1)
  classes = tuple(config.figures.interpolate_classes)
  _check(len(classes) == 2 and all(isinstance(c, Integral) and 0 <= c < info.num_classes
                                   for c in classes),
         "figures.interpolate_classes", config.figures.interpolate_classes,
         f"expected two class indices in [0, {info.num_classes - 1}]")
  _int(config, "figures.interpolation_steps", 2)
  _int(config, "figures.grid_size", 2)
