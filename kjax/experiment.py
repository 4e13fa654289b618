"""One run end to end: train, then evaluate. The only module that calls both.

``kjax.train`` runs the loop and writes the workdir contract; ``kjax.evaluate`` measures a
trained state. A sweep (``kjax.sweep``) builds on the same two functions for many runs.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from kjax import evaluate
from kjax import train
from kjax import validation


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the model of ``config.model.name`` in ``workdir`` (resuming from its newest
  checkpoint), then, with ``config.eval.at_end_of_training``, evaluates it
  (``WORKDIR/eval/metrics.json``, ``WORKDIR/report.html``).

  A bad ``config.eval.classifier_workdir`` is refused before anything is written.

  Returns:
    The run's summary (``WORKDIR/summary.json``): step, epoch and the last epoch's
    ``train/*`` and ``eval/*`` metrics.

  Raises:
    ConfigError, DataError, DataFileNotFoundError, ChecksumError: bad input (nothing
      written). NonFiniteLossError: a loss became NaN/Inf; the last good checkpoint is kept.
  """
  evaluate_at_end = config.get("eval", {}).get("at_end_of_training", False)
  if evaluate_at_end:
    validation.validate_config(config)  # a bad value names itself before the classifier
  classifier = evaluate.classifier_for(config) if evaluate_at_end else None
  run = train.train(config, workdir)
  if evaluate_at_end:
    evaluate.evaluate(config, workdir, run.task, run.state, run.train_ds, run.eval_ds,
                      classifier)
  return run.summary
