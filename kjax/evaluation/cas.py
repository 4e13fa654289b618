"""Classification Accuracy Score (Ravuri & Vinyals 2019, "Classification Accuracy Score for
Conditional Generative Models"): a classifier trained only on a conditional model's samples
(labels as requested), tested on the real eval images. Unlike the evaluator's accuracy on
samples, it drops when samples lack the diversity of the real classes.

The classifier is the reference evaluator's network and optimiser (``configs/classifier.py``
as recorded in ``reference/evaluators.json``) trained for ``eval.cas_epochs`` epochs on as
many samples as the train split has images, conditioned on the train split's labels and
styles. The same recipe trained on the real train split gives ``cas_real_reference``
(cached on disk by content: the splits, the recipe and the seed).
"""

from __future__ import annotations

import hashlib
import json
import os

from absl import logging
import jax
import ml_collections
import numpy as np

from kjax import autotune
from kjax import errors
from kjax import files
from kjax import sharding
from kjax import tasks
from kjax.data import loading
from kjax.evaluation import base
from kjax.evaluation import domain
from kjax.train import program

DEFAULT_EPOCHS = 5  # config.eval.cas_epochs of configs written before it existed

METRIC_DOCS = {
    "cas": "Classification Accuracy Score: accuracy on real eval images of a classifier "
           "trained on samples only (Ravuri & Vinyals 2019)",
    "cas_real_reference": "the same recipe trained on the real train split (the ceiling)",
}


def recipe(config: ml_collections.ConfigDict, num_epochs: int) -> ml_collections.ConfigDict:
  """The classifier config of CAS: the reference evaluator's (any shipped one: they share
  their recipe), on ``config.data``, for ``num_epochs`` epochs, seed ``config.seed``."""
  entries = domain.reference_entries()
  clf = ml_collections.ConfigDict(entries.get(config.data.name, next(iter(entries.values())))
                                  ["config"])
  clf.data = ml_collections.ConfigDict(config.data.to_dict())
  clf.train.num_epochs = num_epochs
  clf.seed = config.seed
  return clf


def train_and_test(clf_config: ml_collections.ConfigDict, images: np.ndarray,
                   labels: np.ndarray, test_images: np.ndarray, test_labels: np.ndarray
                   ) -> float:
  """Trains ``clf_config``'s classifier on uint8 ``images [N, H, W, 1]`` with int
  ``labels [N]`` (PRNG streams of ``clf_config.seed``) and returns its accuracy on uint8
  ``test_images`` with ``test_labels``."""
  task = tasks.get_task(clf_config, len(images))
  key_init, key_perm, key_train = jax.random.split(jax.random.key(clf_config.seed), 3)
  state = task.fresh_state(key_init)
  batch_size = min(clf_config.train.batch_size, len(images))
  steps_per_epoch = len(images) // batch_size
  # The training loop's compiled chunks (kjax.train.program), as many steps per call as a
  # run of the classifier takes here (autotune: one for a CNN on XLA:CPU): the same
  # batches (rows of the epoch's permutation) and step keys as a run of it.
  chunk = autotune.steps_per_call(clf_config.train.get("steps_per_call", "auto"),
                                  steps_per_epoch,
                                  convolutional=task.has_convolutions(clf_config.model))
  sizes = [chunk] * (steps_per_epoch // chunk) + [steps_per_epoch % chunk] * bool(
      steps_per_epoch % chunk)
  chunks = {n: program.make_train_chunk(task.train_step, steps_per_epoch, batch_size, n)
            for n in set(sizes)}
  data = {"images": jax.device_put(images), "labels": jax.device_put(labels.astype(np.int32))}
  for epoch in range(clf_config.train.num_epochs):
    perm = jax.random.permutation(jax.random.fold_in(key_perm, epoch), len(images))
    for n in sizes:
      state, _ = chunks[n](state, program.zero_sums(task.train_metrics), data, perm,
                           key_train)
  predict = sharding.split_batch(task.predict, (1,))
  predicted = base.batched(lambda x: predict(state, x), test_images.astype(np.float32) / 255.0)
  return float(np.mean(predicted == test_labels))


