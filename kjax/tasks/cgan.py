"""The conditional GAN as a training task.

The CGAN of Shyam (2024), "Conditional Generation with VAE and GAN", §4.3, and variants.

One compiled step alternates ``d_steps`` discriminator updates and one generator update
(Goodfellow et al. 2014, Alg. 1), each network with its own Adam over its own parameters.
The D updates see the step's real batch with fresh noise each; the G update reuses the
last D update's noise, as Shyam's code does. Conditions (class, style) come from the real batch,
so they follow the data's class and style frequencies.

Stabilisers, each an option: an exponential moving average of G's weights (``optim.g_ema_decay``,
Yazıcı et al. 2019, "The Unusual Effectiveness of Averaging in GAN Training"), which every
sample, figure and evaluation then uses; spectral normalisation of every D layer
(``model.spectral_norm``, Miyato et al. 2018); and the two time-scale update rule (TTUR,
Heusel et al. 2017): D's own learning rate (``optim.d_learning_rate``), e.g. 4e-4 against
G's 1e-4.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training import train_state

from kjax import config_fields
from kjax import objectives
from kjax.models import cgan
from kjax.tasks import base

Field = config_fields.Field


class GANState(struct.PyTreeNode):
  """Both networks and both optimiser states, checkpointed together.

  Attributes:
    step: int32 ``[]``, generator updates so far (the loop's step).
    generator, discriminator: flax ``TrainState`` each (params, Adam state with its
      learning rate injected as an array, own step count).
    g_ema: the moving average of G's params (G's params themselves when the decay is 0),
      what ``sample`` draws with.
    hparams: ``{'label_smoothing', 'gp_weight', 'g_ema_decay'}``, float32 ``[]`` arrays so
      that a sweep can ``vmap`` over them.
  """

  step: jax.Array
  generator: train_state.TrainState
  discriminator: train_state.TrainState
  g_ema: Any
  hparams: dict[str, jax.Array]


class CGANTask(base.Task):
  """Conditional GAN on class and thick/thin style (``kjax.models.cgan``), on images of
  the data set's ``info.image_shape``."""

  name = "cgan"
  conditional = True
  fields = {**base.FIGURE_FIELDS, **config_fields.rows(
      Field("model.latent_dim", "int", "dimension of the generator's noise z", 1),
      Field("model.architecture", "choice", "mlp (Shyam 2024), mlp_large (three hidden "
            "layers) or dcgan (conv G and D)", choices=cgan.ARCHITECTURES),
      Field("model.output", "choice", "the generator's output: sigmoid (data on [0, 1]) or "
            "tanh ([-1, 1])", choices=cgan.OUTPUTS),
      Field("objective.loss", "choice", "bce (non-saturating), hinge or wgan_gp",
            choices=objectives.GAN_LOSSES),
      Field("objective.d_steps", "int", "D updates per G update", 1),
      Field("objective.label_smoothing", "real", "one-sided: real targets 1 - s (bce)", 0,
            1, high_open=True, stackable=True),
      Field("objective.gp_weight", "real", "λ of WGAN-GP", 0, stackable=True),
      Field("optim.g_learning_rate", "real", "G's Adam rate; None = optim.learning_rate",
            0, low_open=True, none_ok=True, stackable=True),
      Field("optim.d_learning_rate", "real", "D's Adam rate; None = optim.learning_rate",
            0, low_open=True, none_ok=True, stackable=True),
      Field("optim.b1", "real", "Adam's β₁", 0, 1, high_open=True, stackable=True),
      Field("optim.b2", "real", "Adam's β₂", 0, 1, high_open=True, stackable=True),
      Field("optim.g_ema_decay", "real", "decay of the moving average of G's weights that "
            "samples use (Yazıcı et al. 2019); 0 = G's own weights", 0, 1, high_open=True,
            stackable=True),
      Field("model.spectral_norm", "bool", "spectral normalisation of every D layer (Miyato "
            "et al. 2018)"),
      Field("model.d_conditioning", "choice", "how D sees class and style: concat (one-hot "
            "joined to the input) or projection (Miyato & Koyama 2018)",
            choices=cgan.CONDITIONINGS))}
  eval_metrics = ("d_loss", "g_loss", "d_real", "d_fake")
  optimizer_names = {"generator": "g_learning_rate", "discriminator": "d_learning_rate"}
  log_metrics = ("d_loss", "g_loss")

  @classmethod
  def has_convolutions(cls, model) -> bool:
    """The ``dcgan`` generator and discriminator; the MLP ones have none."""
    return model.get("architecture") == "dcgan"

  @classmethod
  def validate_config(cls, config, info) -> None:
    """The rule no row states: ``'dcgan'`` needs an image height and width divisible by 4.

    Raises:
      ConfigError: a bad value.
    """
    if cls.has_convolutions(config.model):
      base.check_conv_image_shape(config, info)

  def __init__(self, config, info, num_train_examples):
    super().__init__(config, info, num_train_examples)
    m = config.model
    conv_impl = m.get("conv_impl", "auto")
    self.generator = cgan.Generator(info.num_classes, m.architecture, m.output, m.hidden,
                                    tuple(m.channels), conv_impl, self.image_shape)
    self.discriminator = cgan.Discriminator(info.num_classes, m.architecture, m.hidden,
                                            tuple(m.channels), conv_impl,
                                            bool(m.get("spectral_norm", False)),
                                            m.get("d_conditioning", "concat"))
    self.loss = config.objective.loss
    self.d_steps = config.objective.d_steps
    self.train_metrics = self.eval_metrics + (("gp",) if self.loss == "wgan_gp" else ())

  def learning_rates(self) -> tuple[float, float]:
    """(generator, discriminator) learning rates; each defaults to ``optim.learning_rate``."""
    o = self.config.optim
    lr = o.learning_rate
    return (lr if o.g_learning_rate is None else o.g_learning_rate,
            lr if o.d_learning_rate is None else o.d_learning_rate)

  def init_state(self, key: jax.Array, *, g_learning_rate: float | jax.Array | None = None,
                 d_learning_rate: float | jax.Array | None = None) -> GANState:
    """Both networks from ``key``, two Adam states (``optim.b1``, ``optim.b2``), step 0.

    Learning rates default to ``learning_rates()``; pass arrays to ``vmap`` a sweep.
    """
    g_key, d_key = jax.random.split(key)
    zeros = jnp.zeros((1,), jnp.int32)
    g_params = self.generator.init(g_key, jnp.zeros((1, self.latent_dim())), zeros, zeros)
    d_params = self.discriminator.init(d_key, jnp.zeros((1, *self.image_shape)), zeros, zeros)
    g_lr, d_lr = self.learning_rates()
    o = self.config.optim

    def make(apply_fn, variables, lr):
      tx = optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=o.b1, b2=o.b2)
      return train_state.TrainState.create(apply_fn=apply_fn, params=variables["params"], tx=tx)

    return GANState(
        step=jnp.zeros((), jnp.int32),
        generator=make(self.generator.apply, g_params,
                       g_lr if g_learning_rate is None else g_learning_rate),
        discriminator=make(self.discriminator.apply, d_params,
                           d_lr if d_learning_rate is None else d_learning_rate),
        g_ema=g_params["params"],
        hparams={"label_smoothing": jnp.asarray(self.config.objective.label_smoothing, jnp.float32),
                 "gp_weight": jnp.asarray(self.config.objective.gp_weight, jnp.float32),
                 "g_ema_decay": jnp.asarray(o.get("g_ema_decay", 0.0), jnp.float32)})

  def _generate(self, g_params, z, labels, styles):
    return self.generator.apply({"params": g_params}, z, labels, styles)

  def _d_scores(self, d_params, real, fake, labels, styles):
    """One D pass over real and fake together (D has no batch statistics): ``[B]``, ``[B]``."""
    both = self.discriminator.apply({"params": d_params}, jnp.concatenate([real, fake]),
                                    jnp.concatenate([labels, labels]),
                                    jnp.concatenate([styles, styles]))
    return both[:real.shape[0]], both[real.shape[0]:]

  def _summaries(self, real_logits, fake_logits):
    squash = jax.nn.sigmoid if self.loss == "bce" else (lambda v: v)
    return squash(real_logits), squash(fake_logits)

  def train_step(self, state: GANState, batch: base.Batch, key: jax.Array
                 ) -> tuple[GANState, dict[str, jax.Array]]:
    """``d_steps`` D updates, then one G update (non-saturating, hinge or WGAN loss).

    Args:
      state: ``GANState``.
      batch: ``{'images': uint8 [B, H, W, 1], 'labels': int32 [B], 'styles': int32 [B]}``.
      key: the step's PRNG key (noise for G, and ε of the gradient penalty).

    Returns:
      The new state and batch means: ``d_loss`` (the last D update's loss before it, with
      ``gp_weight · gp`` for WGAN-GP), ``g_loss``, ``d_real`` and ``d_fake`` (mean D output
      on real and generated images: a probability for BCE, the raw score otherwise), and
      ``gp`` for WGAN-GP.
    """
    labels, styles = batch["labels"], batch["styles"]
    real = cgan.to_output_range(base.to_unit_interval(batch["images"]), self.config.model.output)
    n = real.shape[0]
    g_params = state.generator.params
    d_state = state.discriminator
    smoothing, gp_weight = state.hparams["label_smoothing"], state.hparams["gp_weight"]

    for i in range(self.d_steps):  # a static, small count: unrolled
      z_key, gp_key = jax.random.split(jax.random.fold_in(key, i))
      z = jax.random.normal(z_key, (n, self.latent_dim()))
      fake = jax.lax.stop_gradient(self._generate(g_params, z, labels, styles))

      def d_loss_fn(d_params):
        real_logits, fake_logits = self._d_scores(d_params, real, fake, labels, styles)
        loss = objectives.gan_d_loss(real_logits, fake_logits, self.loss, smoothing).mean()
        d_real, d_fake = self._summaries(real_logits, fake_logits)
        aux = {"d_real": d_real.mean(), "d_fake": d_fake.mean()}
        if self.loss == "wgan_gp":
          def critic(x):
            return self.discriminator.apply({"params": d_params}, x, labels, styles)
          aux["gp"] = objectives.gradient_penalty(critic, real, fake, gp_key)
          loss = loss + gp_weight * aux["gp"]
        return loss, aux

      (d_loss, aux), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_state.params)
      d_state = d_state.apply_gradients(grads=d_grads)

    def g_loss_fn(params):
      fake_logits = self.discriminator.apply({"params": d_state.params},
                                             self._generate(params, z, labels, styles),
                                             labels, styles)
      return objectives.gan_g_loss(fake_logits, self.loss).mean()

    g_loss, g_grads = jax.value_and_grad(g_loss_fn)(g_params)
    generator = state.generator.apply_gradients(grads=g_grads)
    decay = state.hparams["g_ema_decay"]  # 0: exactly G's params (0 · ema + 1 · p)
    g_ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.g_ema,
                         generator.params)
    new_state = state.replace(step=state.step + 1, discriminator=d_state, generator=generator,
                              g_ema=g_ema)
    return new_state, {"d_loss": d_loss, "g_loss": g_loss, **aux}

  def eval_sums(self, state, batch, mask, key):
    """Sums over unmasked eval images of the per-pair ``d_loss`` (no smoothing, no penalty),
    ``g_loss``, ``d_real`` and ``d_fake``, for generated images with the batch's labels."""
    labels, styles = batch["labels"], batch["styles"]
    real = cgan.to_output_range(base.to_unit_interval(batch["images"]), self.config.model.output)
    z = jax.random.normal(key, (real.shape[0], self.latent_dim()))
    fake = self._generate(state.generator.params, z, labels, styles)
    real_logits, fake_logits = self._d_scores(state.discriminator.params, real, fake, labels,
                                              styles)
    d_real, d_fake = self._summaries(real_logits, fake_logits)
    per_example = {"d_loss": objectives.gan_d_loss(real_logits, fake_logits, self.loss),
                   "g_loss": objectives.gan_g_loss(fake_logits, self.loss),
                   "d_real": d_real, "d_fake": d_fake}
    sums = {k: jnp.sum(jnp.where(mask, v, 0.0)) for k, v in per_example.items()}
    sums["count"] = mask.sum().astype(jnp.float32)
    return sums

  def sample(self, state: Any, z, labels, styles):
    """Images in [0, 1] from G's moving average (``GANState.g_ema``)."""
    return cgan.to_unit_range(self._generate(state.g_ema, z, labels, styles),
                              self.config.model.output)

  def describe(self):
    c = self.config
    return (f"CGAN ({c.model.architecture}, {c.model.output}, {c.objective.loss}) on "
            f"{c.data.name} {c.data.train_split}, latent_dim={c.model.latent_dim}, seed={c.seed}")

  def hyperparameters(self):
    c = self.config
    g_lr, d_lr = self.learning_rates()
    lr = f"{g_lr:g}" if g_lr == d_lr else f"G {g_lr:g} / D {d_lr:g}"
    extra = f", D steps {self.d_steps}" if self.d_steps > 1 else ""
    if self.loss == "bce" and c.objective.label_smoothing:
      extra += f", label smoothing {c.objective.label_smoothing:g}"
    if c.optim.get("g_ema_decay", 0.0):
      extra += f", G EMA {c.optim.g_ema_decay:g}"
    if c.model.get("spectral_norm", False):
      extra += ", spectral norm in D"
    if c.model.get("d_conditioning", "concat") != "concat":
      extra += f", {c.model.d_conditioning} D"
    return (f"Learning Rate: {lr}, Latent Dim: {c.model.latent_dim}, Batch Size: "
            f"{c.train.batch_size}, Total Epochs: {c.train.num_epochs}{extra}")

  def loss_panels(self):
    return (("d_loss", "g_loss"), ("d_real", "d_fake"))
