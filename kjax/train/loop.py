"""The training loop: restore, then chunks of steps, each tick handed to the actions.

``train`` runs one run, ``train_runs`` a stack of runs sharing one compiled program (a
sweep's group). The pieces: ``kjax.train.program`` (the compiled chunks, data and keys on
the mesh), ``kjax.train.resume`` (restore, optimiser changes, set-aside),
``kjax.train.actions`` (what fires between chunks, in a fixed order) and
``kjax.train.finish`` (summary, timing, final figures).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Sequence

from absl import logging
import jax
import ml_collections

from kjax import checkpointing
from kjax import compile_cache
from kjax import data as kdata
from kjax import errors
from kjax import metric_writers
from kjax import preemption
from kjax import rng
from kjax import sharding as ksharding
from kjax import tasks
from kjax import validation
from kjax import workdir as kworkdir
from kjax.train import actions
from kjax.train.finish import finish
from kjax.train.program import Program, stack, zero_sums
from kjax.train.resume import resume
from kjax.train.runs import RunSlot
from kjax.trained import TrainedRun


def prepare(config: ml_collections.ConfigDict, workdir: str,
            datasets: tuple[kdata.Dataset, kdata.Dataset] | None = None,
            optim_may_change: bool = True
            ) -> tuple[tasks.Task, kdata.Dataset, kdata.Dataset]:
  """Checks ``config`` and its data before anything is written; loads the splits unless
  ``datasets`` are given.

  ``optim_may_change``: a run with a checkpoint may continue with other ``optim.*``
  settings (``kjax.workdir.check_resumable``); a sweep passes False.

  Returns:
    ``(task, train_ds, eval_ds)``.

  Raises:
    ConfigError, DataError: a bad config value or split, a ``config.mesh`` that does not
      fit the devices, or a workdir whose run (the config its newest checkpoint recorded,
      else its ``config.json``) belongs to another experiment.
    DataFileNotFoundError, ChecksumError: missing or non-official data.
  """
  validation.validate_config(config)
  kworkdir.check_writable(workdir)
  mesh = config.get("mesh") or {}
  ksharding.mesh_shape(jax.device_count(), 1, mesh.get("runs", 0), mesh.get("data", 0))
  preemption.phase("data", workdir)
  train_ds, eval_ds = datasets or kdata.load_datasets(config.data)
  if config.train.batch_size > len(train_ds):
    raise validation.ConfigError(
        f"config.train.batch_size={config.train.batch_size} is not allowed: the train split "
        f"{config.data.train_split!r} has only {len(train_ds)} examples")
  kworkdir.check_resumable(workdir, config.to_dict(), optim_may_change=optim_may_change)
  if ksharding.is_writer():
    kworkdir.check_unlocked(workdir)  # the lock is taken once the data has loaded
  return tasks.get_task(config, len(train_ds)), train_ds, eval_ds


def train(config: ml_collections.ConfigDict, workdir: str,
          progress: dict[str, Any] | None = None, keep_locked: bool = False) -> TrainedRun:
  """Trains the model of ``config.model.name``, evaluating every epoch, and writes the
  workdir contract (DESIGN.md): ``config.json``, ``metrics.jsonl``, ``summary.json``,
  ``timing.json``, ``checkpoints/``, ``figures/``, ``frames/``, TensorBoard events.

  Resumes from the newest checkpoint in ``workdir`` if there is one. The config and the
  data are checked before the workdir is created.

  TensorBoard tags (events in ``workdir``; ``kjax.metric_writers``):

  * every epoch (as ``metrics.jsonl``): ``train/<metric>``, the epoch's mean of each
    train metric, and ``eval/<metric>``, the evaluation split's mean (nats per image for
    ``loss``, ``rec``, ``kl``, ``nelbo``); the ``samples`` (and task-specific) previews
    every ``figures.preview_every_epochs`` epochs (default 1), the first and the last, as
    ``frames/``.
  * every log step (``config.train.log_every_steps``, every epoch end and every
    checkpoint step): ``train_steps/<metric>``, the mean of each train metric over the
    steps since the previous log step; ``train_steps/learning_rate`` (the CGAN:
    ``train_steps/g_learning_rate`` and ``train_steps/d_learning_rate``), the rate of the
    step's update (``learning_rates``); ``perf/images_per_s``, the training throughput of
    the whole program since the previous log step (images/s, all runs of a stack
    together, evaluation excluded; the rate of the progress line).
  * after the evaluation (``kjax.experiment``): ``evaluation/<metric>`` and the HPARAMS
    session (``kjax.metric_writers.log_evaluation``).

  ``progress`` (optional, as ``train_runs``'s): ``{'evaluation_s': fn}`` adds the
  evaluation still to come to the progress line's ETA. ``keep_locked``: as ``train_runs``'s.

  Raises:
    ConfigError, DataError, DataFileNotFoundError, ChecksumError: see ``prepare`` (nothing
      written).
    NonFiniteLossError: a loss became NaN/Inf; the last good checkpoint is kept.
    Interrupted: SIGTERM/SIGINT; a checkpoint was saved at the step reached
      (``kjax.preemption``).
    WorkdirLockedError: another process trains or evaluates ``workdir``.
    WriteError: a checkpoint or file could not be written (full disk, ...).
  """
  return train_runs([config], [workdir], progress=progress, keep_locked=keep_locked)[0]


def train_runs(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
               sharing: str | None = None,
               datasets: tuple[kdata.Dataset, kdata.Dataset] | None = None,
               progress: dict[str, Any] | None = None,
               keep_locked: bool = False) -> list[TrainedRun]:
  """Trains R runs in one compiled program: ``train`` for each, stacked on a run axis.

  The runs must share every array shape and the code of the step (a sweep's group,
  ``kjax.sweep``): same model, data and schedule, different seeds and per-run
  hyper-parameters (β, learning rates, …, carried as arrays in the state). Each run keeps
  its own PRNG streams, data order, checkpoints and workdir contract, so its workdir is
  that of the same run trained alone. Floating-point order may differ from the solo run
  where XLA compiles the stacked step differently.

  Every device of every process works on the program (``kjax.sharding``: ``vmap``ped runs
  over the mesh's ``runs`` axis, padded to a multiple of it; each batch over ``data``).
  In a multi-process job every process calls this with the same arguments; only process 0
  writes files (``kjax.sharding.is_writer``) and checkpoints are saved collectively.

  Args:
    configs, workdirs: one per run.
    sharing: None for one run; ``'vmap'`` or ``'map'`` (``kjax.evaluator.over_runs``).
    datasets: ``(train_ds, eval_ds)`` already loaded (shared by every run), or None.
    keep_locked: keep the workdirs' locks (``kjax.workdir.lock``, taken once the data
      has loaded) after returning, for the evaluation that follows; the caller unlocks.
      Otherwise, and on any error, they are released on return.
    progress: for a sweep's progress line: ``{'runs_done', 'runs_total',
      'images_after'}`` (images of the groups still to come, for the ETA); and/or
      ``{'evaluation_s': fn}``, ``fn(images_per_s, num_train, num_eval) -> seconds``, an
      estimate of the evaluation after training, added to the ETA and shown apart.

  Returns:
    One ``TrainedRun`` per run, in order.

  Raises:
    As ``train``; errors name the run's workdir.
  """
  if sharing is None and len(configs) != 1:
    raise ValueError(f"{len(configs)} runs need sharing='vmap' or 'map'")
  compile_cache.enable()
  try:
    runs = _train_runs(configs, workdirs, sharing, datasets, progress)
  except BaseException:
    keep_locked = False
    raise
  finally:
    if not keep_locked:
      for w in workdirs:
        kworkdir.unlock(w)
  return runs


def _train_runs(configs, workdirs, sharing, datasets, progress):
  """Restores the runs, then runs the chunks of steps, handing each tick to the actions
  (``kjax.train.actions``, in their documented order); then the final checkpoint and
  each run's summary, timing and figures."""
  prepared = [prepare(c, w, datasets) for c, w in zip(configs, workdirs)]
  task, train_ds, eval_ds = prepared[0]
  program = Program(task, configs, train_ds, sharing)
  runs = _open(configs, workdirs, [p[0] for p in prepared], program)
  fresh = [r.task.fresh_state(r.keys["init"]) for r in runs]
  states, sums, start_step = resume(runs, fresh, [zero_sums(task.train_metrics) for _ in runs],
                                    program.total_steps)
  for run in runs:
    run.writer = metric_writers.MetricWriter(
        run.workdir, resume_step=start_step, enabled=ksharding.is_writer(),
        history=(run.record or {}).get("history"),
        tensorboard=start_step < program.total_steps or not program.total_steps)
  program.load(states, sums, [r.keys for r in runs])
  # After a resume mid-epoch the restored sums are those of the previous log point.
  restored_sums = (ksharding.to_host(stack(sums)) if start_step % program.steps_per_epoch
                   else None)
  t_start, step = time.perf_counter(), start_step
  with _finish_saves_on_error(runs):
    with preemption.StopSignals() as stops:
      sync = actions.Sync(program, runs, stops, start_step,
                          in_sweep=bool(progress and "runs_total" in progress))
      log = actions.LogSteps(program, runs, start_step, restored_sums, progress, len(eval_ds))
      checkpoint, stop = actions.Checkpoint(program, runs), actions.Stop(program, runs)
      every_tick = [sync, log, actions.EpochEnd(program, runs, eval_ds, log), checkpoint, stop]
      for tick in program.ticks(start_step):
        for action in every_tick:
          action(tick)
        step = tick.step
      # A signal during the last epoch's end (its evaluation, previews): training is done;
      # stop before the final figures and evaluation, which the next launch then does.
      last = stops.agreed(jax.process_count() > 1)
      if last:
        checkpoint.save(step)
        stop.stop(last, step, step // program.steps_per_epoch - 1)
    preemption.phase("final_checkpoint", workdirs[0])
    checkpoint.save(step)
    for run in runs:
      run.ckpt.close()
  timing = {**program.timing, "wall_s": time.perf_counter() - t_start,
            "steps_run": step - start_step}
  local_state = ksharding.local(program.state)
  results = []
  for r, run in enumerate(runs):
    s = program.run_state(local_state, r)
    summary, run_timing = finish(run.config, run.workdir, run.task, s, run.writer, timing,
                                 train_ds, eval_ds, step, run.figure_inputs)
    results.append(TrainedRun(run.config, run.workdir, run.task, s, step, train_ds, eval_ds,
                              summary, run_timing))
  return results


def _open(configs, workdirs, run_tasks, program) -> list[RunSlot]:
  """Locks every workdir (process 0; released by ``train_runs``) and makes it; the runs'
  slots."""
  for w in workdirs:
    if ksharding.is_writer():
      kworkdir.lock(w)
    os.makedirs(w, exist_ok=True)
  logging.info("kjax: %s -> %s on %s (mesh %s, %d process(es))",
               "; ".join(t.describe() for t in run_tasks), ", ".join(workdirs),
               jax.devices()[0].platform, dict(program.mesh.shape), jax.process_count())
  return [RunSlot.open(c, w, t, rng.stream_keys(c.seed))
          for c, w, t in zip(configs, workdirs, run_tasks)]


@contextlib.contextmanager
def _finish_saves_on_error(runs):
  """On an exception out of the training loop (a full disk, a bug, a stop), waits for the
  checkpoints still being written and flushes the logs before it propagates, so that every
  checkpoint started is complete or absent (errors while closing are logged, not raised:
  the first error is the one to report). Not in a multi-process job: there closing is a
  collective, and after a failed collective (another process died) it would wait for the
  dead process and abort; orbax's commit-by-rename keeps the last complete checkpoint."""
  try:
    yield
  except BaseException:
    if jax.process_count() > 1:
      raise
    for closer in (*(r.ckpt for r in runs), *(r.writer for r in runs)):
      try:
        closer.close()
      except errors.WriteError:  # the disk the first error already reported
        pass
      except Exception as e:  # noqa: BLE001
        logging.warning("kjax: while stopping: %s",
                        checkpointing.first_line(e) or type(e).__name__)
    raise


