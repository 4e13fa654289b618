"""kjax's experiment configs, one ``ml_collections`` file per experiment.

In a checkout they are ``configs/*.py`` (``launch.py --config=configs/beta_vae.py``); an
installed kjax has them as the package ``kjax.configs`` (``kjax --config=beta_vae``)::

  from kjax import configs
  config = configs.get_config("cvae")      # the ConfigDict of configs/cvae.py
  config.data.name = "kmnist"
"""

from __future__ import annotations

import importlib
import os

import ml_collections

# Every experiment file (common.py holds shared sections and is not one).
NAMES = ("beta_vae", "beta_vae_sweep", "benchmark", "classifier", "cgan", "cgan_sweep", "cvae",
         "cvae_sweep", "iwae_mnist")


def path(name: str) -> str:
  """The file of the config ``name`` (e.g. ``'cvae'`` → ``.../configs/cvae.py``).

  Raises:
    ValueError: ``name`` is not one of ``NAMES``.
  """
  if name not in NAMES:
    raise ValueError(f"unknown config {name!r}; the configs are: {', '.join(NAMES)}")
  return os.path.join(os.path.dirname(__file__), f"{name}.py")


def get_config(name: str) -> ml_collections.ConfigDict:
  """A fresh, unlocked ``ConfigDict`` of the config ``name`` (one of ``NAMES``), as
  ``launch.py --config=configs/NAME.py`` would build it before overrides.

  Raises:
    ValueError: ``name`` is not one of ``NAMES``.
  """
  path(name)  # checks the name
  return importlib.import_module(f"{__name__}.{name}").get_config()
