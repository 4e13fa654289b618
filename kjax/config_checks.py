"""One-line checks of config values, shared by ``kjax.validation`` (the fields every run has)
and each model family's ``Task.validate_config`` (its own fields).

Every check raises ``kjax.errors.ConfigError`` naming the field, the bad value and what is
allowed, e.g. ``config.objective.beta=-1.0 is not allowed: expected a finite number >= 0``.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

from kjax.errors import ConfigError


def value_of(config: Any, name: str) -> Any:
  """The value of the dotted field ``name`` (``'train.batch_size'``) of ``config``."""
  value = config
  for part in name.split("."):
    value = value[part]
  return value


def check(ok: bool, name: str, value: Any, allowed: str) -> None:
  """Raises ``ConfigError`` ``config.<name>=<value> is not allowed: <allowed>`` unless ``ok``."""
  if not ok:
    raise ConfigError(f"config.{name}={value!r} is not allowed: {allowed}")


def integer(config: Any, name: str, low: int, high: int | None = None) -> None:
  """``config.<name>`` is an int (not a bool) in ``[low, high]`` (``high`` None: no bound)."""
  value = value_of(config, name)
  ok = isinstance(value, Integral) and not isinstance(value, bool) and value >= low
  ok = ok and (high is None or value <= high)
  check(ok, name, value, f"expected an integer >= {low}" + (f" and <= {high}" if high else ""))


def real(config: Any, name: str, low: float, high: float | None = None, low_open: bool = False,
         high_open: bool = True) -> None:
  """``config.<name>`` is a finite number (not a bool) above ``low`` (``low_open``: strictly)
  and below ``high`` (``high_open``: strictly; None: no bound)."""
  value = value_of(config, name)
  ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
  ok = ok and (value > low if low_open else value >= low)
  ok = ok and (high is None or (value < high if high_open else value <= high))
  bounds = f"{'>' if low_open else '>='} {low:g}"
  if high is not None:
    bounds += f" and {'<' if high_open else '<='} {high:g}"
  check(ok, name, value, f"expected a finite number {bounds}")


def one_of(config: Any, name: str, allowed: Any) -> None:
  """``config.<name>`` is one of ``allowed``."""
  value = value_of(config, name)
  check(value in allowed, name, value, f"expected one of {tuple(allowed)}")


def positive_ints(config: Any, name: str, default: Any = None) -> None:
  """``config.<name>`` (or ``default`` when absent) is 1 to 4 positive integers."""
  section, field = name.rsplit(".", 1)
  value = value_of(config, section).get(field, default)
  items = tuple(value)
  check(1 <= len(items) <= 4 and all(isinstance(v, Integral) and v > 0 for v in items), name,
        value, "expected 1 to 4 positive integers")
