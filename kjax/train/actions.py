"""What happens between chunks of train steps: actions that each fire on their own cadence.

The loop (``kjax.train.loop``) hands every ``Tick`` (``kjax.train.program``) to these
actions, always in this order (each may rely on the ones before it):

1. ``Sync``: at a sync point (a log step inside the chunk, an epoch end, a checkpoint
   step) copies the chunk's running sums to the host, once, and stops on a non-finite
   loss with its diagnosis, so that no checkpoint ever holds one; agrees on a stop signal
   (every process of a job at the same sync point; a single process after every chunk).
2. ``LogSteps``: ``train_steps/`` points at every log step inside the chunk
   (``config.train.log_every_steps``, whatever ``steps_per_call``), every epoch end,
   checkpoint step and stop; the progress line.
3. ``EpochEnd``: the epoch's evaluation, ``metrics.jsonl`` row, previews, frames and
   progress figures; zeroes the running sums.
4. ``Checkpoint``: every run's checkpoint at a checkpoint step or on a stop signal.
5. ``Stop``: after the stop's checkpoint, flushes and raises ``Interrupted``.

Like clu's periodic actions, but on chunks: kjax runs several steps per compiled call.
"""

from __future__ import annotations

import math
import os
import signal
import time
from typing import Any, Sequence

from absl import logging
import jax

from kjax import checkpointing
from kjax import errors
from kjax import evaluator as kevaluator
from kjax import frames as kframes
from kjax import preemption
from kjax import sharding as ksharding
from kjax.train.program import Program, Tick
from kjax.train.resume import lower_learning_rate_flags
from kjax.train.runs import RunSlot


def window_means(names: Sequence[str], host: dict, since: dict | None = None
                 ) -> list[dict[str, float]]:
  """Per-run means of the train metrics ``names`` over the steps between the host running
  sums ``since`` (None: the epoch's start) and ``host`` (float ``[R]`` leaves):
  ``(sum - sum_since) / (count - count_since)``; NaN over no steps."""
  means = []
  for r in range(len(host["count"])):
    n = float(host["count"][r]) - (float(since["count"][r]) if since else 0.0)
    means.append({k: (float(host[k][r]) - (float(since[k][r]) if since else 0.0)) / n
                  if n > 0 else math.nan for k in names})
  return means


def close_all(runs: Sequence[RunSlot]) -> None:
  """Waits for every run's checkpoint in flight and flushes its logs."""
  for run in runs:
    run.ckpt.close()
  for run in runs:
    run.writer.close()


class Sync:
  """Host copy, NaN guard and signal agreement (action 1)."""

  def __init__(self, program: Program, runs: Sequence[RunSlot], stops: preemption.StopSignals,
               start_step: int, in_sweep: bool):
    self.program, self.runs, self.stops = program, runs, stops
    self.start_step, self.in_sweep = start_step, in_sweep
    self.finite_since_restore = not start_step  # a finite loss seen since the restore
    self.multiprocess = jax.process_count() > 1

  def log_points(self, tick: Tick) -> list[int]:
    """The steps of ``tick``'s chunk that get ``train_steps/`` points."""
    every = self.program.log_every
    points = [s for s in range(tick.step - tick.n + 1, tick.step + 1) if s % every == 0]
    if (tick.epoch_end or tick.save_due) and tick.step not in points:
      points.append(tick.step)
    return points

  def __call__(self, tick: Tick) -> None:
    tick.points = self.log_points(tick)
    sync = bool(tick.points)
    if self.multiprocess:  # a collective: only at sync points, which depend on the step
      tick.stop = self.stops.agreed(True) if sync else None
    else:
      tick.stop = self.stops.agreed(False)
    if not (sync or tick.stop):
      return
    if tick.stop and tick.step not in tick.points:
      tick.points.append(tick.step)  # the stop's checkpoint step: a resumed run starts there
    tick.host = self.program.host_copy(tick.marks)
    last = {k: v[:, -1] for k, v in tick.host["sums"].items()}
    tick.means = window_means(self.program.task.train_metrics, last)
    for r, m in enumerate(tick.means):
      if not all(math.isfinite(v) for v in m.values()):
        self.stop_non_finite(r, tick.step, tick.epoch)
    self.finite_since_restore = True

  def stop_non_finite(self, r: int, step: int, epoch: int) -> None:
    """Raises ``NonFiniteLossError`` for run ``r`` with its diagnosis and what to do."""
    run = self.runs[r]
    latest = run.ckpt.latest_step()
    close_all(self.runs)
    w, start = run.workdir, self.start_step
    if not self.finite_since_restore and (not run.restored_finite or run.record is None):
      # Right after restoring a state that holds NaN/Inf, or one without checksums (saved
      # by an older kjax): the checkpoint, not the step size, is the suspect.
      where = os.path.join(w, "checkpoints", str(start))
      why = ("it holds non-finite values" if not run.restored_finite else
             "it has no checksums to verify it")
      older = [s for s in run.ckpt.all_steps() if s < start]
      then = (f"resume from the one at step {older[-1]}" if older else "train afresh")
      message = (
          f"the training loss of {w} became non-finite by step {step}, within "
          f"{step - start} step(s) of resuming: the checkpoint at step {start} may "
          f"be corrupt ({why}); move {where} into "
          f"{os.path.join(w, checkpointing.CORRUPT_DIR)}/ and run the same command to {then}")
    elif self.in_sweep:
      message = (f"the training loss of {w} became non-finite by step {step} (epoch "
                 f"{epoch + 1}); the last good checkpoint (step {latest}) is kept")
    elif latest is None:
      message = (f"the training loss of {w} became non-finite by step {step} (epoch "
                 f"{epoch + 1}), before any checkpoint; run the same command with "
                 f"{lower_learning_rate_flags(run.config)} to start again with a smaller step")
    else:
      message = (f"the training loss of {w} became non-finite by step {step} (epoch "
                 f"{epoch + 1}); the last good checkpoint (step {latest}) is kept; to continue "
                 f"from it with a smaller step, run the same command with "
                 f"{lower_learning_rate_flags(run.config)}")
    raise errors.NonFiniteLossError(message, w, step, epoch + 1, latest)


