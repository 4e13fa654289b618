"""The CNN classifier as a training task: softmax cross-entropy, accuracy (issue 4).

Training uses dropout and random translations of up to ``config.augment.max_shift`` pixels
(zero padded), the augmentation that lets the evaluator generalise from the 8,000 images
available offline here.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import optax

from kjax import config_fields
from kjax import figures
from kjax.models import classifier
from kjax.tasks import base


def random_shift(x: jax.Array, key: jax.Array, max_shift: int) -> jax.Array:
  """Translates each image of float ``[B, H, W, C]`` by its own random whole-pixel offset
  in ``[-max_shift, max_shift]`` along each axis, filling with zeros (background)."""
  b, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
  offsets = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)
  crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (h, w, x.shape[3]))  # noqa: E731
  return jax.vmap(crop)(padded, offsets)


class ClassifierTask(base.Task):
  """Trains ``kjax.models.classifier.CNNClassifier`` on (image, class) pairs.

  Attributes:
    num_train_examples: N, the train split's size (the cosine schedule's length); the
      training loop sets it before ``init_state``.
  """

  name = "classifier"
  conditional = False
  is_classifier = True
  fields = config_fields.rows(
      # Not stackable: the cosine schedule's learning rate is a constant of the step's code
      # (tests/test_tasks.py found it; runs of other rates train one after another).
      config_fields.Field("optim.learning_rate", "real", "Adam's learning rate (the cosine "
                          "schedule's peak)", 0, low_open=True),
      config_fields.Field("optim.schedule", "choice", "constant, or cosine: decayed to 0 "
                          "over the run (SGDR without restarts)",
                          choices=("constant", "cosine")),
      config_fields.Field("model.dropout_rate", "real", "dropout before the last layer", 0,
                          1, high_open=True),
      config_fields.Field("augment.max_shift", "int", "random shifts of up to N pixels", 0,
                          8))

  @classmethod
  def has_convolutions(cls, model) -> bool:
    """Always: a CNN."""
    return True

  @classmethod
  def validate_config(cls, config, info) -> None:
    """The rule no row states: an image height and width divisible by 4 (a CNN,
    ``base.check_conv_image_shape``).

    Raises:
      ConfigError: a bad value.
    """
    base.check_conv_image_shape(config, info)
  train_metrics = eval_metrics = ("loss", "accuracy")
  log_metrics = ("loss", "accuracy")

  def __init__(self, config, info, num_train_examples):
    super().__init__(config, info, num_train_examples)
    m = config.model
    self.model = classifier.CNNClassifier(info.num_classes, tuple(m.channels), m.hidden,
                                          m.dropout_rate, m.get("conv_impl", "auto"))
    self.max_shift = config.augment.max_shift

  def init_state(self, key: jax.Array, *, learning_rate=None) -> base.TrainState:
    """Parameters from ``key``, Adam's state, step 0. The learning rate is
    ``optim.learning_rate``, constant, or with ``optim.schedule='cosine'`` decayed to 0 over
    the run's steps (Loshchilov & Hutter 2017, SGDR, without restarts), which needs
    ``num_train_examples`` (given at construction; a template for restoring a checkpoint,
    built with None, has the same structure).
    """
    params = self.model.init(key, jnp.zeros((1, *self.image_shape)))["params"]
    lr = self.config.optim.learning_rate if learning_rate is None else learning_rate
    if self.config.optim.get("schedule", "constant") == "cosine":
      train = self.config.train
      total = train.num_epochs * ((self.num_train_examples or 0) // train.batch_size)
      lr = optax.cosine_decay_schedule(lr, max(total, 1))
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
    return base.TrainState.create(apply_fn=self.model.apply, params=params, tx=tx, hparams={})

  def _per_example(self, params, batch, key=None):
    x = base.to_unit_interval(batch["images"])
    train = key is not None
    if train and self.max_shift:
      shift_key, key = jax.random.split(key)
      x = random_shift(x, shift_key, self.max_shift)
    logits = self.model.apply({"params": params}, x, train,
                              rngs={"dropout": key} if train else None)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"])
    return loss, (jnp.argmax(logits, -1) == batch["labels"]).astype(jnp.float32)

  def train_step(self, state, batch, key):
    """One Adam step on the batch-mean cross-entropy (nats) of randomly shifted images
    with dropout (noise from ``key``); metrics ``loss``, ``accuracy`` (of those images)."""

    def loss_fn(params):
      loss, correct = self._per_example(params, batch, key)
      return loss.mean(), {"loss": loss.mean(), "accuracy": correct.mean()}

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), metrics

  def eval_sums(self, state, batch, mask, key):
    """Sums of the cross-entropy and of correct predictions over unmasked rows, + ``count``."""
    del key
    loss, correct = self._per_example(state.params, batch)
    return {"loss": jnp.sum(jnp.where(mask, loss, 0.0)),
            "accuracy": jnp.sum(jnp.where(mask, correct, 0.0)),
            "count": mask.sum().astype(jnp.float32)}

  def features(self, state, x: jax.Array) -> jax.Array:
    """float ``[B, H, W, 1]`` in [0, 1] → penultimate features float ``[B, hidden]``."""
    return self.model.apply({"params": state.params}, x,
                            method=classifier.CNNClassifier.features)

  def predict(self, state, x: jax.Array) -> jax.Array:
    """float ``[B, H, W, 1]`` in [0, 1] → predicted classes int32 ``[B]`` (no dropout)."""
    return jnp.argmax(self.model.apply({"params": state.params}, x), -1)

  def sample(self, state, z, labels, styles):
    raise NotImplementedError("a classifier does not generate images")

  def describe(self):
    c = self.config
    return f"CNN classifier on {c.data.name} {c.data.train_split}, seed={c.seed}"

  def figure_inputs(self, train_ds, eval_ds, key):
    del train_ds, eval_ds, key
    return {}

  def previews(self, state, fixed):
    return {}

  def final_figures(self, state, fixed, history, fig_dir, train_ds, eval_ds):
    if not history:
      return []
    return [figures.plot_loss_curves(os.path.join(fig_dir, "loss_curves.png"), history,
                                     f"Loss and accuracy\n{self.describe()}",
                                     panels=(("loss",), ("accuracy",)))]
