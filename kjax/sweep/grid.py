"""The grid of a sweep: its axes, its runs, their names and parts, and the groups of
runs that share one compiled program (the package docstring: ``kjax.sweep``)."""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any

from absl import logging
import ml_collections

from kjax import config_fields
from kjax import errors
from kjax import tasks
from kjax import validation
from kjax import workdir as kworkdir

RUNS_DIR = "runs"
SETTINGS = ("max_runs", "sharing", "shard", "executor", "parts")  # of the sweep, not axes
SHARING = ("auto", "vmap", "map", "sequential")
EXECUTORS = ("local", "ray")
DIVERGED = "diverged.json"  # in a run's workdir: its loss became non-finite (message)


@dataclasses.dataclass
class Run:
  """One run of a sweep.

  Attributes:
    name: its directory name under ``WORKDIR/runs/``, e.g. ``beta=4.0,latent_dim=2,seed=0``.
    settings: ``{full config key: value}`` of the swept keys, in the sweep's order.
    config: the resolved config of the run (no ``sweep`` section): a plain run's config.
    workdir: ``WORKDIR/runs/<name>``.
  """

  name: str
  settings: dict[str, Any]
  config: ml_collections.ConfigDict
  workdir: str


def is_sweep(config: ml_collections.ConfigDict) -> bool:
  """Whether ``config`` has a ``sweep`` section (a plain config runs one experiment)."""
  return "sweep" in config


def _keys(config: ml_collections.ConfigDict) -> list[str]:
  return [k for k in kworkdir.flatten(config.to_dict()) if not k.startswith("sweep.")]


def resolve_axis(name: str, keys: list[str]) -> str:
  """The full config key of the sweep entry ``name`` (``beta`` → ``objective.beta``).

  Raises:
    ConfigError: no key or more than one key ends with ``name``.
  """
  suffix = name.replace("__", ".")
  matches = [k for k in keys if k == suffix or k.endswith("." + suffix)]
  if len(matches) == 1:
    return matches[0]
  if not matches:
    raise errors.ConfigError(f"config.sweep.{name} names no config key; expected the last part "
                             f"of one of {tuple(sorted({k.rsplit('.', 1)[-1] for k in keys}))}")
  hint = ", ".join(f"{'__'.join(m.split('.')[-2:])}" for m in matches)
  raise errors.ConfigError(f"config.sweep.{name} is ambiguous: it could be any of {matches}; "
                           f"name it by its last two parts ({hint})")


def axes(config: ml_collections.ConfigDict) -> dict[str, tuple]:
  """The sweep's axes, ``{full config key: values}``, in the section's (sorted) order.

  Raises:
    ConfigError: an axis that is not a non-empty tuple or list, an unknown or ambiguous
      name, two names for one key, ``sharing`` or ``max_runs`` out of range.
  """
  sweep = config.sweep
  max_runs = sweep.get("max_runs", 64)
  if not (isinstance(max_runs, int) and not isinstance(max_runs, bool)
          and max_runs >= 1):
    raise errors.ConfigError(f"config.sweep.max_runs={max_runs!r} is not allowed: "
                             "expected an integer >= 1")
  if sweep.get("sharing", "auto") not in SHARING:
    raise errors.ConfigError(f"config.sweep.sharing={sweep.get('sharing')!r} is not allowed: "
                             f"expected one of {SHARING}")
  if sweep.get("executor", "local") not in EXECUTORS:
    raise errors.ConfigError(f"config.sweep.executor={sweep.get('executor')!r} is not "
                             f"allowed: expected one of {EXECUTORS}")
  parts = sweep.get("parts", 0)
  if not (isinstance(parts, int) and not isinstance(parts, bool) and parts >= 0):
    raise errors.ConfigError(f"config.sweep.parts={parts!r} is not allowed: expected an "
                             "integer >= 0 (0: one part per compiled program)")
  parse_shard(sweep.get("shard", ""))
  if sweep.get("shard", "") and sweep.get("executor", "local") == "ray":
    raise errors.ConfigError(f"config.sweep.shard={sweep.shard!r} with config.sweep.executor="
                             "'ray' is not allowed: Ray makes the parts itself (set "
                             "config.sweep.parts), a shard is for schedulers without Ray")
  if parts and sweep.get("executor", "local") != "ray":
    logging.warning("kjax: config.sweep.parts=%d is ignored: it counts Ray tasks "
                    "(config.sweep.executor='ray'); use config.sweep.shard='i/n' otherwise",
                    parts)
  keys = _keys(config)
  out: dict[str, tuple] = {}
  for name, values in sweep.items():
    if name in SETTINGS:
      continue
    if not isinstance(values, (tuple, list)) or not values:
      raise errors.ConfigError(f"config.sweep.{name}={values!r} is not allowed: expected a "
                               "non-empty tuple of values, e.g. '(1.0,4.0)'")
    if len(values) == 1 and isinstance(values[0], str) and values[0].startswith(("(", "[")):
      raise errors.ConfigError(f"config.sweep.{name}={values!r} is not allowed: quote string "
                               f"values on the command line, e.g. --config.sweep.{name}="
                               "\"('a','b')\"")
    key = resolve_axis(name, keys)
    if key in out:
      raise errors.ConfigError(f"config.sweep.{name} varies config.{key} a second time")
    out[key] = tuple(values)
  if not out:
    raise errors.ConfigError("config.sweep has no axis: add one, e.g. "
                             "--config.sweep.seed='(0,1,2)' in the config file")
  return out


