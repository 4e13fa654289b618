r"""The domain evaluator: the classifier whose features and predictions every
classifier-based metric uses (FD, KID, precision/recall, density/coverage, class accuracy,
memorisation in feature space).

FID is comparable across papers because everyone uses one fixed Inception network; kjax
does the same for its data sets. ``kjax/evaluation/reference/`` ships one CNN classifier
per data set (KMNIST, MNIST; ``REFERENCE_FILE`` lists them with their ``params_sha256``, the
command that trained them and their accuracy), stored as float16 (about 0.45 MB each) and
used by default when ``config.eval.classifier_workdir`` is empty. A classifier a user
trained (``configs/classifier.py``) stays an option: give its workdir, and its hash is
recorded instead. ``'none'`` skips the classifier-based metrics.

Features are computed in float64 (``jax.enable_x64`` around the feature network only), so
that the same images give the same features on any machine to ~1e-12 relative; what
differs across machines is the run's own float32 samples (docs/results.md, the benchmark).

Re-exporting a classifier run as a reference evaluator (what made the shipped files):

  python -m kjax.evaluation.domain WORKDIR NAME "COMMAND THAT TRAINED IT"
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kjax import data as kdata
from kjax import errors
from kjax import progress
from kjax import sharding
from kjax import tasks
from kjax import workdir as kworkdir
from kjax.data import catalog

REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "reference")
REFERENCE_FILE = os.path.join(REFERENCE_DIR, "evaluators.json")
NONE = "none"  # config.eval.classifier_workdir value that skips classifier-based metrics


def params_sha256(params: Any) -> str:
  """SHA-256 (hex) of a parameter pytree: every leaf's path, dtype, shape and bytes, in
  tree order. Identical parameters give the same hash on any machine."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    leaf = np.asarray(leaf)
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(f"{leaf.dtype}{leaf.shape}".encode())
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


def _file_sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


