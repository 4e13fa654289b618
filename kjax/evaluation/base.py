"""What every evaluation shares: the run it measures (``Run``), what it returns (``Output``)
and the array helpers they use.

Each evaluation is one function ``fn(run: Run) -> Output`` (disentanglement_lib's habit):
the run's config, task, restored state, splits and domain evaluator come in; metrics, the
protocol (sample counts and choices) and figures go out. Work that several evaluations
need (posterior means of the eval split, the generated samples and their features) is
computed once, on first use, and cached on the ``Run``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from kjax import content_cache
from kjax import files
from kjax import rng
from kjax import sharding
from kjax import trained
from kjax.data import loading
from kjax.evaluation import ex_post

EVAL_DIR = "eval"


@dataclasses.dataclass
class Output:
  """What one evaluation returns.

  Attributes:
    metrics: name → float, int or list of floats (``metrics.json``'s ``metrics``).
    protocol: name → how it was measured (sample counts, k, choices).
    figures: paths of the figures it wrote, relative to the run's workdir.
  """

  metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
  protocol: dict[str, Any] = dataclasses.field(default_factory=dict)
  figures: list[str] = dataclasses.field(default_factory=list)


def batched(fn: Callable, *arrays: np.ndarray, batch_size: int = 1000) -> np.ndarray:
  """``fn`` over row blocks of ``arrays`` (numpy), outputs concatenated as numpy."""
  n = len(arrays[0])
  return np.concatenate([np.asarray(fn(*(jnp.asarray(a[i:i + batch_size]) for a in arrays)))
                         for i in range(0, n, batch_size)])


def to_uint8(images: np.ndarray) -> np.ndarray:
  """float images in [0, 1] → uint8 0..255 (rounded), the data's own encoding."""
  return (np.clip(np.asarray(images), 0.0, 1.0) * 255.0).round().astype(np.uint8)


@dataclasses.dataclass
class Run(trained.TrainedRun):
  """A trained run as the evaluations see it: the run's record (``kjax.trained``), its
  splits loaded, with the domain evaluator and the evaluations' shared caches.

  Attributes (besides ``TrainedRun``'s):
    config: its ``eval`` section sets k, sample sizes, the evaluator.
    workdir: figures go to ``WORKDIR/eval/``.
    train_ds, eval_ds: loaded (references come from ``train_ds``, every metric is on
      ``eval_ds``).
    evaluator: the domain evaluator (``kjax.evaluation.domain.DomainClassifier``) or None.
  """

  evaluator: Any = None
  _cache: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

  @property
  def out_dir(self) -> str:
    return os.path.join(self.workdir, EVAL_DIR)

  @property
  def caption(self) -> str:
    """The run's one-line description, for figure titles."""
    return self.task.describe()

  @property
  def info(self):
    return self.eval_ds.info

  @functools.cached_property
  def x_eval(self) -> np.ndarray:
    """The eval images as float32 ``[N, H, W, 1]`` (the data set's ``image_shape``) in [0, 1]."""
    return self.eval_ds.images.astype(np.float32) / 255.0

  @property
  def labels(self) -> np.ndarray:
    return self.eval_ds.labels.astype(np.int32)

  @property
  def styles(self) -> np.ndarray:
    return self.eval_ds.styles.astype(np.int32)

  def key(self, name: str) -> jax.Array:
    """The PRNG key of the evaluation ``name``: the run's ``evaluation`` stream folded with
    the name's first 4 bytes (each evaluation draws its own noise, whatever runs first)."""
    return jax.random.fold_in(rng.stream_keys(self.config.seed)["evaluation"],
                              int.from_bytes(name.encode()[:4], "little"))

  def figure_path(self, name: str) -> str:
    """``WORKDIR/eval/<name>`` (the folder exists)."""
    files.makedirs(self.out_dir)
    return os.path.join(self.out_dir, name)

  def relative(self, path: str | None) -> list[str]:
    """``[path relative to the workdir]``, or ``[]`` for a figure not drawn (None)."""
    return [os.path.relpath(path, self.workdir)] if path else []

  def conditioning(self, n: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 ``[n]`` labels and styles of the first ``n`` eval images, repeated if n > the
    split: the conditioning of generated samples."""
    return np.resize(self.labels, n), np.resize(self.styles, n)

  def decode(self, z: np.ndarray, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
    """float ``[N, D]`` noise/latents, int ``[N]`` classes and styles → numpy float32
    images ``[N, H, W, 1]`` in [0, 1] (``task.sample``, compiled once per shape)."""
    if "sample_fn" not in self._cache:
      self._cache["sample_fn"] = sharding.split_batch(self.task.sample, (1, 2, 3))
    fn = self._cache["sample_fn"]
    return batched(lambda a, b, c: fn(self.state, a, b, c), z, labels, styles)

  def num_generated(self) -> int:
    """Samples for the sample-quality metrics: ``eval.num_generated`` or the eval size."""
    return self.config.eval.num_generated or len(self.eval_ds)

  def sampler(self) -> str:
    """The latent sampler of the sample metrics: ``config.eval.sampler`` (``'prior'`` |
    ``'gmm'``, ``kjax.evaluation.ex_post``) for a VAE, ``'prior'`` otherwise."""
    return self.config.eval.get("sampler", "prior") if self.task.has_encoder else "prior"

  def generated(self, sampler: str | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images float32 [n, H, W, 1], labels int32 [n], styles int32 [n])``: samples
    with the eval images' conditioning (``num_generated``), drawn once per sampler
    (default ``self.sampler()``) with the key of ``'fd'`` and shared by FD/KID,
    precision/recall, memorisation, style and CAS. ``'prior'``: z ~ N(0, I); ``'gmm'``:
    z from the Gaussian mixture fitted to the train split's ``z_mean`` (one per class for
    a conditional model)."""
    sampler = sampler or self.sampler()
    cache_key = f"generated/{sampler}"
    if cache_key not in self._cache:
      labels, styles = self.conditioning(self.num_generated())
      z = self.latents("fd", labels, sampler)
      self._cache[cache_key] = (self.decode(z, labels, styles), labels, styles)
    return self._cache[cache_key]

  def latents(self, name: str, labels: np.ndarray, sampler: str | None = None) -> np.ndarray:
    """float32 ``[n, D]`` latents for int ``labels [n]`` drawn with the key of the evaluation
    ``name`` by ``sampler`` (default ``self.sampler()``): ``'prior'`` z ~ N(0, I);
    ``'gmm'`` the ex-post mixtures (``mixtures``; a conditional model's by class)."""
    sampler = sampler or self.sampler()
    key, n = self.key(name), len(labels)
    if sampler == "prior":
      return np.asarray(jax.random.normal(key, (n, self.task.latent_dim())))
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    mixtures = self.mixtures()
    return (ex_post.sample_conditional(mixtures, labels, rng) if self.task.conditional
            else mixtures[None].sample(n, rng))

  def mixtures(self) -> dict:
    """The ex-post Gaussian mixtures (``kjax.evaluation.ex_post``) of the train split's
    ``z_mean`` with ``eval.gmm_components`` components, fitted once: ``{None: mixture}``,
    or ``{class: mixture}`` for a conditional model."""
    if "mixtures" not in self._cache:
      labels = self.train_ds.labels.astype(np.int32)
      z = self._posterior(self.train_ds.images, labels,
                          self.train_ds.styles.astype(np.int32))[0]
      k = self.config.eval.get("gmm_components", ex_post.DEFAULT_COMPONENTS)
      self._cache["mixtures"] = (
          ex_post.fit_per_class(z, labels, k, self.config.seed) if self.task.conditional
          else {None: ex_post.fit(z, k, self.config.seed)})
    return self._cache["mixtures"]

  def features(self, name: str, sampler: str | None = None) -> np.ndarray:
    """The domain evaluator's float64 features ``[n, F]`` of ``'generated'`` (by
    ``sampler``, default ``self.sampler()``), ``'eval'`` (the eval split) or ``'train'``
    (the train split), each computed once."""
    if name == "generated":
      sampler = sampler or self.sampler()
    cache_key = f"features/{name}/{sampler}"
    if cache_key not in self._cache:
      if name == "generated":
        self._cache[cache_key] = self.evaluator.features(self.generated(sampler)[0])
      else:  # a real split's: the same for every run on this data and evaluator
        uint8 = (self.eval_ds if name == "eval" else self.train_ds).images
        self._cache[cache_key] = self.on_disk(
            "features", (uint8, "float64 penultimate features"),
            lambda: self.evaluator.features(uint8.astype(np.float32) / 255.0),
            (len(uint8), None), f"the evaluator's features of the {name} split")
    return self._cache[cache_key]

  def on_disk(self, kind: str, inputs: tuple, compute: Callable[[], np.ndarray],
              shape: tuple, what: str) -> np.ndarray:
    """``compute()``, a non-negative float64 array of ``shape`` computed from ``inputs`` (the
    real splits' arrays, settings) and the domain evaluator alone, cached on disk by
    content (``kjax.content_cache``, ``<cache_dir>/<kind>/``; the key adds the evaluator's
    parameter hash, the JAX version and platform): every run on the same data shares it.
    Measured for issue 27: the train split's features were 3.7 s of a CVAE's 7.2 s
    ``sample_quality``."""
    cache_dir = self.config.data.get("cache_dir") or loading.default_cache_dir()
    sha = self.evaluator.params_sha256 if self.evaluator is not None else "no evaluator"
    key = content_cache.digest(*inputs, sha, jax.__version__, jax.devices()[0].platform)
    return content_cache.cached_npy(cache_dir, kind, key, compute,
                                    lambda a: content_cache.check_array(a, shape), what)

  def posterior(self) -> tuple[np.ndarray, np.ndarray]:
    """``(z_mean, z_logvar)`` float32 ``[N, D]`` of the eval images under q(z | x), once."""
    if "posterior" not in self._cache:
      self._cache["posterior"] = self._posterior(self.x_eval, self.labels, self.styles)
    return self._cache["posterior"]

  def _posterior(self, images: np.ndarray, labels: np.ndarray, styles: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(z_mean, z_logvar)`` float32 ``[N, D]`` of ``images [N, H, W, 1]`` (float in [0, 1],
    or uint8 grey levels, scaled a block at a time) with their int ``labels``, ``styles``
    ``[N]``, 1000 at a time."""
    post = sharding.split_batch(self.task.posterior, (1, 2, 3))

    def block(i):
      x = images[i:i + 1000]
      return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x

    out = [post(self.state, jnp.asarray(block(i)), jnp.asarray(labels[i:i + 1000]),
                jnp.asarray(styles[i:i + 1000])) for i in range(0, len(images), 1000)]
    return (np.concatenate([np.asarray(m) for m, _ in out]),
            np.concatenate([np.asarray(v) for _, v in out]))
