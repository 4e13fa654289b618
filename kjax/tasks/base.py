"""What every kjax experiment provides to the training loop (``kjax.train``).

A task owns the model family's pure functions (init, train step, evaluation sums,
sampling) and its figures. The loop owns everything shared: data on the device, batches by
index, PRNG streams, checkpoints, metrics, the workdir contract.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import struct
from flax.training import train_state

from kjax import config_fields
from kjax import errors
from kjax import figures
from kjax.data import catalog

# {'images': uint8 [B, H, W, 1], 'labels': int32 [B], 'styles': int32 [B]}, (H, W, 1) the
# data set's DatasetInfo.image_shape.
Batch = dict[str, jax.Array]


class TrainState(train_state.TrainState):
  """Flax ``TrainState`` plus per-run hyper-parameters and batch-norm statistics.

  Attributes:
    hparams: e.g. ``{'beta': float32 []}``; arrays, so that a sweep can ``vmap`` the step
      over a leading run axis with a different value per run. Learning rates live in
      ``opt_state`` (``optax.inject_hyperparams``) for the same reason.
    batch_stats: the model's batch-norm running statistics (``{}`` when it has none).
  """

  hparams: dict[str, jax.Array]
  batch_stats: Any = struct.field(default_factory=dict)


def to_unit_interval(images: jax.Array) -> jax.Array:
  """uint8 ``[...]`` 0..255 → float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


CONV_DIVISOR = 4  # the conv networks' two stride-2 stages: 28 → 14 → 7, 32 → 16 → 8


def check_conv_image_shape(config: ml_collections.ConfigDict, info: catalog.DatasetInfo
                           ) -> None:
  """The convolutional networks take images whose height and width are multiples of
  ``CONV_DIVISOR`` (4): 28 × 28, 32 × 32, 64 × 64, ...

  Raises:
    ConfigError: one line naming the data set's image shape and what is allowed.
  """
  h, w, _ = info.image_shape
  if h % CONV_DIVISOR or w % CONV_DIVISOR:
    arch = config.model.get("architecture")
    what = f"config.model.name={config.model.name!r}" + (
        f" with config.model.architecture={arch!r}" if arch else "")
    raise errors.ConfigError(
        f"{what} cannot take the {info.shape_text} images of {info.name}: its convolutional "
        f"networks need a height and width divisible by {CONV_DIVISOR} (e.g. 28×28, 32×32)")


# The loop's previews of a generator's figure inputs (``Task.previews``): TensorBoard images
# and ``frames/``, the GIFs' frames.
PREVIEW_FIELDS = config_fields.rows(
    config_fields.logistic("figures.preview_every_epochs", "int", "previews (TensorBoard "
                           "images, frames/) every N epochs, the first and the last; unset "
                           "= 1", low=1))
# The figures of a family that keeps base.Task's (the class × style sheet, the progress grids).
FIGURE_FIELDS = {**PREVIEW_FIELDS, **config_fields.rows(
    config_fields.logistic("figures.samples_per_style", "int", "samples per class and style "
                           "in the sample sheet", low=1),
    config_fields.logistic("figures.progress_every_epochs", "int", "real vs generated grids "
                           "every N epochs; 0 = none", low=0))}


