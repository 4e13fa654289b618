"""The evaluation driver: the registry of evaluations (``EVALUATIONS``) and the functions
that run them on a trained state (``evaluate``) or a workdir (``evaluate_workdir``). It
never imports the training loop."""


from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable

from absl import logging
import ml_collections

from kjax import autotune
from kjax import compile_cache
from kjax import config_fields
from kjax import data as kdata
from kjax import errors
from kjax import files
from kjax import metric_writers
from kjax import preemption
from kjax import progress
from kjax import report
from kjax import sharding
from kjax import tasks
from kjax import validation
from kjax import workdir as kworkdir
from kjax.version import __version__
from kjax.data import splits
from kjax.evaluation import base
from kjax.evaluation import cas
from kjax.evaluation import classifier
from kjax.evaluation import dci
from kjax.evaluation import domain
from kjax.evaluation import factor_vae
from kjax.evaluation import inpainting
from kjax.evaluation import interpolation
from kjax.evaluation import latents
from kjax.evaluation import likelihood
from kjax.evaluation import memorisation
from kjax.evaluation import mig
from kjax.evaluation import sample_quality
from kjax.evaluation import sap
from kjax.evaluation import style

EVAL_DIR = base.EVAL_DIR


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """One entry of the registry.

  Attributes:
    name: its key in ``timing_s`` and its log line.
    fn: ``fn(run) -> Output``.
    applies: ``applies(run) -> bool``: whether it runs for this run (model, evaluator).
  """

  name: str
  fn: Callable[[base.Run], base.Output]
  applies: Callable[[base.Run], bool]


def _is_classifier(run): return run.task.is_classifier
def _has_encoder(run): return run.task.has_encoder
def _generates(run): return not run.task.is_classifier
def _without_encoder(run): return _generates(run) and not _has_encoder(run)
def _with_evaluator(run): return _generates(run) and run.evaluator is not None
def _conditional(run): return _generates(run) and run.task.conditional
def _cas(run):
  return _conditional(run) and run.config.eval.get("cas_epochs", cas.DEFAULT_EPOCHS) > 0


EVALUATIONS: tuple[Evaluation, ...] = (
    Evaluation("accuracy", classifier.accuracy, _is_classifier),
    Evaluation("likelihood", likelihood.likelihood, _has_encoder),
    Evaluation("latents", latents.latents, _has_encoder),
    Evaluation("inpainting", inpainting.inpainting, _has_encoder),
    Evaluation("mig", mig.mig, _has_encoder),
    Evaluation("dci", dci.dci, _has_encoder),
    Evaluation("sap", sap.sap, _has_encoder),
    Evaluation("factor_vae", factor_vae.factor_vae, _has_encoder),
    Evaluation("traversals", latents.traversals, _has_encoder),
    Evaluation("tsne", latents.tsne, _has_encoder),
    Evaluation("interpolation", interpolation.encoded_interpolation, _has_encoder),
    Evaluation("interpolation", interpolation.noise_interpolation, _without_encoder),
    Evaluation("sample_quality", sample_quality.sample_quality, _with_evaluator),
    Evaluation("memorisation", memorisation.memorisation, _generates),
    Evaluation("style", style.style, _conditional),
    Evaluation("cas", cas.classification_accuracy_score, _cas),
    Evaluation("training_gifs", interpolation.training_gifs, _generates),
)

METRIC_DOCS: dict[str, str] = {}
for _module in (likelihood, latents, mig, dci, sap, factor_vae, inpainting, interpolation,
                sample_quality, memorisation, style, cas, classifier):
  METRIC_DOCS.update(_module.METRIC_DOCS)


def _run_entries(run: base.Run, entries: list, expected: list[float], t0: float
                 ) -> tuple[base.Output, dict[str, float]]:
  """Runs ``entries`` in order, logging each with an ETA from ``expected`` (seconds per
  entry, scaled by how the evaluation has fared since ``t0``); returns their merged output
  and seconds per entry."""
  merged = base.Output()
  timing: dict[str, float] = {}
  for i, entry in enumerate(entries):
    logging.info("kjax: evaluation [%d/%d]: %s ...", i + 1, len(entries), entry.name)
    t = time.perf_counter()
    out = entry.fn(run)
    merged.metrics.update(out.metrics)
    merged.protocol.update(out.protocol)
    merged.figures += out.figures
    timing[entry.name] = round(time.perf_counter() - t, 2)
    eta = ""
    if expected and i + 1 < len(entries):
      scale = (time.perf_counter() - t0) / max(sum(expected[:i + 1]), 1e-9)
      eta = f"; evaluation ETA {progress.hms(scale * sum(expected[i + 1:]))}"
    logging.info("kjax: evaluation [%d/%d]: %s done in %.1f s%s", i + 1, len(entries),
                 entry.name, timing[entry.name], eta)
  return merged, timing


