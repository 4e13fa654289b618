"""Training and evaluating a sweep's runs, group by group, then its results (the package
docstring: ``kjax.sweep``)."""

from __future__ import annotations

import json
import logging as py_logging
import os
import time
from typing import Any

from absl import logging
import jax
import ml_collections

from kjax import data as kdata
from kjax import errors
from kjax import evaluation
from kjax import metric_writers
from kjax import preemption
from kjax import progress
from kjax import results
from kjax import sharding
from kjax import train
from kjax import workdir as kworkdir
from kjax.sweep.grid import DIVERGED, Run, expand, groups, parse_shard, shard_runs

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
  datasets, prepared, classifiers = _check(runs)  # every check before the first write
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
  count = {"done": len(runs) - len(todo), "total": len(runs),  # for the progress line's ETA
           "remaining": sum(images[r.name] for r in todo if status[r.name] == "")}
  for mode, members in plan:
    members = [r for r in members if status[r.name] != "done"]
    if members:
      timing["groups"].append(_run_group(mode, members, status, datasets, classifiers, images,
                                         count))
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


def _data_key(run: Run) -> str:
  return json.dumps(run.config.data.to_dict(), sort_keys=True)


def _check(runs: list[Run]) -> tuple[dict, dict, dict]:
  """Every check of a sweep before its first write: each run's data (loaded once per data
  section), config and workdir (``train.prepare``) and domain evaluator.

  Returns:
    ``(datasets by data section, train.prepare's result by run name, evaluators by
    (classifier_workdir, data set))``.
  """
  datasets: dict[str, tuple[kdata.Dataset, kdata.Dataset]] = {}
  classifiers: dict[tuple, Any] = {}
  prepared = {}
  for run in runs:
    if _data_key(run) not in datasets:
      datasets[_data_key(run)] = kdata.load_datasets(run.config.data)
    try:
      # A study compares settings: its runs keep their optimiser settings too.
      prepared[run.name] = train.prepare(run.config, run.workdir, datasets[_data_key(run)],
                                         optim_may_change=False)
    except errors.ConfigError as e:
      raise errors.ConfigError(f"sweep run {run.name}: {e}") from None
    if run.config.eval.at_end_of_training:
      key = (run.config.eval.classifier_workdir, run.config.data.name)
      if key not in classifiers:
        classifiers[key] = evaluation.classifier_for(run.config)
  return datasets, prepared, classifiers


def _run_group(mode: str, members: list[Run], status: dict[str, str], datasets, classifiers,
               images: dict[str, int], count: dict[str, int]) -> dict[str, Any]:
  """Trains a group's unfinished runs (one compiled program, or one after another for
  ``sequential``), evaluates each on process 0, and evaluates the runs trained before a
  kill; returns the group's timing record. ``count`` (runs done, images left) is updated
  for the progress line."""
  t_group = time.perf_counter()
  writer = sharding.is_writer()
  to_train = [r for r in members if status[r.name] == ""]
  if to_train:
    data = datasets[_data_key(to_train[0])]
    chunks = [[r] for r in to_train] if mode == "sequential" or len(to_train) == 1 else [to_train]
    for chunk in chunks:  # each chunk is one compiled program, then its runs' evaluations
      count["remaining"] -= sum(images[r.name] for r in chunk)
      for t in _train_chunk(chunk, mode, data, {"runs_done": count["done"],
                                                "runs_total": count["total"],
                                                "images_after": count["remaining"]}):
        if t.config.eval.at_end_of_training and writer:  # process 0 evaluates
          evaluation.evaluate(t.config, t.workdir, t.task, t.state, t.train_ds, t.eval_ds,
                              classifiers[(t.config.eval.classifier_workdir,
                                           t.config.data.name)])
        kworkdir.unlock(t.workdir)  # locked by the training (kjax.workdir.lock)
        preemption.phase("between_runs", t.workdir)
      sharding.barrier(f"kjax_sweep_chunk_{chunk[0].name}")
      count["done"] += len(chunk)
  for run in members:  # trained before the sweep was killed, not yet evaluated
    if status[run.name] == "trained":
      if writer:
        with kworkdir.locked(run.workdir):
          evaluation.evaluate_workdir(run.config, run.workdir)
      count["done"] += 1
  sharding.barrier(f"kjax_sweep_group_{members[0].name}")
  return {"sharing": mode, "runs": [r.name for r in members],
          "wall_s": round(time.perf_counter() - t_group, 2)}


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