class Task:
  """One model family: ``beta_vae``, ``cvae`` or ``cgan`` (``kjax.tasks.get_task``).

  Subclasses set the class attributes and implement ``init_state``, ``train_step``,
  ``eval_sums`` and ``sample``; all four are pure functions of arrays (jit-able,
  vmappable over a leading run axis).

  Attributes:
    name: ``config.model.name``.
    conditional: whether ``sample`` uses the class and style labels.
    train_metrics, eval_metrics: names of the metrics ``train_step`` returns (batch means)
      and ``eval_sums`` sums; logged as ``train/<name>`` and ``eval/<name>``.
    log_metrics: the train metrics shown on the progress line.
    fields: the family's own rows of the table of config fields (``kjax.config_fields``):
      its sections' fields with their kind, what is allowed, meaning and roles; a row of a
      shared key replaces the shared row (the classifier's ``optim.learning_rate``);
      default ``FIGURE_FIELDS``, the settings of the figures this base class draws.
    stackable: derived from the table, not declared: the keys whose rows are
      ``stackable`` (their values live in arrays of the train state: ``state.hparams``,
      the optimisers' ``inject_hyperparams``; never in the step's code), in which a sweep's
      runs may differ (with ``seed``) and share one compiled program (``kjax.sweep``;
      ``tests/test_tasks.py`` traces each family's step to check it).
    optimizer_names: the names of its optimisers' learning rates under ``train_steps/``:
      the path of an optimiser's owner in the train state (``''``: the state itself) → the
      name (``kjax.train.program.learning_rates``).
    has_encoder: the family has q(z | x): the likelihood and latent evaluations apply.
    is_classifier: the family is the domain classifier (scored by its accuracy).
  """

  name = ""
  conditional = True
  train_metrics: tuple[str, ...] = ()
  eval_metrics: tuple[str, ...] = ()
  log_metrics: tuple[str, ...] = ()
  fields: dict[str, config_fields.Field] = FIGURE_FIELDS
  optimizer_names: dict[str, str] = {"": "learning_rate"}
  stackable: tuple[str, ...] = ("optim.learning_rate",)
  has_encoder = False
  is_classifier = False

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    cls.stackable = tuple(k for k, row in cls.table().items() if row.stackable and k != "seed")

  @classmethod
  def table(cls) -> dict[str, config_fields.Field]:
    """The family's table of config fields: ``config_fields.SHARED`` with ``fields``
    merged in (a family's row replaces a shared one of the same key)."""
    return config_fields.merged(config_fields.SHARED, cls.fields)

  @classmethod
  def validate_config(cls, config: ml_collections.ConfigDict, info: catalog.DatasetInfo
                      ) -> None:
    """The family's rules that no single row of its table states (fields checked
    together, or against the data set ``info``), after ``kjax.validation`` checked every
    field against its row. The default has none.

    Raises:
      ConfigError: the first bad value (``kjax.config_checks``).
    """

  @classmethod
  def has_convolutions(cls, model: Any) -> bool:
    """Whether ``config.model`` (a dict or ConfigDict) describes a network with
    convolutions (``kjax.autotune``: steps per call and ``conv_impl`` depend on it)."""
    return False

  @classmethod
  def vmaps_well_on_cpu(cls, model: Any) -> bool:
    """Whether a sweep's stack of this network runs faster vmapped than one run after
    another on XLA:CPU (``kjax.sweep.default_sharing``, measured by ``benchmarks/sweep.py``)."""
    return False

  def __init__(self, config: ml_collections.ConfigDict, info: catalog.DatasetInfo,
               num_train_examples: int | None):
    """A family built with everything it needs.

    Args:
      config: the run's config (checked: ``kjax.validation``).
      info: the data set (classes, image shape).
      num_train_examples: N, the train split's size, which schedules (``optim.schedule``)
        and objectives (the β-TC-VAE's estimator) read; None builds a template that
        restores a checkpoint and samples from it but must not train (a reader:
        ``kjax.generate``, the domain evaluator).
    """
    self.config = config
    self.info = info
    self.num_train_examples = num_train_examples

  @functools.cached_property
  def jit_sample(self):
    """``jax.jit(self.sample)``, compiled once per shape for the figures."""
    return jax.jit(self.sample)

  # --- pure functions -----------------------------------------------------------------

  def init_state(self, key: jax.Array) -> Any:
    """The initial train state (parameters from ``key``, optimiser state, step 0)."""
    raise NotImplementedError

  def fresh_state(self, key: jax.Array) -> Any:
    """``init_state(key)`` as one compiled program: the same arrays (the step counter an
    int32 array instead of the integer 0). Run eagerly, the initialisers and the
    optimiser's zeros are ~60 programs, each compiled apart (seconds on a CPU); compiled
    whole, one program, which the persistent cache (``kjax.compile_cache``) then keeps.

    ``init_state`` is traced, so it must keep no JAX value it makes outside the arrays it
    returns: an optimiser schedule's constants are NumPy (``vae.iwae_schedule``);
    ``tests/test_train.py`` checks every shipped config with ``jax.checking_leaks``."""
    return jax.jit(self.init_state)(key)

  def train_step(self, state: Any, batch: Batch, key: jax.Array
                 ) -> tuple[Any, dict[str, jax.Array]]:
    """One update on ``batch`` with the step's PRNG ``key`` → (state, batch-mean metrics)."""
    raise NotImplementedError

  def eval_sums(self, state: Any, batch: Batch, mask: jax.Array, key: jax.Array
                ) -> dict[str, jax.Array]:
    """Sums of ``eval_metrics`` over the unmasked (bool ``[B]``) examples, plus ``count``."""
    raise NotImplementedError

  def sample(self, state: Any, z: jax.Array, labels: jax.Array, styles: jax.Array) -> jax.Array:
    """float ``[B, latent_dim]`` noise, int ``[B]`` classes and styles → images float
    ``[B, H, W, 1]`` (``info.image_shape``) in [0, 1] (decoder means for VAEs, G(z) for
    GANs)."""
    raise NotImplementedError

  def latent_dim(self) -> int:
    """Dimension of the noise ``z ~ N(0, I)`` that ``sample`` takes."""
    return self.config.model.latent_dim

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """``(H, W, C)`` of the images the networks take and make: ``info.image_shape``."""
    return tuple(self.info.image_shape)

  # --- captions -----------------------------------------------------------------------

  def describe(self) -> str:
    """One line naming the experiment, for logs and figure titles."""
    c = self.config
    return f"{c.model.name} on {c.data.name} {c.data.train_split}, seed={c.seed}"

  def hyperparameters(self) -> str:
    """The hyper-parameters shown under progress figures (as in Shyam 2024, §4.3.4)."""
    c = self.config
    return (f"learning rate {c.optim.learning_rate:g}, latent_dim {c.model.latent_dim}, "
            f"batch size {c.train.batch_size}, total epochs {c.train.num_epochs}")

  # --- figures (host side) ------------------------------------------------------------

  # The figure methods take the run's fixed inputs (``figure_inputs``) as an argument: the
  # Task keeps no state of a run's figures (the loop's RunSlot holds them).

  def figure_inputs(self, train_ds, eval_ds, key: jax.Array) -> dict[str, Any]:
    """The inputs of every preview and figure of the run, fixed so that they are comparable
    across epochs: the first 64 train images with their labels (``images`` uint8
    ``[n, H, W, 1]``, ``labels``, ``styles`` int ``[n]``), noise ``z`` float32
    ``[n, latent_dim]`` and the sample sheet's ``sheet_z`` float32 ``[C, samples_per_style,
    latent_dim]``, drawn from ``key`` (the run's ``figures`` stream): the same key gives the
    same inputs."""
    n = min(64, len(train_ds))
    k_grid, k_sheet = jax.random.split(key)
    return {
        "images": train_ds.images[:n], "labels": train_ds.labels[:n],
        "styles": train_ds.styles[:n],
        "z": jax.random.normal(k_grid, (n, self.latent_dim())),
        "sheet_z": jax.random.normal(k_sheet, (self.info.num_classes,
                                               self.config.figures.samples_per_style,
                                               self.latent_dim())),
    }

  def generated(self, state, fixed: dict[str, Any]) -> np.ndarray:
    """Samples for the fixed noise and the fixed train labels: float ``[64, H, W, 1]``."""
    return np.asarray(self.jit_sample(state, fixed["z"], jnp.asarray(fixed["labels"]),
                                      jnp.asarray(fixed["styles"])))

  def previews(self, state, fixed: dict[str, Any]) -> dict[str, np.ndarray]:
    """Images of fixed inputs after every epoch: name → uint8 ``[H, W]`` tile (ink = high
    values). They go to TensorBoard and to ``WORKDIR/frames/`` (the GIFs over training,
    as in the "Variational Autoencoder" project post of 2023). Here: ``samples``, the fixed
    noise and train labels decoded."""
    return {"samples": figures.tile(self.generated(state, fixed), 8)}

  def progress_figure(self, state, fixed: dict[str, Any], epoch: int, path: str) -> str:
    """Real vs generated grid for the fixed labels, captioned with the hyper-parameters."""
    real = fixed["images"].astype(np.float32) / 255.0
    return figures.plot_real_vs_generated(
        path, real, self.generated(state, fixed), title=f"{self.describe()}: epoch {epoch}",
        caption=f"{self.hyperparameters()}, epoch {epoch}")

  def class_style_samples(self, state, fixed: dict[str, Any]) -> np.ndarray:
    """float ``[C, 2, n, H, W, 1]``: every class × (thin, thick) for the fixed sheet noise,
    the same ``z`` for both styles, so that only the style label differs."""
    z = fixed["sheet_z"]
    c, n, d = z.shape
    labels = jnp.repeat(jnp.arange(c), 2 * n)
    styles = jnp.tile(jnp.repeat(jnp.arange(2), n), c)
    zz = jnp.broadcast_to(z[:, None], (c, 2, n, d)).reshape(-1, d)
    out = np.concatenate([np.asarray(self.jit_sample(state, zz[i:i + 1024], labels[i:i + 1024],
                                                  styles[i:i + 1024]))
                          for i in range(0, len(zz), 1024)])
    return out.reshape(c, 2, n, *out.shape[1:])

  def final_figures(self, state, fixed: dict[str, Any], history: list[dict], fig_dir: str,
                    train_ds, eval_ds) -> list[str]:
    """Writes the run's figures to ``fig_dir`` (``fixed``: ``figure_inputs``); returns
    their paths."""
    paths = [figures.plot_class_style_sheet(
        os.path.join(fig_dir, "class_style_samples.png"), self.class_style_samples(state, fixed),
        self.info, f"Samples per class: thin | thick (same z in both)\n{self.describe()}")]
    if history:
      paths.append(figures.plot_loss_curves(
          os.path.join(fig_dir, "loss_curves.png"), history, f"Loss curves\n{self.describe()}",
          panels=self.loss_panels()))
    return paths

  def loss_panels(self) -> tuple[tuple[str, ...], ...]:
    """Metric groups plotted together in ``loss_curves.png``."""
    return (self.train_metrics,)
