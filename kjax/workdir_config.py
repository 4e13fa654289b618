"""The config of an existing run, rebuilt from its ``WORKDIR/config.json``.

``kjax --mode=evaluate --workdir=W`` loads it as ``--config=kjax/workdir_config.py:W``, so
that ``--config.eval.*`` overrides apply to the run's own config; ``kjax.workdir.read_config``
uses the same conversion. Light on purpose (no JAX import): ``--help`` and flag errors stay fast.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
  """A nested config (a ``ConfigDict`` or a dict) as ``{'objective.beta': 4.0, ...}``: the
  dotted names of ``--config.x.y=`` overrides; sections are descended, every other value is
  a leaf."""
  out = {}
  for k, v in config.items():
    name = f"{prefix}{k}"
    if hasattr(v, "items"):
      out.update(flatten(v, name + "."))
    else:
      out[name] = v
  return out


def from_json(value: Any) -> Any:
  """A ``config.json`` value as the config file wrote it: JSON lists back to tuples (every
  sequence in ``configs/*.py`` is a tuple), dicts to ``ConfigDict`` sections."""
  if isinstance(value, dict):
    return ml_collections.ConfigDict({k: from_json(v) for k, v in value.items()})
  if isinstance(value, list):
    return tuple(from_json(v) for v in value)
  return value


def get_config(workdir: str) -> ml_collections.ConfigDict:
  """The ``ConfigDict`` of the run in ``workdir`` (its ``config.json``).

  Raises:
    FileNotFoundError: ``workdir`` has no ``config.json``.
    ValueError: it is not valid JSON (its message names the file).
  """
  path = os.path.join(workdir, "config.json")
  with open(path) as f:
    try:
      return from_json(json.load(f))
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON ({e})") from None