def evaluate(config: ml_collections.ConfigDict, workdir: str, task: tasks.Task, state: Any,
             train_ds: kdata.Dataset, eval_ds: kdata.Dataset,
             evaluator: domain.DomainClassifier | None = None) -> dict[str, Any]:
  """Runs every evaluation of ``EVALUATIONS`` that applies to the run and writes
  ``WORKDIR/eval/metrics.json``, the evaluation figures and ``WORKDIR/report.html``.

  Args:
    config: the run's config (its ``eval`` section sets k, sample sizes, the evaluator).
    task, state: the model family and its restored or final train state.
    train_ds, eval_ds: the run's splits (thresholds and the real reference come from
      ``train_ds``; every metric is on ``eval_ds``).
    evaluator: the domain evaluator (``domain.classifier_for``) for the classifier-based
      metrics; None skips them (recorded as such).

  Returns:
    The content of ``metrics.json``: ``run``, ``protocol``, ``classifier``, ``metrics``
    (name → number or list), ``figures`` (paths relative to the workdir), ``timing_s``
    (plus ``report``, not in the file).

  Raises:
    NonFiniteSamplesError: the model's samples (``base.Run.generated``, drawn first) hold
      NaN or infinity: a corrupt checkpoint or a diverged run; nothing is written.
  """
  compile_cache.enable()
  preemption.phase("evaluation", os.path.join(workdir, EVAL_DIR))
  t0 = time.perf_counter()
  # Replicated on this process's devices: every batch below is split over them.
  state = sharding.put(state, sharding.local_mesh())
  run = base.Run(config, workdir, task, state, int(state.step), train_ds, eval_ds,
                 evaluator=evaluator)
  if _generates(run):  # drawn first (they are shared later): NaN samples score nothing
    errors.NonFiniteSamplesError.check(run.generated()[0], int(state.step), workdir)
  files.makedirs(os.path.join(workdir, EVAL_DIR))
  entries = [e for e in EVALUATIONS if e.applies(run)]
  expected = _expected_seconds(config, workdir, task.name, entries, len(train_ds), len(eval_ds))
  merged, timing = _run_entries(run, entries, expected, t0)
  step = int(state.step)
  steps_per_epoch = max(1, len(train_ds) // config.train.batch_size)
  result = {
      "run": {"model": task.name, "description": task.describe(), "step": step,
              "epoch": step // steps_per_epoch, "data": config.data.name,
              "train_split": config.data.train_split, "eval_split": config.data.eval_split,
              "num_train": len(train_ds), "num_eval": len(eval_ds), "seed": config.seed},
      "protocol": merged.protocol,
      "classifier": evaluator.describe() if evaluator is not None else None,
      "metrics": merged.metrics,
      "figures": merged.figures,
      "timing_s": {**timing, "total": round(time.perf_counter() - t0, 2)},
      "inputs": inputs(config, step, evaluator),
  }
  result["protocol"]["eval_images_seen_in_training"] = _seen(config, evaluator)
  if evaluator is None and not task.is_classifier:
    result["protocol"]["classifier_metrics"] = (
        "not computed: config.eval.classifier_workdir='none'"
        if config.eval.classifier_workdir == domain.NONE else
        f"not computed: no reference evaluator is shipped for {config.data.name}; set "
        "config.eval.classifier_workdir to a configs/classifier.py run")
  t_report = time.perf_counter()
  report.write_report(workdir, config.to_dict(), result, METRIC_DOCS)
  metric_writers.log_evaluation(workdir, step, config.to_dict(), result["metrics"])
  # Last: its ``inputs`` tell a re-launched run that this evaluation is complete.
  metric_writers.write_json(os.path.join(workdir, EVAL_DIR, "metrics.json"), result)
  # Returned (kjax.experiment logs it with the run's phases), not in metrics.json.
  result["timing_s"]["report"] = round(time.perf_counter() - t_report, 2)
  result["timing_s"]["total"] = round(time.perf_counter() - t0, 2)
  logging.info("kjax: evaluation written to %s and %s (%.0f s)",
               os.path.join(workdir, EVAL_DIR, "metrics.json"),
               os.path.join(workdir, "report.html"), result["timing_s"]["total"])
  return result


def _seen(config: ml_collections.ConfigDict, evaluator) -> dict[str, int]:
  """``kjax.data.splits.eval_images_seen`` of the run and its evaluator (issue 28), with a
  warning line if the evaluator trained on eval images (the run's own overlap is warned
  when the data loads)."""
  data = config.data
  sizes = kdata.get_dataset_info(data.name).split_sizes
  clf = None if evaluator is None else (evaluator.config.data.name,
                                        evaluator.config.data.train_split)
  seen = splits.eval_images_seen(data.name, data.eval_split, sizes, data.train_split, clf)
  splits.warn_if_seen({"evaluator": seen.get("evaluator", 0)}, data.eval_split,
                      data.train_split, clf and clf[1])
  return seen


# The evaluation's cost model for the ETAs (``phase_estimates``), measured on the 2-core CPU
# of the README's quick start (issue 27, ``benchmarks/jobs.py``, cold caches): an IWAE
# decoder call of the conv β-VAE costs about 1/6 of a training image (500,000 calls in 65 s
# against about 1,300 training images/s), of the MLP CVAE about 1/5 (10M calls in 23.5 s
# against 86,000); the CAS classifier trains at about 1,500 images/s there; the other
# evaluations (sample quality, memorisation, figures, report) take about 6 ms per eval image.
IWAE_CALLS_PER_TRAIN_IMAGE = {"conv": 6.0, "mlp": 5.0}
CAS_IMAGES_PER_S = 1_500.0
OTHER_S_PER_EVAL_IMAGE = 0.006
ACCELERATOR_SPEEDUP = 20.0  # the fixed-cost parts on a GPU/TPU (rough; only for the ETA)


def phase_estimates(config: ml_collections.ConfigDict, model: str, num_train: int,
                    num_eval: int, train_images_per_s: float) -> dict[str, float]:
  """Rough seconds of ``evaluate``'s phases, for the ETAs: ``likelihood`` (the IWAE
  bound's decoder calls at the measured training rate, ``IWAE_CALLS_PER_TRAIN_IMAGE``),
  ``cas`` (the CAS classifier's epochs on samples and on the real train split) and
  ``other`` (every other phase together, per eval image). Constants measured on a 2-core
  CPU; ``ACCELERATOR_SPEEDUP`` faster for the fixed-cost parts on JAX's GPU/TPU backend.

  Args:
    model: ``config.model.name``; num_train, num_eval: the splits' sizes (images);
    train_images_per_s: the run's training rate (> 0).
  """
  ev = config.eval
  speedup = 1.0 if autotune.platform() == "cpu" else ACCELERATOR_SPEEDUP
  out = {"other": num_eval * OTHER_S_PER_EVAL_IMAGE / speedup}
  family = tasks.TASKS[model]
  if family.has_encoder:
    n = min(ev.iwae_max_examples or num_eval, num_eval)
    net = "conv" if family.has_convolutions(config.model) else "mlp"
    out["likelihood"] = (n * ev.iwae_samples / IWAE_CALLS_PER_TRAIN_IMAGE[net]
                         / max(train_images_per_s, 1e-9))
  conditional_generator = family.conditional and not family.is_classifier
  if conditional_generator and ev.get("cas_epochs", cas.DEFAULT_EPOCHS) > 0:
    out["cas"] = (ev.get("cas_epochs", cas.DEFAULT_EPOCHS) * 2 * num_train
                  / CAS_IMAGES_PER_S / speedup)  # samples, then the real reference
  return out


def estimate_seconds(config: ml_collections.ConfigDict, model: str, num_train: int,
                     num_eval: int, train_images_per_s: float) -> float:
  """A rough estimate of ``evaluate``'s seconds (the sum of ``phase_estimates``), added to
  the training ETA; 0 when ``config.eval.at_end_of_training`` is off or no rate is known."""
  ev = config.get("eval")
  if not ev or not ev.get("at_end_of_training", False) or train_images_per_s <= 0:
    return 0.0
  return sum(phase_estimates(config, model, num_train, num_eval,
                             train_images_per_s).values())


def _expected_seconds(config, workdir, model, entries, num_train, num_eval) -> list[float]:
  """``phase_estimates`` per entry (``other`` shared equally), from the training rate in
  ``WORKDIR/timing.json``; [] without one (e.g. a run trained by an older kjax)."""
  try:
    with open(os.path.join(workdir, "timing.json")) as f:
      rate = float(json.load(f).get("steady_images_per_s") or 0)
  except (OSError, ValueError, AttributeError, TypeError):
    return []
  if rate <= 0:
    return []
  phases = phase_estimates(config, model, num_train, num_eval, rate)
  others = [e for e in entries if e.name not in phases] or entries
  return [phases.get(e.name, phases["other"] / len(others)) for e in entries]


def inputs(config: ml_collections.ConfigDict, step: int,
           evaluator: domain.DomainClassifier | None) -> dict[str, Any]:
  """What an evaluation of a run depends on: the checkpoint's step, every config setting
  whose row in the table of config fields is an ``eval_input`` (``kjax.config_fields``:
  ``eval.*``, the eval batch size, the data files, ...; not the schedule's length, logging,
  checkpoints, devices or training's figures), the domain
  evaluator (its parameters' hash) and kjax's version; recorded as ``eval/metrics.json``'s
  ``inputs`` (JSON-ready)."""
  flat = kworkdir.flatten(config.to_dict())
  keep = set(config_fields.keys_with(tasks.fields_of(config.model), flat, "eval_input"))
  settings = {k: v for k, v in flat.items() if k in keep}
  return json.loads(json.dumps({
      "step": int(step), "config": settings, "kjax": __version__,
      "evaluator": evaluator.describe() if evaluator is not None else None}))


def is_up_to_date(config: ml_collections.ConfigDict, workdir: str, step: int,
                  evaluator: domain.DomainClassifier | None) -> bool:
  """Whether ``WORKDIR/eval/metrics.json`` and ``report.html`` exist and were made with the
  same ``inputs`` (so evaluating again would redo the same numbers)."""
  path = os.path.join(workdir, EVAL_DIR, "metrics.json")
  if not (os.path.isfile(path) and os.path.isfile(os.path.join(workdir, "report.html"))):
    return False
  try:
    with open(path) as f:
      recorded = json.load(f).get("inputs")
  except (OSError, ValueError, AttributeError):
    return False
  return recorded == inputs(config, step, evaluator)


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str,
                     config_from_workdir: bool = False) -> dict[str, Any]:
  """``launch.py --mode=evaluate``: restores the newest checkpoint of the run in ``workdir``
  (trained with ``config``) and runs ``evaluate``; trains nothing.

  Args:
    config: the run's config with any ``eval.*`` changes: read from ``WORKDIR/config.json``
      (``config_from_workdir``) or given on the command line, then checked against it.

  Raises:
    ConfigError: a bad config value, no run or checkpoint in ``workdir``, a config that
      differs from the run's (the config its newest checkpoint recorded, else
      ``config.json``) in settings that change the experiment (all named at once), or a
      bad ``config.eval.classifier_workdir`` (all before anything is written).
    DataError, DataFileNotFoundError, ChecksumError: as for training.
    CheckpointMismatchError: no checkpoint in ``workdir`` can be read (all damaged), or it
      holds another model; nothing is written.
    NonFiniteSamplesError: see ``evaluate``.
  """
  validation.validate_config(config)
  kworkdir.read_config(workdir, "--workdir")
  kworkdir.check_resumable(
      workdir, config.to_dict(),
      hint=("only settings that keep the experiment (config.eval.*, ...) may change" if
            config_from_workdir else
            f"leave out --config to evaluate with the run's own config (kjax "
            f"--mode=evaluate --workdir={workdir} [--config.eval.*=...])"))
  evaluator = domain.classifier_for(config)
  train_ds, eval_ds = kdata.load_datasets(config.data)
  task = tasks.get_task(config, len(train_ds))  # the β-TC-VAE's N (minibatch-weighted sampling)
  state = kworkdir.restore_state(task, config, workdir, "--workdir")
  return evaluate(config, workdir, task, state, train_ds, eval_ds, evaluator)