def check_cached_reference(entry) -> str | None:
  """What is wrong with a decoded CAS cache entry, or None: it must be the JSON object
  ``{"cas_real_reference": accuracy}`` with a finite number (not a bool or string) in
  [0, 1]."""
  if not isinstance(entry, dict):
    return f"a JSON {type(entry).__name__}, expected an object"
  if set(entry) != {"cas_real_reference"}:
    return f"keys {sorted(entry)}, expected ['cas_real_reference']"
  value = entry["cas_real_reference"]
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    return f"cas_real_reference is a {type(value).__name__}, expected a number"
  if not (np.isfinite(value) and 0.0 <= value <= 1.0):
    return f"cas_real_reference={value!r}, expected an accuracy in [0, 1]"
  return None


def _read_cached_reference(path: str) -> float | None:
  """The value of a valid cache entry at ``path``; None if there is none or it is bad (a
  bad one gets one warning line naming the file and what is wrong)."""
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      entry = json.load(f)
  except (OSError, ValueError, RecursionError) as e:  # truncated, not UTF-8, not JSON
    why = "not readable JSON: " + (" ".join(str(e).split()) or type(e).__name__)
  else:
    why = check_cached_reference(entry)
    if why is None:
      return float(entry["cas_real_reference"])
  logging.warning("kjax: the CAS cache entry %s is bad (%s); recomputing and replacing it",
                  path, why)
  return None


def _cached_reference(clf_config, run: base.Run) -> float:
  """``cas_real_reference`` of ``run``'s splits with ``clf_config``, cached by content in
  ``<cache_dir>/cas/<sha256>.json``; a bad entry is recomputed and replaced, an unwritable
  one skipped (one warning line each)."""
  digest = hashlib.sha256()
  for part in (run.train_ds.images, run.train_ds.labels, run.eval_ds.images, run.eval_ds.labels):
    digest.update(np.ascontiguousarray(part).tobytes())
  digest.update(json.dumps(clf_config.to_dict(), sort_keys=True, default=str).encode())
  cache_dir = run.config.data.get("cache_dir") or loading.default_cache_dir()
  path = os.path.join(cache_dir, "cas", digest.hexdigest()[:32] + ".json")
  value = _read_cached_reference(path)
  if value is not None:
    return value
  value = train_and_test(clf_config, run.train_ds.images, run.train_ds.labels,
                         run.eval_ds.images, run.eval_ds.labels)
  try:  # atomic: a concurrent run never reads a partial file
    files.makedirs(os.path.dirname(path))
    files.write_text(path, json.dumps({"cas_real_reference": value}))
  except errors.WriteError as e:  # a cache: the value is known, the run goes on
    logging.warning("kjax: cas_real_reference is not cached: %s", e)
  return value


def classification_accuracy_score(run: base.Run) -> base.Output:
  """``cas`` of a conditional model and ``cas_real_reference``, on the whole eval split."""
  epochs = run.config.eval.get("cas_epochs", DEFAULT_EPOCHS)
  clf_config = recipe(run.config, epochs)
  n = len(run.train_ds)
  labels = run.train_ds.labels.astype(np.int32)
  styles = run.train_ds.styles.astype(np.int32)
  z = run.latents("cas", labels)
  samples = base.to_uint8(run.decode(z, labels, styles))
  cas = train_and_test(clf_config, samples, labels, run.eval_ds.images, run.eval_ds.labels)
  return base.Output(
      metrics={"cas": cas, "cas_real_reference": _cached_reference(clf_config, run)},
      protocol={"cas": (f"CNN of the reference evaluator's recipe, {epochs} epochs on {n} "
                        "samples conditioned on the train split's labels and styles; tested "
                        f"on the {len(run.eval_ds)} real eval images")})