@dataclasses.dataclass
class DomainClassifier:
  """A domain classifier restored for evaluation.

  Attributes:
    source: ``'reference:<data>'`` for a shipped evaluator, else the classifier's workdir.
    step: its training step count.
    params_sha256: ``params_sha256`` of the float32 parameters it runs with.
    config: the config it was trained with (data set, splits, architecture, optimiser).
    params: its parameters (float32 pytree).
    metadata: for a shipped evaluator, its entry of ``REFERENCE_FILE``; else ``{}``.
  """

  source: str
  step: int
  params_sha256: str
  config: ml_collections.ConfigDict
  params: Any
  metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self._task = tasks.get_task(self.config, None)  # a reader: restores, never trains
    # Each batch split over the local devices (kjax.sharding.split_batch).
    self._features = sharding.split_batch(lambda p, x: self._task.model.apply(
        {"params": p}, x, method=type(self._task.model).features), (1,))
    self._logits = sharding.split_batch(
        lambda p, x: self._task.model.apply({"params": p}, x), (1,))

  @property
  def reference(self) -> bool:
    return self.source.startswith("reference:")

  def features(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """float ``[B, H, W, 1]`` images in [0, 1] (the classifier's data set's shape) →
    penultimate features, float64
    ``[B, hidden]`` (≥ 0), computed in float64."""
    with jax.enable_x64(True):
      params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), self.params)
      shown = progress.Progress("evaluation: evaluator features", len(images), "images")
      out = []
      for i in range(0, len(images), batch_size):
        out.append(np.asarray(self._features(params, jnp.asarray(images[i:i + batch_size],
                                                                 jnp.float64))))
        shown.update(i + len(out[-1]))
      return np.concatenate(out)

  def predict(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The same images → predicted classes, int ``[B]`` (float32, no dropout)."""
    return np.concatenate([np.asarray(jnp.argmax(self._logits(self.params, jnp.asarray(
        images[i:i + batch_size], jnp.float32)), -1)) for i in range(0, len(images), batch_size)])

  def describe(self) -> dict[str, Any]:
    """JSON-ready record of the evaluator (``metrics.json``'s ``classifier``)."""
    out = {"source": self.source, "step": self.step, "params_sha256": self.params_sha256,
           "data": self.config.data.name, "train_split": self.config.data.train_split,
           "features": "penultimate layer, float64"}
    if self.reference:
      out.update(eval_split=self.metadata["eval_split"],
                 eval_accuracy=self.metadata["eval_accuracy"],
                 command=self.metadata["command"])
    else:
      out["workdir"] = self.source
    return out


def load_classifier(workdir: str, data_name: str) -> DomainClassifier:
  """Restores the newest checkpoint of a ``configs/classifier.py`` run on ``data_name``.

  Raises:
    ConfigError: ``workdir`` is not a kjax run, holds another model, was trained on another
      data set, or has no checkpoint.
  """
  flag = "config.eval.classifier_workdir"
  config = kworkdir.read_config(workdir, flag)
  if not tasks.task_class(config.model).is_classifier:
    raise errors.ConfigError(f"{flag}={workdir!r} holds a {config.model.name} run; expected "
                             "a run of configs/classifier.py")
  if config.data.name != data_name:
    raise errors.ConfigError(f"{flag}={workdir!r} is a classifier of {config.data.name}; this "
                             f"run is on {data_name}: train one with --config.data.name={data_name}")
  state = kworkdir.restore_state(tasks.get_task(config, None), config, workdir, flag)
  params = jax.device_get(state.params)
  return DomainClassifier(workdir, int(state.step), params_sha256(params), config, params)


def reference_entries() -> dict[str, dict[str, Any]]:
  """``REFERENCE_FILE``: data set name → the shipped evaluator's metadata."""
  with open(REFERENCE_FILE, encoding="utf-8") as f:
    return json.load(f)


@functools.lru_cache(maxsize=None)
def load_reference(data_name: str) -> DomainClassifier | None:
  """The evaluator shipped for ``data_name``, or None where none is shipped (K49); loaded
  and verified once per process (its compiled feature network is reused).

  Raises:
    ConfigError: the shipped file is missing or its bytes or parameters do not match
      their recorded SHA-256 (a damaged install: reinstall kjax).
  """
  entry = reference_entries().get(data_name)
  if entry is None:
    return None
  path = os.path.join(REFERENCE_DIR, entry["file"])
  if not os.path.isfile(path) or _file_sha256(path) != entry["file_sha256"]:
    raise errors.ConfigError(f"the reference evaluator {path} is missing or damaged (its "
                             "SHA-256 differs from evaluators.json): reinstall kjax")
  with np.load(path, allow_pickle=False) as stored:
    flat = {tuple(k.split("/")): stored[k].astype(np.float32) for k in stored.files}
  params = flax.traverse_util.unflatten_dict(flat)
  digest = params_sha256(params)
  if digest != entry["params_sha256"]:
    raise errors.ConfigError(f"the reference evaluator {path} has params_sha256 {digest}, "
                             f"not {entry['params_sha256']}: reinstall kjax")
  config = ml_collections.ConfigDict(entry["config"])
  return DomainClassifier(f"reference:{data_name}", entry["step"], digest, config, params,
                          entry)


def classifier_for(config: ml_collections.ConfigDict) -> DomainClassifier | None:
  """The domain evaluator of a run: ``config.eval.classifier_workdir``'s classifier; the
  shipped reference for ``config.data.name`` when it is empty; None when it is ``'none'``,
  when empty on a data set without a reference, or for a classifier run itself.

  Raises:
    ConfigError: see ``load_classifier`` and ``load_reference``.
  """
  where = config.eval.classifier_workdir
  if tasks.task_class(config.model).is_classifier or where == NONE:
    return None
  if not where:
    return load_reference(config.data.name)
  return load_classifier(where, config.data.name)


def export_reference(workdir: str, name: str, command: str) -> dict[str, Any]:
  """Writes the classifier run in ``workdir`` as the shipped evaluator ``name``: its
  parameters rounded to float16 in ``reference/<name>.npz`` and its entry in
  ``REFERENCE_FILE`` (hash, config, the command, its eval accuracy with the float16
  parameters).

  Raises:
    ConfigError: ``workdir`` holds no classifier run of ``name``.
  """
  clf = load_classifier(workdir, name)
  flat = flax.traverse_util.flatten_dict(clf.params, sep="/")
  path = os.path.join(REFERENCE_DIR, f"{name}.npz")
  np.savez_compressed(path, **{k: np.asarray(v, np.float16) for k, v in flat.items()})
  with np.load(path, allow_pickle=False) as stored:
    params = flax.traverse_util.unflatten_dict(
        {tuple(k.split("/")): stored[k].astype(np.float32) for k in stored.files})
  rounded = DomainClassifier(f"reference:{name}", clf.step, params_sha256(params), clf.config,
                             params)
  _, eval_ds = kdata.load_datasets(clf.config.data)
  accuracy = float(np.mean(rounded.predict(eval_ds.images.astype(np.float32) / 255.0)
                           == eval_ds.labels))
  entries = reference_entries() if os.path.exists(REFERENCE_FILE) else {}
  config = clf.config.to_dict()
  for key in ("data_dir", "tfds_data_dir", "cache_dir"):  # machine paths: not part of it
    config["data"][key] = ""
  entries[name] = {
      "file": f"{name}.npz", "file_sha256": _file_sha256(path),
      "params_sha256": rounded.params_sha256, "step": clf.step,
      "storage": "float16 parameters, computed in float32 (predictions) and float64 (features)",
      "train_split": clf.config.data.train_split,
      "note": ("trained on images of the official test split (the training split is not "
               "offline where it was made); its eval_split is disjoint from train_split"),
      "eval_split": clf.config.data.eval_split, "eval_accuracy": round(accuracy, 4),
      "num_classes": catalog.get_dataset_info(name).num_classes,
      "command": command, "jax": jax.__version__, "config": config}
  with open(REFERENCE_FILE, "w", encoding="utf-8") as f:
    json.dump(entries, f, indent=1, sort_keys=True)
    f.write("\n")
  return entries[name]


if __name__ == "__main__":
  if len(sys.argv) != 4:
    sys.exit("usage: python -m kjax.evaluation.domain WORKDIR NAME COMMAND")
  print(json.dumps(export_reference(*sys.argv[1:]), indent=1)[:2000])