class LogSteps:
  """``train_steps/`` points and the progress line (action 2).

  At each point: ``train_steps/<metric>``, the mean over the steps since the previous
  point; the learning rate(s) of that step's update; ``perf/images_per_s``, the rate of
  the program since the previous sync point (all runs of a stack together, evaluation
  excluded). The progress line's ETA uses the mean rate since the first chunk.
  """

  def __init__(self, program: Program, runs: Sequence[RunSlot], start_step: int,
               restored_sums: dict | None, progress: dict[str, Any] | None, num_eval: int):
    self.program, self.runs = program, runs
    self.start_step, self.progress, self.num_eval = start_step, progress or {}, num_eval
    self.images_per_step = program.batch_size * program.num_runs
    # The host sums at the previous point: the restored ones after a resume mid-epoch
    # (every checkpoint step is a point), None (zero) at the start of an epoch.
    self.sums_logged = restored_sums
    self.t_log, self.step_log = time.perf_counter(), start_step

  def restart_clock(self) -> None:
    """The shown rate is of training steps only: called after an epoch's evaluation."""
    self.t_log = time.perf_counter()

  def __call__(self, tick: Tick) -> None:
    if tick.host is None:
      return
    program, names = self.program, self.program.task.train_metrics
    now = time.perf_counter()
    rate = (tick.step - self.step_log) * self.images_per_step / max(now - self.t_log, 1e-9)
    if self.step_log > self.start_step:  # skip the window that includes the first call
      program.timing["steady_images_per_s"] = rate
    marks = tick.host
    for s in tick.points:
      j = s - (tick.step - tick.n) - 1
      host = {k: v[:, j] for k, v in marks["sums"].items()}
      window = window_means(names, host, self.sums_logged)
      self.sums_logged = host
      for r, run in enumerate(self.runs):
        run.writer.write_scalars(s, {
            **{f"train_steps/{k}": v for k, v in window[r].items()},
            **{f"train_steps/{k}": float(v[r, j]) for k, v in marks["learning_rates"].items()},
            "perf/images_per_s": rate})
    self._progress_line(tick, rate, now)
    self.t_log, self.step_log = now, tick.step
    if tick.epoch_end:
      self.sums_logged = None

  def _progress_line(self, tick: Tick, rate: float, now: float) -> None:
    program, p = self.program, self.progress
    overall = (tick.step - self.start_step) * self.images_per_step / max(
        now - program.t_first, 1e-9)
    images_left = (program.total_steps - tick.step) * self.images_per_step + p.get(
        "images_after", 0)
    prefix = (f"sweep: {p['runs_done']}/{p['runs_total']} runs done, {program.num_runs} "
              "training | " if "runs_total" in p else "")
    eta_s = images_left / max(overall, 1e-9)
    eta = hms(eta_s)
    if "evaluation_s" in p:
      evaluation_s = p["evaluation_s"](overall, program.num_examples, self.num_eval)
      if evaluation_s:
        eta = f"{hms(eta_s + evaluation_s)} (training {eta}, then evaluation ≈ {hms(evaluation_s)})"
    num_epochs = program.total_steps // program.steps_per_epoch
    logging.info("%sepoch %d/%d step %d/%d %s | %.0f images/s | ETA %s", prefix, tick.epoch + 1,
                 num_epochs, tick.step, program.total_steps,
                 " ".join(f"train/{k} {tick.means[0][k]:.3f}"
                          for k in program.task.log_metrics), rate, eta)


