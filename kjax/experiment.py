"""One run end to end: train, then evaluate. The only module that calls both.

``kjax.train`` runs the loop and writes the workdir contract; ``kjax.evaluation`` measures a
trained state. A sweep (``kjax.sweep``) builds on the same two functions for many runs.
"""

from __future__ import annotations

import os
import time
from typing import Any

from absl import logging
import ml_collections

from kjax import evaluation
from kjax import metric_writers
from kjax import sharding
from kjax import train
from kjax import validation
from kjax import workdir as kworkdir


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the model of ``config.model.name`` in ``workdir`` (resuming from its newest
  checkpoint), then, with ``config.eval.at_end_of_training``, evaluates it
  (``WORKDIR/eval/metrics.json``, ``WORKDIR/report.html``).

  A bad ``config.eval.classifier_workdir`` is refused before anything is written. In a
  multi-process job every process trains; process 0 alone evaluates and writes while the
  others wait for it.

  Returns:
    The run's summary (``WORKDIR/summary.json``): step, epoch and the last epoch's
    ``train/*`` and ``eval/*`` metrics.

  Raises:
    ConfigError, DataError, DataFileNotFoundError, ChecksumError: bad input (nothing
      written).
    WorkdirLockedError: another process trains or evaluates ``workdir``.
    Interrupted: SIGTERM/SIGINT stopped the training at a checkpoint.
    NonFiniteLossError: a loss became NaN/Inf; the last good checkpoint is kept.
    WriteError: a checkpoint or file could not be written (full disk, ...).
  """
  t_start = time.perf_counter()
  evaluate_at_end = config.get("eval", {}).get("at_end_of_training", False)
  if evaluate_at_end:
    validation.validate_config(config)  # a bad value names itself before the classifier
  classifier = evaluation.classifier_for(config) if evaluate_at_end else None
  def evaluation_s(images_per_s: float, num_train: int, num_eval: int) -> float:
    return evaluation.estimate_seconds(config, config.model.name, num_train, num_eval,
                                       images_per_s)

  try:
    return _train_and_evaluate(config, workdir, classifier, evaluate_at_end, evaluation_s,
                               t_start)
  finally:
    kworkdir.unlock(workdir)  # taken by the training (kjax.workdir.lock)


def _train_and_evaluate(config, workdir, classifier, evaluate_at_end, evaluation_s, t_start):
  run = train.train(config, workdir, progress={"evaluation_s": evaluation_s}, keep_locked=True)
  t_trained = time.perf_counter()
  result = None
  if sharding.is_writer():
    step = int(run.summary.get("step", 0))
    if evaluate_at_end and not run.timing.get("steps_run") and evaluation.is_up_to_date(
        config, workdir, step, classifier):
      # A finished run launched again: the same checkpoint, settings and evaluator.
      logging.info("kjax: %s is already evaluated at step %d with these eval settings "
                   "(%s); not evaluating again", workdir, step,
                   os.path.join(workdir, "eval", "metrics.json"))
    elif evaluate_at_end:
      result = evaluation.evaluate(config, workdir, run.task, run.state, run.train_ds,
                                   run.eval_ds, classifier)
    if result is not None or run.timing.get("steps_run"):
      # Not for a finished run launched again: its timing.json keeps the measured run.
      record_phases(workdir, run.timing, t_trained - t_start, result,
                    time.perf_counter() - t_start)
  sharding.barrier("kjax_run_done")
  return run.summary


def record_phases(workdir: str, timing: dict[str, Any], training_s: float,
                  evaluation: dict[str, Any] | None, total_s: float) -> dict[str, Any]:
  """Rewrites ``WORKDIR/timing.json`` as the training loop's ``timing`` plus the run's
  phases (seconds, ``phases_s``) and logs them on one line: loading the data and training
  (its compile, per-epoch evaluation and final figures inside), then the evaluation (each
  of its parts) and the report.

  Returns:
    ``phases_s``: ``{'training': s, 'compile': s, 'final_figures': s, 'evaluation': s,
    'evaluation_parts': {name: s}, 'total': s}``.
  """
  timing = dict(timing)
  phases = {"training": round(training_s, 1), "compile": round(timing.get("compile_s") or 0, 1),
            "final_figures": timing.get("final_figures_s")}
  if evaluation is not None:
    parts = dict(evaluation["timing_s"])
    phases["evaluation"] = parts.pop("total")
    phases["evaluation_parts"] = parts
  phases["total"] = round(total_s, 1)
  timing["phases_s"] = phases
  timing["peak_rss_mib"] = round(train.peak_rss_mib())
  metric_writers.write_json(os.path.join(workdir, "timing.json"), timing)
  evaluation_line = ""
  if evaluation is not None:
    evaluation_line = (f", evaluation {phases['evaluation']:.1f} s ("
                       + ", ".join(f"{k} {v:.1f}" for k, v in phases["evaluation_parts"].items())
                       + ")")
  logging.info("kjax: phases: training %.1f s (compile %.1f, final figures %.1f)%s; "
               "total %.1f s; peak RSS %.0f MiB", phases["training"], phases["compile"],
               phases["final_figures"] or 0.0, evaluation_line, phases["total"],
               timing["peak_rss_mib"])
  return phases