def parse_shard(shard: str) -> tuple[int, int]:
  """``config.sweep.shard`` → ``(i, n)``: ``''`` is ``(0, 1)`` (the whole sweep), ``'2/8'``
  the third of eight parts.

  Raises:
    ConfigError: not ``'i/n'`` with integers ``0 <= i < n``.
  """
  if shard in ("", None):
    return 0, 1
  i, sep, n = str(shard).partition("/")
  if not (sep and i.isdigit() and n.isdigit() and 0 <= int(i) < int(n)):
    raise errors.ConfigError(f"config.sweep.shard={shard!r} is not allowed: expected 'i/n' "
                             "with 0 <= i < n, e.g. '0/4' (or '' for the whole sweep)")
  return int(i), int(n)


def shard_runs(runs: list[Run], shard: str) -> list[Run]:
  """The runs of part ``shard`` (``'i/n'``, ``parse_shard``): the j-th run of the grid
  belongs to part ``j mod n``, so parts are disjoint, cover the grid, differ in size by at
  most one run, and a run's part depends only on the grid, never on which parts ran.

  Raises:
    ConfigError: a bad ``shard``.
  """
  i, n = parse_shard(shard)
  return runs[i::n]


def _format(value: Any) -> str:
  text = repr(value) if isinstance(value, float) else str(value)
  return text.replace("/", "_").replace(" ", "")


def run_name(settings: dict[str, Any]) -> str:
  """A run's directory name from its settings: ``beta=4.0,latent_dim=2,seed=0`` (the last
  part of each key; floats by ``repr``, so that distinct values give distinct names)."""
  return ",".join(f"{k.rsplit('.', 1)[-1]}={_format(v)}" for k, v in settings.items())


def _coerce(config: ml_collections.ConfigDict, key: str, value: Any) -> Any:
  """``value`` in the type of ``config.<key>`` where that is lossless (``1`` → ``1.0`` for a
  float field), so that ``beta=1`` and ``beta=1.0`` name the same run."""
  old = config
  for part in key.split("."):
    old = old[part]
  if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  return value


def _set(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  *parents, leaf = key.split(".")
  section = config
  for p in parents:
    section = section[p]
  with section.ignore_type():
    section[leaf] = value


def expand(config: ml_collections.ConfigDict, workdir: str) -> list[Run]:
  """The grid of runs of a sweep config, each validated like a single run.

  Raises:
    ConfigError: a bad sweep section (``axes``), a grid larger than
      ``config.sweep.max_runs``, or a value invalid for its key (the message names the run).
  """
  grid = axes(config)
  count = 1
  for values in grid.values():
    count *= len(values)
  max_runs = config.sweep.get("max_runs", 64)
  if count > max_runs:
    raise errors.ConfigError(f"the sweep has {count} runs, more than config.sweep.max_runs="
                             f"{max_runs}; raise it or sweep fewer values")
  base = ml_collections.ConfigDict(config.to_dict())
  del base["sweep"]
  for key, values in list(grid.items()):
    grid[key] = tuple(_coerce(base, key, v) for v in values)
    if len(set(map(repr, grid[key]))) != len(values):
      raise errors.ConfigError(f"config.sweep.{key.rsplit('.', 1)[-1]}={values!r} is not "
                               "allowed: values repeat")
  runs = []
  for combo in itertools.product(*grid.values()):
    settings = dict(zip(grid, combo))
    run_config = ml_collections.ConfigDict(base.to_dict())
    for key, value in settings.items():
      _set(run_config, key, value)
    name = run_name(settings)
    try:
      validation.validate_config(run_config)
    except errors.ConfigError as e:
      raise errors.ConfigError(f"sweep run {name}: {e}") from None
    runs.append(Run(name, settings, run_config, os.path.join(workdir, RUNS_DIR, name)))
  return runs


def group_key(run: Run) -> tuple:
  """Runs with equal keys share one compiled program: the swept settings that change an
  array shape or the step's code: every swept field but the family's stackable ones
  (``tasks.stackable_keys``) and those read only by the final evaluation (their row's
  ``final_eval_only`` role in ``kjax.config_fields``)."""
  shared = set(tasks.stackable_keys(run.config.model)) | set(config_fields.keys_with(
      tasks.fields_of(run.config.model), run.settings, "final_eval_only"))
  return tuple((k, repr(v)) for k, v in run.settings.items() if k not in shared)


def default_sharing(platform: str, config: ml_collections.ConfigDict) -> str:
  """How a group's runs share a program by default, measured by ``benchmarks/sweep.py``.

  On XLA:CPU (2 cores, 8 runs, images/s against the runs one after another): the MLP CVAE
  vmapped 1.11–1.24×; the conv β-VAE vmapped 0.40× and ``lax.map`` 0.40× (a vmapped
  convolution is a grouped convolution, jax-ml/jax#26568); the ``mlp_large`` CGAN, whose
  wide matrix products already fill both cores, vmapped 0.75–0.96×. So on CPU only the
  small MLP CVAE is vmapped and the rest run one after another (``sequential``). On GPUs
  and TPUs every model is vmapped (one wide step).
  """
  if platform != "cpu":
    return "vmap"
  return "vmap" if tasks.task_class(config.model).vmaps_well_on_cpu(config.model) else (
      "sequential")


def groups(runs: list[Run], sharing: str, platform: str) -> list[tuple[str, list[Run]]]:
  """``runs`` split by ``group_key`` (in first-appearance order), each with its sharing
  mode: ``'vmap'``, ``'map'`` or ``'sequential'`` (``'auto'``: ``default_sharing``)."""
  by_key: dict[tuple, list[Run]] = {}
  for run in runs:
    by_key.setdefault(group_key(run), []).append(run)
  out = []
  for members in by_key.values():
    mode = default_sharing(platform, members[0].config) if sharing == "auto" else sharing
    out.append((mode, members))
  return out
