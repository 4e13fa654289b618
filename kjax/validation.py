"""Checks a config before anything is read or written, with one-line errors."""

from __future__ import annotations

import math
from numbers import Integral, Real

from absl import logging
import ml_collections

from kjax import autotune
from kjax import rng
from kjax.data import catalog, loading, style
from kjax.errors import ConfigError  # noqa: F401  (raised here, re-exported)
from kjax.models import cgan, conv, cvae, vae
from kjax.models.vae import UPSAMPLE_METHODS
from kjax.objectives import GAN_LOSSES, LIKELIHOODS, VAE_OBJECTIVES


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


def _real(config, name, low, high=None, low_open=False, high_open=True):
  value = config
  for part in name.split("."):
    value = value[part]
  ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
  ok = ok and (value > low if low_open else value >= low)
  ok = ok and (high is None or (value < high if high_open else value <= high))
  bounds = f"{'>' if low_open else '>='} {low:g}"
  if high is not None:
    bounds += f" and {'<' if high_open else '<='} {high:g}"
  _check(ok, name, value, f"expected a finite number {bounds}")


def _one_of(config, name, allowed):
  value = config
  for part in name.split("."):
    value = value[part]
  _check(value in allowed, name, value, f"expected one of {tuple(allowed)}")


def _channels(config):
  channels = tuple(config.model.channels)
  _check(1 <= len(channels) <= 4 and all(isinstance(c, Integral) and c > 0 for c in channels),
         "model.channels", config.model.channels, "expected 1 to 4 positive integers")


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


def _validate_vae_objective(config) -> None:
  """``config.objective`` of ``beta_vae`` / ``cvae``; the β-VAE family's fields are
  checked when present (configs written before them default to the β-VAE)."""
  _real(config, "objective.beta", 0)
  _one_of(config, "objective.likelihood", LIKELIHOODS)
  _real(config, "objective.gaussian_variance", 0, low_open=True)
  objective = config.objective
  if "name" in objective:
    _one_of(config, "objective.name", VAE_OBJECTIVES)
  for name in ("gamma", "c_max"):
    if name in objective:
      _real(config, f"objective.{name}", 0)
  if "c_steps" in objective:
    _int(config, "objective.c_steps", 1)
  if "kl_warmup_steps" in objective:
    _int(config, "objective.kl_warmup_steps", 0)
    _check(objective.kl_warmup_steps == 0 or objective.get("name") != "annealed_vae",
           "objective.kl_warmup_steps", objective.kl_warmup_steps,
           "expected 0 with objective.name='annealed_vae' (its capacity schedule is the "
           "warm-up)")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Validates a kjax config (``model.name`` ``beta_vae``, ``cvae``, ``cgan`` or ``classifier``).

  Raises:
    ConfigError: the first bad value, e.g.
      ``config.objective.beta=-1.0 is not allowed: expected a finite number >= 0``.
    (also for an unknown ``config.data.name``, from ``catalog.get_dataset_info``).
  """
  _int(config, "seed", 0, rng.NUM_SEEDS - 1)  # larger seeds alias smaller ones
  info = catalog.get_dataset_info(config.data.name)
  _int(config, "data.style_pixel_threshold", 0, 254)
  _one_of(config, "data.style_reduction", style.REDUCTIONS)
  if "binarize" in config.data:  # configs written before issue 11 have none
    _one_of(config, "data.binarize", loading.BINARIZATIONS)
  _one_of(config, "model.name", ("beta_vae", "cvae", "cgan", "classifier"))
  _int(config, "model.hidden", 1)
  _channels(config)
  _real(config, "optim.learning_rate", 0, low_open=True)
  for name in ("num_epochs", "batch_size", "eval_batch_size",
               "log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
    _int(config, f"train.{name}", 1)
  autotune.steps_per_call(config.train.steps_per_call, 1, "cpu")  # 'auto' or an int >= 1

  _validate_eval(config)
  if "mesh" in config:  # configs written before issue 12 have none
    _int(config, "mesh.runs", 0)
    _int(config, "mesh.data", 0)
  model = config.model.name
  if "conv_impl" in config.model:
    _one_of(config, "model.conv_impl", conv.IMPLS)
    if config.model.conv_impl != "auto" and not autotune.has_convolutions(config.model):
      logging.warning("kjax: config.model.conv_impl=%r is ignored: the %s %r network has no "
                      "convolutions", config.model.conv_impl, model,
                      config.model.get("architecture", ""))
  if model == "classifier":
    if "schedule" in config.optim:
      _one_of(config, "optim.schedule", ("constant", "cosine"))
    _real(config, "model.dropout_rate", 0, 1)
    _int(config, "augment.max_shift", 0, 8)
    return
  _int(config, "model.latent_dim", 1)
  if model in ("beta_vae", "cvae"):
    _validate_vae_objective(config)
  if model == "beta_vae":
    _one_of(config, "model.upsample", UPSAMPLE_METHODS)
    if "schedule" in config.optim:
      _one_of(config, "optim.schedule", ("constant", "iwae"))
    if "eps" in config.optim:
      _real(config, "optim.eps", 0, low_open=True)
    if "architecture" in config.model:  # configs written before issue 11: conv
      _one_of(config, "model.architecture", vae.ARCHITECTURES)
      widths = tuple(config.model.get("mlp_widths", (200,)))
      _check(1 <= len(widths) <= 4 and all(isinstance(w, Integral) and w > 0 for w in widths),
             "model.mlp_widths", config.model.get("mlp_widths"),
             "expected 1 to 4 positive integers")
    classes = tuple(config.figures.interpolate_classes)
    _check(len(classes) == 2 and all(isinstance(c, Integral) and 0 <= c < info.num_classes
                                     for c in classes),
           "figures.interpolate_classes", config.figures.interpolate_classes,
           f"expected two class indices in [0, {info.num_classes - 1}]")
    _int(config, "figures.interpolation_steps", 2)
    _int(config, "figures.grid_size", 2)
    return
  _int(config, "figures.samples_per_style", 1)
  _int(config, "figures.progress_every_epochs", 0)
  if model == "cvae":
    _one_of(config, "model.architecture", cvae.ARCHITECTURES)
    return
  _one_of(config, "model.architecture", cgan.ARCHITECTURES)
  _one_of(config, "model.output", cgan.OUTPUTS)
  _one_of(config, "objective.loss", GAN_LOSSES)
  _int(config, "objective.d_steps", 1)
  _real(config, "objective.label_smoothing", 0, 1)
  _real(config, "objective.gp_weight", 0)
  for name in ("g_learning_rate", "d_learning_rate"):
    if config.optim[name] is not None:
      _real(config, f"optim.{name}", 0, low_open=True)
  _real(config, "optim.b1", 0, 1)
  _real(config, "optim.b2", 0, 1)