class EpochEnd:
  """The epoch's evaluation, records, previews, frames and progress figures (action 3)."""

  def __init__(self, program: Program, runs: Sequence[RunSlot], eval_ds, log: LogSteps):
    config = runs[0].config
    self.program, self.runs, self.log = program, runs, log
    eval_keys = [r.keys["eval"] for r in runs]
    eval_key = (eval_keys[0] if program.sharing is None
                else jax.numpy.stack(ksharding.pad_runs(eval_keys, program.mesh)))
    self.evaluator = kevaluator.Evaluator(program.task, eval_ds, config.train.eval_batch_size,
                                          eval_key, program.sharing, program.mesh,
                                          program.num_runs)
    self.progress_every = config.figures.get("progress_every_epochs", 0)
    self.preview_every = config.figures.get("preview_every_epochs", 1)
    for run in runs:
      run.figure_inputs = run.task.figure_inputs(program.train_ds, eval_ds, run.keys["figures"])

  def __call__(self, tick: Tick) -> None:
    if not tick.epoch_end:
      return
    program, epoch = self.program, tick.epoch
    evals = self.evaluator(program.state)
    evals = [evals] if program.sharing is None else evals
    due = [self._due(tick, self.preview_every), self._due(tick, self.progress_every)]
    local_state = ksharding.local(program.state) if any(due) else None  # process 0 draws
    for r, run in enumerate(self.runs):
      metrics = {f"train/{k}": v for k, v in tick.means[r].items()}
      metrics.update({f"eval/{k}": v for k, v in evals[r].items()})
      run.writer.write(tick.step, epoch + 1, metrics)
      logging.info("epoch %d%s: %s", epoch + 1,
                   f" ({run.workdir})" if len(self.runs) > 1 else "",
                   " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
      if any(due) and ksharding.is_writer():
        self._figures(run, program.run_state(local_state, r), tick, *due)
    program.reset_sums()
    self.log.restart_clock()

  def _due(self, tick: Tick, every: int) -> bool:
    """Whether a figure drawn every ``every`` epochs (0: never) is due at ``tick``'s epoch
    end: every ``every``-th epoch, the first and the last."""
    return bool(every) and ((tick.epoch + 1) % every == 0 or tick.epoch == 0
                            or tick.step == self.program.total_steps)

  def _figures(self, run: RunSlot, state: Any, tick: Tick, previews_due: bool,
               progress_due: bool) -> None:
    """The previews (``frames/``, TensorBoard's images) every ``figures.
    preview_every_epochs`` epochs, the progress figure every ``figures.
    progress_every_epochs``. Measured for issue 27 on the CVAE's 0.1 s epochs: previews 4
    ms, their TensorBoard PNGs 24–34 ms, a progress figure 7 ms (130 ms with matplotlib);
    every epoch, the work between chunks was 0.8× the steps."""
    epoch, w = tick.epoch + 1, run.workdir
    if previews_due:
      previews = run.task.previews(state, run.figure_inputs)
      run.writer.write_images(tick.step, previews)
      kframes.save_frames(os.path.join(w, kframes.FRAMES_DIR), epoch, previews)
    if progress_due:
      os.makedirs(os.path.join(w, "figures", "progress"), exist_ok=True)
      run.task.progress_figure(state, run.figure_inputs, epoch, os.path.join(
          w, "figures", "progress", f"epoch_{epoch:04d}.png"))


class Checkpoint:
  """Every run's checkpoint at a checkpoint step or on a stop signal (action 4); in a job
  of several processes the saves are collective and one at a time (``Checkpointer``)."""

  def __init__(self, program: Program, runs: Sequence[RunSlot]):
    self.program, self.runs = program, runs

  def save(self, step: int) -> None:
    """Starts the checkpoint of ``step`` for every run."""
    for r, run in enumerate(self.runs):
      run.save(step, self.program.run_state(self.program.state, r),
               self.program.run_state(self.program.sums, r))

  def __call__(self, tick: Tick) -> None:
    if tick.save_due or tick.stop:
      self.save(tick.step)


class Stop:
  """After the stop's checkpoint was started: waits for it, flushes, raises (action 5)."""

  def __init__(self, program: Program, runs: Sequence[RunSlot]):
    self.program, self.runs = program, runs

  def __call__(self, tick: Tick) -> None:
    if tick.stop:
      self.stop(tick.stop, tick.step, tick.epoch)

  def stop(self, signum: int, step: int, epoch: int) -> None:
    """Raises ``Interrupted`` (exit status 128 + ``signum``) naming the checkpoint."""
    close_all(self.runs)
    names = [r.workdir for r in self.runs]
    where = names[0] if len(names) == 1 else f"{len(names)} runs ({', '.join(names)})"
    num_epochs = self.program.total_steps // self.program.steps_per_epoch
    raise errors.Interrupted(
        f"stopped by {signal.Signals(signum).name} at step {step}/{self.program.total_steps} "
        f"(epoch {epoch + 1}/{num_epochs}); checkpoint saved in {where}; run the same "
        "command again to resume from it", preemption.exit_code(signum))


def hms(seconds: float) -> str:
  """``H:MM:SS``."""
  seconds = int(seconds)
  return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

