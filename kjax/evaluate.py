r"""Evaluation of a trained run (issue 4): ``WORKDIR/eval/metrics.json``, the evaluation
figures in ``WORKDIR/eval/`` and a self-contained ``WORKDIR/report.html``.

Run on an existing workdir (restores its newest checkpoint, trains nothing):

  python launch.py --config=configs/cvae.py --workdir=runs/cvae_kmnist --mode=evaluate \
      --config.eval.classifier_workdir=runs/classifier_kmnist <the run's --config flags>

Training runs the same evaluation when it ends (``config.eval.at_end_of_training``).

What is measured (``METRIC_DOCS`` has one line per metric):

* VAEs (β-VAE, CVAE), on the eval split: the negative ELBO and its terms; the IWAE bound on
  −log p(x) with k = ``eval.iwae_samples`` (Burda et al. 2015, Eq. 8); the reconstruction
  MSE per pixel of decoder means from ``z_mean`` (seed 003 reports 0.06); KL per latent
  dimension and active units (Burda et al. 2015 §5.2); inpainting of the central 10×10
  pixels (seed 004 §2.1). The likelihood is the run's: by default a Bernoulli on grey levels
  in [0, 1] (the data are *not* binarised, so the nats are not comparable with the
  binarised-MNIST numbers of the IWAE paper).
* Every generative model, with a domain classifier (``configs/classifier.py``, given by
  ``eval.classifier_workdir``; the SHA-256 of its parameters is recorded): Fréchet distance
  and KID in its penultimate features between generated and real eval images; for
  conditional models the class accuracy of samples (plain and balanced), the style
  accuracy (a "thick" request lands above its class's threshold of the foreground-pixel
  count, a "thin" one at or below), and the mean thickness shift when only the style
  label flips with z fixed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import time
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from kjax import data as kdata
from kjax import errors
from kjax import figures
from kjax import metric_writers
from kjax import metrics as kmetrics
from kjax import evaluator as kevaluator
from kjax import frames as kframes
from kjax import report
from kjax import rng
from kjax import workdir as kworkdir
from kjax import tasks
from kjax import validation
from kjax.data import style as kstyle

EVAL_DIR = "eval"
INPAINT_PATCH = (slice(9, 19), slice(9, 19))  # the central 10×10 pixels of a 28×28 image
ACTIVE_THRESHOLD = 0.01                       # Burda et al. 2015 §5.2
# The "_ink" style metrics count pixels above half intensity: decoder means have a faint
# haze around strokes that the data's own statistic (any pixel > 0) counts as foreground.
INK_PIXEL_THRESHOLD = 127
TRAVERSAL_VALUES = np.linspace(-3.0, 3.0, 9, dtype=np.float32)
MAX_TRAVERSAL_DIMS = 10
MAX_GIF_FRAMES = 40  # frames of a GIF over training (keeps report.html to a few MB)

METRIC_DOCS = {
    "nelbo": "negative ELBO, nats per image (eval split, the run's fixed eval noise)",
    "rec": "reconstruction term of the ELBO, nats per image",
    "kl": "KL(q(z|x) || p(z)) term, nats per image",
    "loss": "rec + beta * kl, the training objective, nats per image",
    "iwae_nll": "IWAE bound on -log p(x) (Burda et al. 2015), nats per image",
    "nelbo_iwae_examples": "nelbo on the eval images of the IWAE estimate (when a subset)",
    "rec_mse": "mean squared error per pixel in [0, 1] of the decoder mean from z_mean",
    "active_units": "latent units with Cov_x E_q[z_d] > 0.01 (Burda et al. 2015)",
    "inpainting_patch_mse": "MSE per pixel in the zeroed central 10x10 patch after "
                            "encoding and decoding the masked image",
    "masked_patch_mse": "the same MSE for the masked input itself (the patch left at 0)",
    "inpainting_class_accuracy": "domain classifier's accuracy on the inpainted images",
    "fd": "Frechet distance, generated vs real eval images, classifier features",
    "kid": "KID (unbiased MMD^2, cubic kernel), generated vs real eval images",
    "kid_std": "standard deviation of KID over its subsets",
    "fd_real_train_vs_eval": "FD between real train and real eval images (reference floor)",
    "kid_real_train_vs_eval": "KID between real train and real eval images (reference)",
    "class_accuracy": "classifier's accuracy on samples w.r.t. the requested class",
    "class_balanced_accuracy": "mean over classes of that accuracy (balanced)",
    "class_accuracy_per_class": "that accuracy for each class, in class order",
    "style_accuracy": "share of samples whose foreground-pixel count is above (thick) or "
                      "at/below (thin) their class's threshold, as requested",
    "thickness_shift_pixels": "mean foreground pixels of thick minus thin samples, same z "
                              "and class",
    "real_thickness_gap_pixels": "mean foreground pixels of thick minus thin real eval images",
    "style_accuracy_ink": "style_accuracy with the ink count (pixels > 127) as statistic, "
                          "class thresholds recomputed on the train split",
    "thickness_shift_ink_pixels": "thickness_shift_pixels counting ink pixels (> 127)",
    "real_thickness_gap_ink_pixels": "real_thickness_gap_pixels counting ink pixels (> 127)",
    "accuracy": "accuracy on the eval split",
    "balanced_accuracy": "mean over classes of the per-class accuracy, eval split",
}


# --- the domain classifier ----------------------------------------------------------------


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


@dataclasses.dataclass
class DomainClassifier:
  """A trained ``configs/classifier.py`` run, restored for evaluation.

  Attributes:
    workdir, step: where it was trained and its checkpoint's step.
    params_sha256: ``params_sha256`` of its parameters, recorded with every metric.
    config: its config (data set and splits).
    features: float ``[B, 28, 28, 1]`` in [0, 1] → numpy float32 ``[B, hidden]``.
    predict: the same images → numpy int ``[B]`` classes.
  """

  workdir: str
  step: int
  params_sha256: str
  config: ml_collections.ConfigDict
  features: Callable[[np.ndarray], np.ndarray]
  predict: Callable[[np.ndarray], np.ndarray]

  def describe(self) -> dict[str, Any]:
    """JSON-ready record of the classifier (for ``metrics.json``)."""
    return {"workdir": self.workdir, "step": self.step, "params_sha256": self.params_sha256,
            "data": self.config.data.name, "train_split": self.config.data.train_split}


def load_classifier(workdir: str, data_name: str) -> DomainClassifier:
  """Restores the newest checkpoint of a classifier run trained on ``data_name``.

  Raises:
    ConfigError: ``workdir`` is not a kjax run, holds another model, was trained on another
      data set, or has no checkpoint.
  """
  flag = "config.eval.classifier_workdir"
  config = kworkdir.read_config(workdir, flag)
  if config.model.name != "classifier":
    raise errors.ConfigError(f"{flag}={workdir!r} holds a {config.model.name} run; expected "
                             "a run of configs/classifier.py")
  if config.data.name != data_name:
    raise errors.ConfigError(f"{flag}={workdir!r} is a classifier of {config.data.name}; this "
                             f"run is on {data_name}: train one with --config.data.name={data_name}")
  task = tasks.get_task(config)
  state = kworkdir.restore_state(task, config, workdir, flag)
  features, predict = jax.jit(task.features), jax.jit(task.predict)
  return DomainClassifier(
      workdir=workdir, step=int(state.step), params_sha256=params_sha256(state.params),
      config=config,
      features=lambda x: _batched(lambda b: features(state, b), x),
      predict=lambda x: _batched(lambda b: predict(state, b), x))


# --- metrics from arrays --------------------------------------------------------------------


def _batched(fn: Callable, *arrays: np.ndarray, batch_size: int = 1000) -> np.ndarray:
  """``fn`` over row blocks of ``arrays`` (numpy), outputs concatenated as numpy."""
  n = len(arrays[0])
  return np.concatenate([np.asarray(fn(*(jnp.asarray(a[i:i + batch_size]) for a in arrays)))
                         for i in range(0, n, batch_size)])


def to_uint8(images: np.ndarray) -> np.ndarray:
  """float images in [0, 1] → uint8 0..255 (rounded), the data's own encoding."""
  return (np.clip(np.asarray(images), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def class_accuracy(predicted: np.ndarray, labels: np.ndarray, num_classes: int
                   ) -> tuple[float, float]:
  """``(accuracy, balanced accuracy)`` of int ``[N]`` predictions against int ``[N]`` labels;
  the balanced one averages the per-class accuracy over the classes present in ``labels``."""
  correct = np.asarray(predicted) == np.asarray(labels)
  per_class = [correct[labels == k].mean() for k in range(num_classes) if np.any(labels == k)]
  return float(correct.mean()), float(np.mean(per_class))


def style_accuracy(images: np.ndarray, labels: np.ndarray, requested: np.ndarray,
                   thresholds: np.ndarray, pixel_threshold: int = 0) -> float:
  """Share of images whose style by the data's own statistic is the requested one.

  The statistic is ``kjax.data.style``'s: foreground pixels (value > ``pixel_threshold``)
  of the uint8 image; style 1 (thick) where it exceeds ``thresholds[label]``.

  Args:
    images: uint8 ``[N, 28, 28(, 1)]`` (``to_uint8`` for generated images).
    labels: int ``[N]`` classes; requested: int ``[N]`` styles (0 thin, 1 thick).
    thresholds: float ``[num_classes]`` class thresholds of the training split.

  Returns:
    A fraction in [0, 1]; 1.0 for real images labelled by their own statistic.
  """
  counts = kstyle.foreground_pixel_count(images, pixel_threshold)
  return float(np.mean(kstyle.style_labels(counts, labels, thresholds) == requested))


# --- the evaluation -------------------------------------------------------------------------


class _Evaluation:
  """One evaluation of one restored state; fills ``metrics`` and ``figures``."""

  def __init__(self, config, workdir, task, state, train_ds, eval_ds, classifier):
    self.config, self.task, self.state = config, task, state
    self.train_ds, self.eval_ds = train_ds, eval_ds
    self.classifier = classifier
    self.ev = config.eval
    self.out_dir = os.path.join(workdir, EVAL_DIR)
    self.workdir = workdir
    self.key = rng.stream_keys(config.seed)["evaluation"]
    self.metrics: dict[str, Any] = {}
    self.protocol: dict[str, Any] = {}
    self.figures: list[str] = []
    self.timing: dict[str, float] = {}
    self.info = eval_ds.info
    self.x_eval = eval_ds.images.astype(np.float32) / 255.0
    self.caption = task.describe()
    self._sample_fn = jax.jit(task.sample)  # compiled once per shape for the evaluation

  def _key(self, name: str) -> jax.Array:
    return jax.random.fold_in(self.key, int.from_bytes(name.encode()[:4], "little"))

  def _timed(self, name: str, fn: Callable) -> None:
    t0 = time.perf_counter()
    fn()
    self.timing[name] = round(time.perf_counter() - t0, 2)
    logging.info("kjax: evaluation: %s done in %.1f s", name, self.timing[name])

  def _figure(self, path: str | None) -> None:
    if path:
      self.figures.append(os.path.relpath(path, self.workdir))

  # -- conditioning of the eval images and of generated ones --------------------------------

  def _cond(self, n: int):
    """Labels and styles of the first ``n`` eval images, repeated if n > the split."""
    return (np.resize(self.eval_ds.labels.astype(np.int32), n),
            np.resize(self.eval_ds.styles.astype(np.int32), n))

  def _sample(self, z, labels, styles) -> np.ndarray:
    """float ``[N, D]`` noise, int ``[N]`` classes and styles → numpy images ``[N, 28, 28, 1]``."""
    return _batched(lambda a, b, c: self._sample_fn(self.state, a, b, c), z, labels, styles)

  # -- VAEs ---------------------------------------------------------------------------------

  def likelihood(self) -> None:
    task, state, ds = self.task, self.state, self.eval_ds
    evaluator = kevaluator.Evaluator(task, ds, self.config.train.eval_batch_size,
                                rng.stream_keys(self.config.seed)["eval"])
    self.metrics.update(evaluator(state))
    n = len(ds) if not self.ev.iwae_max_examples else min(self.ev.iwae_max_examples, len(ds))
    k, b = self.ev.iwae_samples, self.ev.iwae_batch_size
    bound = jax.jit(functools.partial(task.log_likelihood_bound, num_samples=k,
                                      chunk_size=self.ev.iwae_chunk_size))
    key = self._key("iwae")
    values = []
    for i in range(0, n, b):
      batch = {"images": jnp.asarray(ds.images[i:min(i + b, n)]),
               "labels": jnp.asarray(ds.labels[i:min(i + b, n)].astype(np.int32)),
               "styles": jnp.asarray(ds.styles[i:min(i + b, n)].astype(np.int32))}
      values.append(np.asarray(bound(state, batch, jax.random.fold_in(key, i))))
    self.metrics["iwae_nll"] = float(-np.concatenate(values).mean())
    if n < len(ds):  # the ELBO on the same images, so that the two compare
      subset = dataclasses.replace(ds, images=ds.images[:n], labels=ds.labels[:n],
                                   styles=ds.styles[:n])
      self.metrics["nelbo_iwae_examples"] = kevaluator.Evaluator(
          task, subset, self.config.train.eval_batch_size,
          rng.stream_keys(self.config.seed)["eval"])(state)["nelbo"]
    self.protocol.update(iwae_samples=k, iwae_examples=n,
                         likelihood=(f"{self.config.objective.likelihood} on grey levels in "
                                     "[0, 1] (not binarised)"))

  def latents(self) -> None:
    task, state, ds = self.task, self.state, self.eval_ds
    post = jax.jit(task.posterior)
    z_mean, z_logvar = [], []
    for i in range(0, len(ds), 1000):
      m, lv = post(state, jnp.asarray(self.x_eval[i:i + 1000]),
                   jnp.asarray(ds.labels[i:i + 1000].astype(np.int32)),
                   jnp.asarray(ds.styles[i:i + 1000].astype(np.int32)))
      z_mean.append(np.asarray(m))
      z_logvar.append(np.asarray(lv))
    self.z_mean, self.z_logvar = np.concatenate(z_mean), np.concatenate(z_logvar)
    labels, styles = ds.labels.astype(np.int32), ds.styles.astype(np.int32)
    recon = self._sample(self.z_mean, labels, styles)
    self.metrics["rec_mse"] = float(np.mean(np.square(recon - self.x_eval)))
    self.kl_dims = kmetrics.kl_per_dimension(self.z_mean, self.z_logvar)
    count, self.activity = kmetrics.active_units(self.z_mean, ACTIVE_THRESHOLD)
    self.metrics.update(active_units=count, kl_per_dimension=self.kl_dims.round(4).tolist(),
                        unit_activity=self.activity.round(4).tolist())
    self._figure(figures.plot_kl_per_dimension(
        os.path.join(self.out_dir, "kl_per_dimension.png"), self.kl_dims, self.activity,
        ACTIVE_THRESHOLD, f"KL per latent dimension, eval split\n{self.caption}"))

  def inpainting(self) -> None:
    ds = self.eval_ds
    labels, styles = ds.labels.astype(np.int32), ds.styles.astype(np.int32)
    masked = self.x_eval.copy()
    masked[:, INPAINT_PATCH[0], INPAINT_PATCH[1]] = 0.0
    encode = jax.jit(self.task.encode)
    z = _batched(lambda a, b, c: encode(self.state, a, b, c), masked, labels, styles)
    inpainted = self._sample(z, labels, styles)
    patch = (slice(None), *INPAINT_PATCH)
    self.metrics["inpainting_patch_mse"] = float(np.mean(np.square(
        inpainted[patch] - self.x_eval[patch])))
    self.metrics["masked_patch_mse"] = float(np.mean(np.square(self.x_eval[patch])))
    if self.classifier is not None:
      self.metrics["inpainting_class_accuracy"] = class_accuracy(
          self.classifier.predict(inpainted), labels, self.info.num_classes)[0]
    n = min(10, len(ds))
    self._figure(figures.plot_inpainting(
        os.path.join(self.out_dir, "inpainting.png"), self.x_eval[:n], masked[:n],
        inpainted[:n], f"Inpainting the central 10×10 pixels (eval images; seed 004 §2.1)\n"
                       f"{self.caption}"))

  def traversals(self) -> None:
    ds = self.eval_ds
    order = np.argsort(-self.kl_dims)[:MAX_TRAVERSAL_DIMS]
    v = len(TRAVERSAL_VALUES)
    z = np.repeat(self.z_mean[:1], len(order) * v, 0).reshape(len(order), v, -1)
    for r, d in enumerate(order):
      z[r, :, d] = TRAVERSAL_VALUES
    labels = np.full(len(order) * v, ds.labels[0], np.int32)
    styles = np.full(len(order) * v, ds.styles[0], np.int32)
    images = self._sample(z.reshape(len(order) * v, -1), labels, styles)
    self._figure(figures.plot_traversals(
        os.path.join(self.out_dir, "traversals.png"), images.reshape(len(order), v, 28, 28),
        order, self.kl_dims, TRAVERSAL_VALUES,
        f"Latent traversals around the first eval image's z_mean ({self.info.label(int(ds.labels[0]))}),"
        f" rows ordered by KL\n{self.caption}"))

  def tsne(self) -> None:
    if self.z_mean.shape[1] <= 2:
      self.protocol["tsne"] = "not drawn: the latent has <= 2 dimensions (see latent_manifold)"
      return
    if not self.metrics.get("active_units", 1):
      # A collapsed posterior (every z_mean constant) has no structure to embed, and
      # scikit-learn's PCA-initialised t-SNE divides by its zero spread (NaN, then a crash).
      self.protocol["tsne"] = "not drawn: no active unit (the posterior has collapsed)"
      return
    n = min(self.ev.tsne_max_points, len(self.z_mean))
    self._figure(figures.plot_tsne(
        os.path.join(self.out_dir, "tsne.png"), self.z_mean[:n], self.eval_ds.labels[:n],
        self.info, f"t-SNE of eval z_mean ({n} images, {self.z_mean.shape[1]}-D)\n{self.caption}",
        seed=self.config.seed))
    self.protocol["tsne_points"] = n

  def encoded_interpolation(self) -> None:
    """Decodes the segment between two encoded eval characters (seed 002's first GIF)."""
    ds = self.eval_ds
    labels = ds.labels
    if self.task.conditional:  # same class: the condition is fixed along the path
      same = np.flatnonzero(labels == labels[0])
      i, j = (0, same[1]) if len(same) > 1 else (0, 0)
    else:
      a, b = self.config.figures.get("interpolate_classes", (0, 1))
      ia, ib = np.flatnonzero(labels == a), np.flatnonzero(labels == b)
      i, j = (ia[0], ib[0]) if len(ia) and len(ib) else (0, min(1, len(ds) - 1))
    t = np.linspace(0.0, 1.0, 10, dtype=np.float32)[:, None]
    z = (1 - t) * self.z_mean[i] + t * self.z_mean[j]
    cond = np.full(len(t), labels[i], np.int32), np.full(len(t), ds.styles[i], np.int32)
    frames = self._sample(z, *cond)[..., 0]
    strip = np.concatenate([self.x_eval[i:i + 1, ..., 0], frames, self.x_eval[j:j + 1, ..., 0]])
    title = (f"Between two encoded eval characters ({self.info.label(int(labels[i]))} → "
             f"{self.info.label(int(labels[j]))}); first and last: the originals\n{self.caption}")
    self._figure(figures.plot_image_grid(os.path.join(self.out_dir, "interpolation_encoded.png"),
                                         strip, len(strip), title))
    self._figure(figures.save_gif(os.path.join(self.out_dir, "interpolation_encoded.gif"),
                                  frames))

  # -- every generative model ---------------------------------------------------------------

  def noise_interpolation(self) -> None:
    """For models without an encoder: the segment between two noise draws, fixed class."""
    z = np.asarray(jax.random.normal(self._key("interp"), (2, self.task.latent_dim())))
    t = np.linspace(0.0, 1.0, 10, dtype=np.float32)[:, None]
    label = int(self.eval_ds.labels[0])
    frames = self._sample((1 - t) * z[0] + t * z[1], np.full(10, label, np.int32),
                          np.zeros(10, np.int32))[..., 0]
    self._figure(figures.plot_image_grid(
        os.path.join(self.out_dir, "interpolation_noise.png"), frames, len(frames),
        f"Between two noise draws, class {self.info.label(label)}, thin\n{self.caption}"))
    self._figure(figures.save_gif(os.path.join(self.out_dir, "interpolation_noise.gif"), frames))

  def sample_quality(self) -> None:
    """FD, KID, class and style accuracy of samples, in the classifier's features."""
    clf, ds, task = self.classifier, self.eval_ds, self.task
    n = self.ev.num_generated or len(ds)
    labels, styles = self._cond(n)
    z = np.asarray(jax.random.normal(self._key("fd"), (n, task.latent_dim())))
    generated = self._sample(z, labels, styles)
    real = clf.features(self.x_eval)
    fake = clf.features(generated)
    m = min(self.ev.kid_subset_size, len(real), len(fake))
    kid = functools.partial(kmetrics.kernel_inception_distance, num_subsets=self.ev.kid_subsets,
                            subset_size=m, seed=self.config.seed)
    self.metrics["fd"] = kmetrics.frechet_distance(fake, real)
    self.metrics["kid"], self.metrics["kid_std"] = kid(fake, real)
    n_ref = min(len(self.train_ds), n)
    train_feats = clf.features(self.train_ds.images[:n_ref].astype(np.float32) / 255.0)
    self.metrics["fd_real_train_vs_eval"] = kmetrics.frechet_distance(train_feats, real)
    self.metrics["kid_real_train_vs_eval"] = kid(train_feats, real)[0]
    self.protocol.update(num_generated=n, num_real_eval=len(real), num_real_train_reference=n_ref,
                         kid_subsets=self.ev.kid_subsets, kid_subset_size=m,
                         generated_conditioning=("labels and styles of the eval images, in "
                                                 "order" if task.conditional else "none"))
    if not task.conditional:
      return
    predicted = clf.predict(generated)
    acc, balanced = class_accuracy(predicted, labels, self.info.num_classes)
    per_class = [round(float(np.mean(predicted[labels == k] == k)), 4) if np.any(labels == k)
                 else None for k in range(self.info.num_classes)]
    self.metrics.update(class_accuracy=acc, class_balanced_accuracy=balanced,
                        class_accuracy_per_class=per_class)

  def style(self) -> None:
    """Style accuracy and the thickness shift when only the style label flips, by the
    data's statistic and by the ink count (``INK_PIXEL_THRESHOLD``)."""
    ds, task = self.eval_ds, self.task
    n = self.ev.num_generated or len(ds)
    labels, _ = self._cond(n)
    z = np.asarray(jax.random.normal(self._key("style"), (n, task.latent_dim())))
    thin = to_uint8(self._sample(z, labels, np.zeros(n, np.int32)))
    thick = to_uint8(self._sample(z, labels, np.ones(n, np.int32)))
    c = self.config.data
    for suffix, pixel_threshold in (("", c.style_pixel_threshold), ("_ink", INK_PIXEL_THRESHOLD)):
      count = functools.partial(kstyle.foreground_pixel_count, pixel_threshold=pixel_threshold)
      thresholds = kstyle.class_thresholds(count(self.train_ds.images), self.train_ds.labels,
                                           self.info.num_classes, c.style_reduction)
      self.metrics[f"style_accuracy{suffix}"] = style_accuracy(
          np.concatenate([thin, thick]), np.concatenate([labels, labels]),
          np.repeat(np.array([0, 1], np.int32), n), thresholds, pixel_threshold)
      self.metrics[f"thickness_shift{suffix}_pixels"] = float(np.mean(count(thick) - count(thin)))
      real = count(ds.images)
      self.metrics[f"real_thickness_gap{suffix}_pixels"] = float(
          real[ds.styles == 1].mean() - real[ds.styles == 0].mean())
    self.protocol.update(style_pairs=n, style_statistics=(
        f"foreground pixels > {c.style_pixel_threshold} (the data's style statistic) and "
        f"ink pixels > {INK_PIXEL_THRESHOLD} (_ink), class {c.style_reduction}s of the train split"))

  def training_gifs(self) -> None:
    epochs, frames = kframes.load_frames(os.path.join(self.workdir, kframes.FRAMES_DIR))
    # At most MAX_GIF_FRAMES epochs, evenly spaced, the first and the last included.
    keep = np.unique(np.linspace(0, len(epochs) - 1, MAX_GIF_FRAMES).round().astype(int))
    for name, tiles in frames.items():
      self._figure(figures.save_training_gif(
          os.path.join(self.out_dir, f"training_{name}.gif"), [tiles[i] for i in keep],
          [epochs[i] for i in keep]))
    if not frames:
      self.protocol["training_gifs"] = "not drawn: no frames/ (run trained before they existed)"

  # -- a classifier run ---------------------------------------------------------------------

  def classifier_accuracy(self) -> None:
    evaluator = kevaluator.Evaluator(self.task, self.eval_ds, self.config.train.eval_batch_size,
                                rng.stream_keys(self.config.seed)["eval"])
    self.metrics.update(evaluator(self.state))
    predict = jax.jit(self.task.predict)
    predicted = _batched(lambda x: predict(self.state, x), self.x_eval)
    self.metrics["balanced_accuracy"] = class_accuracy(predicted, self.eval_ds.labels,
                                                       self.info.num_classes)[1]
    self.protocol["params_sha256"] = params_sha256(self.state.params)

  def run(self) -> None:
    name = self.task.name
    if name == "classifier":
      self._timed("accuracy", self.classifier_accuracy)
      return
    if name in ("beta_vae", "cvae"):
      self._timed("likelihood", self.likelihood)
      self._timed("latents", self.latents)
      self._timed("inpainting", self.inpainting)
      self._timed("traversals", self.traversals)
      self._timed("tsne", self.tsne)
      self._timed("interpolation", self.encoded_interpolation)
    else:
      self._timed("interpolation", self.noise_interpolation)
    if self.classifier is not None:
      self._timed("sample_quality", self.sample_quality)
    if self.task.conditional:
      self._timed("style", self.style)
    self._timed("training_gifs", self.training_gifs)


def evaluate(config: ml_collections.ConfigDict, workdir: str, task: tasks.Task, state: Any,
             train_ds: kdata.Dataset, eval_ds: kdata.Dataset,
             classifier: DomainClassifier | None = None) -> dict[str, Any]:
  """Evaluates ``state`` and writes ``WORKDIR/eval/metrics.json``, the evaluation figures
  (``WORKDIR/eval/*.png|gif``) and ``WORKDIR/report.html``.

  Args:
    config: the run's config (its ``eval`` section sets k, sample sizes, the classifier).
    task, state: the model family and its restored or final train state.
    train_ds, eval_ds: the run's splits (thresholds and the real reference come from
      ``train_ds``; every metric is on ``eval_ds``).
    classifier: the domain classifier for FD, KID, class and style metrics; None skips
      the metrics that need it (recorded as such).

  Returns:
    The content of ``metrics.json``: ``run``, ``protocol``, ``classifier``, ``metrics``
    (name → number or list), ``figures`` (paths relative to the workdir), ``timing_s``.
  """
  os.makedirs(os.path.join(workdir, EVAL_DIR), exist_ok=True)
  t0 = time.perf_counter()
  ev = _Evaluation(config, workdir, task, state, train_ds, eval_ds, classifier)
  ev.run()
  step = int(state.step)
  steps_per_epoch = max(1, len(train_ds) // config.train.batch_size)
  result = {
      "run": {"model": task.name, "description": task.describe(), "step": step,
              "epoch": step // steps_per_epoch, "data": config.data.name,
              "train_split": config.data.train_split, "eval_split": config.data.eval_split,
              "num_train": len(train_ds), "num_eval": len(eval_ds), "seed": config.seed},
      "protocol": ev.protocol,
      "classifier": classifier.describe() if classifier is not None else None,
      "metrics": ev.metrics,
      "figures": ev.figures,
      "timing_s": {**ev.timing, "total": round(time.perf_counter() - t0, 2)},
  }
  if classifier is None and task.name != "classifier":
    result["protocol"]["classifier_metrics"] = ("not computed: set "
                                                "config.eval.classifier_workdir")
  metric_writers.write_json(os.path.join(workdir, EVAL_DIR, "metrics.json"), result)
  t_report = time.perf_counter()
  report.write_report(workdir, config.to_dict(), result, METRIC_DOCS)
  # Returned (kjax.experiment logs it with the run's phases), not in metrics.json.
  result["timing_s"]["report"] = round(time.perf_counter() - t_report, 2)
  result["timing_s"]["total"] = round(time.perf_counter() - t0, 2)
  logging.info("kjax: evaluation written to %s and %s (%.0f s)",
               os.path.join(workdir, EVAL_DIR, "metrics.json"),
               os.path.join(workdir, "report.html"), result["timing_s"]["total"])
  return result


def classifier_for(config: ml_collections.ConfigDict) -> DomainClassifier | None:
  """The domain classifier named by ``config.eval.classifier_workdir`` (None if empty).

  Raises:
    ConfigError: see ``load_classifier``.
  """
  if config.model.name == "classifier" or not config.eval.classifier_workdir:
    return None
  return load_classifier(config.eval.classifier_workdir, config.data.name)


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """``launch.py --mode=evaluate``: restores the newest checkpoint of the run in ``workdir``
  (trained with ``config``) and runs ``evaluate``; trains nothing.

  Raises:
    ConfigError: a bad config value, no run or checkpoint in ``workdir``, a config that
      differs from the run's ``config.json`` in a setting that changes the experiment, or
      a bad ``config.eval.classifier_workdir`` (all before anything is written).
    DataError, DataFileNotFoundError, ChecksumError: as for training.
  """
  validation.validate_config(config)
  kworkdir.read_config(workdir, "--workdir")
  kworkdir.check_resumable(workdir, config.to_dict())
  classifier = classifier_for(config)
  task = tasks.get_task(config)
  train_ds, eval_ds = kdata.load_datasets(config.data)
  task.num_train_examples = len(train_ds)  # the β-TC-VAE's N (minibatch-weighted sampling)
  state = kworkdir.restore_state(task, config, workdir, "--workdir")
  return evaluate(config, workdir, task, state, train_ds, eval_ds, classifier)

