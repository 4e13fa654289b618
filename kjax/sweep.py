r"""Many runs: a sweep (ablation study) as data in the config, trained group by group.

``config.sweep`` lists values to vary, combined as a grid::

  config.sweep.beta = (0.5, 1.0, 2.0, 4.0, 8.0)   # objective.beta
  config.sweep.latent_dim = (2, 10)               # model.latent_dim
  config.sweep.seed = (0, 1, 2)                   # seed
  config.sweep.max_runs = 64                      # refuse larger grids
  config.sweep.sharing = "auto"                   # how a group's runs share a program
  config.sweep.shard = ""                         # 'i/n': only the i-th of n parts
  config.sweep.executor = "local"                 # or 'ray': the parts as Ray tasks
  config.sweep.parts = 0                          # parts for 'ray'; 0: one per program

An entry is named by the last part of the config key it varies when that is unique
(``beta`` → ``objective.beta``); otherwise by its trailing parts joined with ``__``
(``objective__name``). Override on the command line with tuples, e.g.
``--config.sweep.beta='(1.0,4.0)'``.

Runs whose settings leave every array shape and the step's code unchanged
(``kjax.tasks.stackable_keys``:
seeds and the hyper-parameters a state carries as arrays) form one group, trained by one
compiled program (``kjax.train.train_runs``); other settings (latent_dim, architecture,
loss, likelihood, data) split groups that run one after another. Each run lives in
``WORKDIR/runs/<name>/`` with the whole workdir contract of a single run; finished runs are
reused, so a killed sweep resumes and a sweep extended with more values trains only the new
runs. ``kjax.results`` then writes ``results.csv``, ``results.md``, figures and
``report.html``.

Many machines: the runs are split into n disjoint parts by their place in the grid
(``shard_runs``: run j belongs to part ``j mod n``; a run is identified by its name, derived
from its settings). ``--config.sweep.shard='i/n'`` trains part i alone into the shared
workdir, so a SLURM job array, a Kubernetes indexed job or any scheduler runs a study; a part
that dies is re-submitted and resumes; ``--mode=results`` merges the finished runs.
``config.sweep.executor='ray'`` submits the parts as Ray tasks to the cluster ``ray.init()``
joins (``RAY_ADDRESS``, or a local one), then writes the results.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging as py_logging
import os
import time
from typing import Any

from absl import logging
import jax
import ml_collections

from kjax import config_fields
from kjax import data as kdata
from kjax import errors
from kjax import evaluation
from kjax import metric_writers
from kjax import progress
from kjax import results
from kjax import sharding
from kjax import tasks
from kjax import train
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


def _finished(run: Run) -> str:
  """``'done'`` (trained and evaluated, or diverged), ``'trained'`` (evaluation missing) or
  ``''``."""
  if os.path.exists(os.path.join(run.workdir, DIVERGED)):
    return "done"  # diverged: reported as such, not retrained (a re-run would diverge again)
  summary = os.path.join(run.workdir, "summary.json")
  if not os.path.exists(summary):
    return ""
  try:
    with open(summary) as f:
      epoch = json.load(f).get("epoch", 0)
  except (OSError, ValueError, AttributeError):
    return ""  # damaged: training (nothing left to train) rebuilds it from the checkpoint
  if epoch < run.config.train.num_epochs:
    return ""
  at_end = run.config.eval.get("at_end_of_training", False)
  return "trained" if at_end and not os.path.exists(
      os.path.join(run.workdir, evaluation.EVAL_DIR, "metrics.json")) else "done"


def run_sweep(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs every run of the sweep in ``config`` under ``WORKDIR/runs/``, then writes the
  study's results (``kjax.results.write_results``).

  Everything is checked before anything is written: the sweep section, every run's config,
  the data, and that each existing run directory belongs to the same experiment.

  With ``config.sweep.shard='i/n'`` only that part's runs (``shard_runs``) are trained, and
  the results are left to ``--mode=results`` (parts may run at once); its timing goes to
  ``timing.part-<i>-of-<n>.json``. With ``config.sweep.executor='ray'`` the parts run as Ray
  tasks (``run_on_ray``). In a multi-process job (``jax.distributed``) every process calls
  this; process 0 alone writes and evaluates.

  Returns:
    ``{'runs': number of runs (of the part), 'trained': runs trained now, 'results': the
    table rows (None for a part)}``.

  Raises:
    ConfigError, DataError, DataFileNotFoundError, ChecksumError: bad input, nothing
      written. NonFiniteLossError: a run diverged (its last good checkpoint is kept).
  """
  all_runs = expand(config, workdir)
  shard = config.sweep.get("shard", "")
  runs = shard_runs(all_runs, shard)
  if os.path.isdir(os.path.join(workdir, "checkpoints")):
    raise errors.ConfigError(f"--workdir={workdir!r} holds a single run; a sweep needs its own "
                             "workdir")
  platform = jax.devices()[0].platform
  plan = groups(runs, config.sweep.get("sharing", "auto"), platform)
  datasets: dict[str, tuple[kdata.Dataset, kdata.Dataset]] = {}
  classifiers: dict[tuple, Any] = {}
  prepared = {}
  for run in runs:  # every check before the first write
    data_key = json.dumps(run.config.data.to_dict(), sort_keys=True)
    if data_key not in datasets:
      datasets[data_key] = kdata.load_datasets(run.config.data)
    try:
      # A study compares settings: its runs keep their optimiser settings too.
      prepared[run.name] = train.prepare(run.config, run.workdir, datasets[data_key],
                                         optim_may_change=False)
    except errors.ConfigError as e:
      raise errors.ConfigError(f"sweep run {run.name}: {e}") from None
    if run.config.eval.at_end_of_training:
      key = (run.config.eval.classifier_workdir, run.config.data.name)
      if key not in classifiers:
        classifiers[key] = evaluation.classifier_for(run.config)

  writer = sharding.is_writer()
  os.makedirs(workdir, exist_ok=True)
  config_path = os.path.join(workdir, "config.json")
  if writer and not (shard and os.path.exists(config_path)):
    study = config.to_dict()  # the study's config, not the part's
    study["sweep"]["shard"] = ""
    metric_writers.write_json(config_path, study)
  if config.sweep.get("executor", "local") == "ray" and not shard:
    programs = sum(len(members) if mode == "sequential" else 1 for mode, members in plan)
    return run_on_ray(config, workdir, all_runs, programs)
  status = {run.name: _finished(run) for run in runs}
  todo = [r for r in runs if status[r.name] != "done"]
  images = {r.name: r.config.train.batch_size * (len(prepared[r.name][1])
                                                 // r.config.train.batch_size)
            * r.config.train.num_epochs for r in runs}
  logging.info("kjax: sweep of %d runs in %d groups on %s (%d finished, %d to run) -> %s",
               len(runs), len(plan), platform, len(runs) - len(todo), len(todo), workdir)
  t0 = time.perf_counter()
  timing = {"platform": platform, "groups": []}
  done = len(runs) - len(todo)
  remaining = sum(images[r.name] for r in todo if status[r.name] == "")  # for the ETA
  for mode, members in plan:
    members = [r for r in members if status[r.name] != "done"]
    if not members:
      continue
    t_group = time.perf_counter()
    to_train = [r for r in members if status[r.name] == ""]
    if to_train:
      data = datasets[json.dumps(to_train[0].config.data.to_dict(), sort_keys=True)]
      chunks = [[r] for r in to_train] if mode == "sequential" or len(to_train) == 1 else [to_train]
      for chunk in chunks:  # each chunk is one compiled program, then its runs' evaluations
        remaining -= sum(images[r.name] for r in chunk)
        for t in _train_chunk(chunk, mode, data, {"runs_done": done, "runs_total": len(runs),
                                                  "images_after": remaining}):
          if t.config.eval.at_end_of_training and writer:  # process 0 evaluates
            evaluation.evaluate(t.config, t.workdir, t.task, t.state, t.train_ds, t.eval_ds,
                              classifiers[(t.config.eval.classifier_workdir,
                                           t.config.data.name)])
          kworkdir.unlock(t.workdir)  # locked by the training (kjax.workdir.lock)
        sharding.barrier(f"kjax_sweep_chunk_{chunk[0].name}")
        done += len(chunk)
    for run in members:  # trained before the sweep was killed, not yet evaluated
      if status[run.name] == "trained":
        if writer:
          with kworkdir.locked(run.workdir):
            evaluation.evaluate_workdir(run.config, run.workdir)
        done += 1
    sharding.barrier(f"kjax_sweep_group_{members[0].name}")
    timing["groups"].append({"sharing": mode, "runs": [r.name for r in members],
                             "wall_s": round(time.perf_counter() - t_group, 2)})
  timing["wall_s"] = round(time.perf_counter() - t0, 2)
  timing["runs_trained"] = len(todo)
  if not writer:
    return {"runs": len(runs), "trained": len(todo), "results": None}
  i, n = parse_shard(shard)
  _record_timing(os.path.join(
      workdir, "timing.json" if n == 1 else f"timing.part-{i}-of-{n}.json"), timing)
  if n > 1:
    logging.info("kjax: sweep part %s done (%d runs); when every part is done, merge them "
                 "with --mode=results (same --config and --workdir)", shard, len(runs))
    return {"runs": len(runs), "trained": len(todo), "results": None}
  rows = write_results(runs, workdir)
  return {"runs": len(runs), "trained": len(todo), "results": rows}


def _record_timing(path: str, timing: dict[str, Any]) -> None:
  """Appends ``timing`` to the invocations in ``path`` (a resumed sweep keeps the earlier
  ones) with their total ``wall_s``."""
  earlier = []
  if os.path.exists(path):
    with open(path) as f:
      earlier = json.load(f).get("invocations", [])
  invocations = earlier + [timing]
  metric_writers.write_json(path, {"invocations": invocations,
                                   "wall_s": round(sum(i["wall_s"] for i in invocations), 2)})


def _run_part(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """A Ray task: one part of a sweep (``config.sweep.shard`` set), in a fresh process."""
  logging.set_verbosity(logging.INFO)
  for handler in py_logging.getLogger().handlers + py_logging.getLogger("absl").handlers:
    progress.quiet_libraries(handler)
  return run_sweep(config, workdir)


def run_on_ray(config: ml_collections.ConfigDict, workdir: str, runs: list[Run],
               programs: int) -> dict[str, Any]:
  """``config.sweep.executor='ray'``: the sweep's parts (``config.sweep.parts``, 0: one per
  compiled program, ``programs``, at most one per run) as Ray tasks on the cluster
  ``ray.init()`` joins (``RAY_ADDRESS``; unset: a local instance), one GPU each where the
  cluster has GPUs, else one CPU; then the results of the whole study.

  Raises:
    ConfigError: Ray is not installed (``pip install 'kjax[ray]'``). A part's own error
      (e.g. NonFiniteLossError) is re-raised as Ray wraps it.
  """
  try:
    import ray  # noqa: PLC0415
  except ImportError:
    raise errors.ConfigError("config.sweep.executor='ray' needs Ray: pip install "
                             "'kjax[ray]' (or use config.sweep.shard='i/n' with any "
                             "scheduler)") from None
  workdir = os.path.abspath(workdir)
  parts = min(config.sweep.get("parts", 0) or programs, len(runs))
  if not ray.is_initialized():
    ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=True)
  gpus = ray.cluster_resources().get("GPU", 0)
  task = ray.remote(_run_part).options(**({"num_gpus": 1} if gpus else {"num_cpus": 1}))
  logging.info("kjax: sweep of %d runs as %d Ray tasks on %s", len(runs), parts,
               ray.cluster_resources())
  t0 = time.perf_counter()
  done = []
  for i in range(parts):
    part = ml_collections.ConfigDict(config.to_dict())
    part.sweep.shard = f"{i}/{parts}"
    part.sweep.executor = "local"
    part.sweep.parts = 0
    done.append(task.remote(part, workdir))
  outcomes = ray.get(done)
  _record_timing(os.path.join(workdir, "timing.json"), {
      "executor": "ray", "parts": parts, "wall_s": round(time.perf_counter() - t0, 2)})
  rows = write_results(runs, workdir)
  return {"runs": len(runs), "trained": sum(o["trained"] for o in outcomes), "results": rows}


def _train_chunk(chunk: list[Run], mode: str, data, progress) -> list[train.TrainedRun]:
  """``train.train_runs`` on ``chunk``; a run whose loss becomes non-finite is marked
  (``WORKDIR/runs/<name>/diverged.json``, its last good checkpoint kept) and the others
  train on without it, so one diverging setting does not stop the study."""
  while chunk:
    try:
      return train.train_runs([r.config for r in chunk], [r.workdir for r in chunk],
                              None if len(chunk) == 1 else mode, data, progress,
                              keep_locked=True)  # unlocked after each run's evaluation
    except errors.NonFiniteLossError as e:
      logging.warning("kjax: sweep: %s; the other runs go on", e)
      metric_writers.write_json(os.path.join(e.workdir, DIVERGED),
                                {"error": str(e), "step": e.step, "epoch": e.epoch,
                                 "last_good_checkpoint": e.last_good_step})
      chunk = [r for r in chunk if r.workdir != e.workdir]
  return []


def write_results(runs: list[Run], workdir: str) -> list[dict[str, Any]]:
  """``kjax.results.write_results`` for the runs of a sweep (finished ones tabulated)."""
  return results.write_results(workdir, [
      {"name": r.name, "settings": r.settings, "workdir": r.workdir} for r in runs])


def rebuild_results(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """``--mode=results``: the study's table, figures and report from its finished runs,
  training nothing.

  Raises:
    ConfigError: a bad sweep section, or ``workdir`` holds no run of this sweep.
  """
  runs = expand(config, workdir)
  if not any(os.path.exists(os.path.join(r.workdir, "summary.json")) for r in runs):
    raise errors.ConfigError(f"--workdir={workdir!r} holds no finished run of this sweep")
  return write_results(runs, workdir)


def evaluate_sweep(config: ml_collections.ConfigDict, workdir: str) -> None:
  """``--mode=evaluate`` on a sweep: re-evaluates every trained run, then the results.

  Raises:
    ConfigError: as ``kjax.evaluation.evaluate_workdir`` for the first run that fails.
  """
  runs = expand(config, workdir)
  for run in runs:
    if os.path.exists(os.path.join(run.workdir, "checkpoints")):
      with kworkdir.locked(run.workdir):
        evaluation.evaluate_workdir(run.config, run.workdir)
  write_results(runs, workdir)
