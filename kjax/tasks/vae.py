"""The β-VAE as a training task, and what it shares with the conditional VAE
(``kjax.tasks.cvae``).

Both minimise ``rec + β · kl`` by default (Higgins et al. 2017, Eq. 4; β = 1 is the ELBO of
Kingma & Welling 2014 and, with labels, of the CVAE of Sohn et al. 2015), or another member
of the β-VAE family chosen by ``config.objective.name`` (``kjax.objectives.VAE_OBJECTIVES``):
``beta_tc_vae`` (Chen et al. 2018) or ``annealed_vae`` (Burgess et al. 2018). They differ
only in what the networks see: the CVAE's encoder and decoder also get the class and
thick/thin style.

The β-VAE is that of Islam's "Beyond Pixels" β-VAE tutorial, of the "Variational
Autoencoder" project post (2023) and of Ahmed (2025), "Generative AI Theory & Applications
Report 1: Variational Autoencoders"; the CVAE is that of Shyam (2024), "Conditional
Generation with VAE and GAN".
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from kjax import config_checks as checks
from kjax import config_fields
from kjax import errors
from kjax import metrics
from kjax import objectives
from kjax.models import vae
from kjax.tasks import base
from kjax.tasks import vae_figures

METRICS = ("loss", "rec", "kl", "nelbo")
# Metrics beyond METRICS, per config.objective.name.
EXTRA_METRICS = {"beta_vae": (), "beta_tc_vae": ("tc",), "annealed_vae": ("capacity",)}
# Defaults of the objective's fields, for configs (config.json files) written before them.
OBJECTIVE_DEFAULTS = {"name": "beta_vae", "kl_warmup_steps": 0, "gamma": 1000.0,
                      "c_max": 25.0, "c_steps": 10000}
TC_KEY = 7  # fold_in(step key, TC_KEY): the z sample of the TC estimate


def iwae_schedule(learning_rate, steps_per_epoch: int, stages: int = 8):
  """The IWAE paper's learning rate (Burda et al. 2015, §5): stage i = 0..7 lasts 3^i
  epochs at ``learning_rate · 10^(−i/7)`` (3,280 epochs in all), then stays at the last.

  Args:
    learning_rate: float or float array (a sweep's per-run rate); steps_per_epoch ≥ 0.

  Returns:
    ``count → rate``, an optax schedule (piecewise constant in steps).
  """
  # NumPy constants: the schedule is built inside the compiled init_state (Task.fresh_state)
  # and kept in the optimiser; a JAX array made there would be a leaked tracer.
  boundaries = np.asarray([steps_per_epoch * (3 ** (i + 1) - 1) // 2 for i in range(stages - 1)])
  factors = np.asarray([10.0 ** (-i / 7) for i in range(stages)], np.float32)
  return lambda count: learning_rate * jnp.asarray(factors)[jnp.sum(count >= boundaries)]


Field = config_fields.Field

# The rows of the β-VAE family's objective (the β-VAE and the CVAE); configs written before
# a field existed lack it and get the β-VAE's behaviour.
VAE_FIELDS = config_fields.rows(
    Field("model.latent_dim", "int", "dimension of z", 1),
    Field("objective.name", "choice", "the β-VAE family's objective (Higgins et al. 2017; "
          "Chen et al. 2018; Burgess et al. 2018)", choices=objectives.VAE_OBJECTIVES),
    Field("objective.beta", "real", "weight of the KL term (Higgins et al. 2017, Eq. 4); of "
          "the TC term for beta_tc_vae", 0, stackable=True),
    Field("objective.likelihood", "choice", "p(x | z): bernoulli (BCE on grey levels in "
          "[0, 1]) or gaussian (σ² = gaussian_variance)", choices=objectives.LIKELIHOODS),
    Field("objective.gaussian_variance", "real", "σ² of the gaussian likelihood", 0,
          low_open=True),
    Field("objective.gamma", "real", "annealed_vae: γ", 0, stackable=True),
    Field("objective.c_max", "real", "annealed_vae: the final capacity (nats)", 0,
          stackable=True),
    Field("objective.c_steps", "int", "annealed_vae: steps to reach c_max", 1,
          stackable=True),
    Field("objective.kl_warmup_steps", "int", "linear KL warm-up over N steps; 0 = none", 0),
)


def validate_vae_objective(config) -> None:
  """The rule of ``config.objective`` (``beta_vae`` / ``cvae``) that no row states: no KL
  warm-up with ``annealed_vae``.

  Raises:
    ConfigError: a bad value.
  """
  objective = config.objective
  if "kl_warmup_steps" in objective:
    checks.check(objective.kl_warmup_steps == 0 or objective.get("name") != "annealed_vae",
           "objective.kl_warmup_steps", objective.kl_warmup_steps,
           "expected 0 with objective.name='annealed_vae' (its capacity schedule is the "
           "warm-up)")


class BetaVAETask(vae_figures.VAEFigures, base.Task):
  """β-VAE with the Keras-example conv networks (``kjax.models.vae.BetaVAE``), on images of
  the data set's ``info.image_shape``.

  Attributes:
    objective: ``config.objective.name``, one of ``objectives.VAE_OBJECTIVES``.
    num_train_examples: N, the size of the train split, which the ``beta_tc_vae``
      objective's TC estimate and the ``iwae`` schedule need (``base.Task``).
  """

  name = "beta_vae"
  conditional = False
  train_metrics = eval_metrics = METRICS
  fields = {**VAE_FIELDS, **base.PREVIEW_FIELDS, **config_fields.rows(
      Field("model.architecture", "choice", "conv (the Keras example's networks) or mlp "
            "(tanh MLPs of mlp_widths: the IWAE paper's)", choices=vae.ARCHITECTURES),
      Field("model.mlp_widths", "ints", "hidden widths of the mlp architecture"),
      Field("model.upsample", "choice", "the conv decoder's upsampling (the same function "
            "and parameters)", choices=vae.UPSAMPLE_METHODS),
      Field("optim.schedule", "choice", "constant, or iwae: the IWAE paper's 3^i epochs at "
            "0.001 · 10^(-i/7)", choices=("constant", "iwae")),
      Field("optim.eps", "real", "Adam's ε", 0, low_open=True),
      config_fields.logistic("figures.grid_size", "int", "rows and columns of the decoded "
                             "latent grid (2-D latent)", low=2),
      config_fields.logistic("figures.interpolation_steps", "int", "images along an "
                             "interpolation", low=2))}
  has_encoder = True

  @classmethod
  def has_convolutions(cls, model) -> bool:
    """The conv encoder/decoder (``architecture='conv'``, the default), not the MLP."""
    return model.get("architecture", "conv") == "conv"

  @classmethod
  def validate_config(cls, config, info) -> None:
    """The rules no row states: the objective's (``validate_vae_objective``), the conv
    networks' image height and width divisible by 4 (``base.check_conv_image_shape``).

    Raises:
      ConfigError: the first bad value.
    """
    validate_vae_objective(config)
    if cls.has_convolutions(config.model):
      base.check_conv_image_shape(config, info)
  log_metrics = ("loss",)

  def __init__(self, config, info, num_train_examples):
    super().__init__(config, info, num_train_examples)
    self.model = self.create_model()
    self.likelihood = config.objective.likelihood
    self.gaussian_variance = config.objective.gaussian_variance
    self.objective = self._objective_field("name")
    if self.objective not in objectives.VAE_OBJECTIVES:
      raise errors.ConfigError(f"config.objective.name={self.objective!r} is not allowed: "
                               f"expected one of {objectives.VAE_OBJECTIVES}")
    self.train_metrics = METRICS + EXTRA_METRICS[self.objective]
    self.eval_metrics = self.train_metrics
    # An IWAE bound in every epoch's evaluation (a smaller k than the final report's).
    evaluation = config.get("eval", {})
    self.epoch_iwae_samples = evaluation.get("epoch_iwae_samples", 0)
    self.iwae_chunk_size = evaluation.get("iwae_chunk_size", 100)
    if self.epoch_iwae_samples:
      self.eval_metrics = self.train_metrics + ("iwae_nll",)

  def _objective_field(self, name):
    return self.config.objective.get(name, OBJECTIVE_DEFAULTS[name])

  def create_model(self) -> nn.Module:
    m = self.config.model
    return vae.BetaVAE(latent_dim=m.latent_dim, channels=tuple(m.channels), hidden=m.hidden,
                       upsample=m.upsample, conv_impl=m.get("conv_impl", "auto"),
                       architecture=m.get("architecture", "conv"),
                       mlp_widths=tuple(m.get("mlp_widths", (200, 200))),
                       image_shape=self.image_shape)

  # The model's three calls; the CVAE overrides them to pass the labels.
  def _init_variables(self, key: jax.Array) -> dict:
    params_key, latent_key = jax.random.split(key)
    return self.model.init({"params": params_key, "latent": latent_key},
                           jnp.zeros((1, *self.image_shape), jnp.float32))

  def _forward(self, params, batch_stats, x, batch, key, train):
    """→ ``((logits, z_mean, z_logvar), new batch_stats)``."""
    del batch, train
    return self.model.apply({"params": params}, x, rngs={"latent": key}), batch_stats

  def encode(self, state, x: jax.Array, labels: jax.Array, styles: jax.Array) -> jax.Array:
    """float ``[B, H, W, 1]`` in [0, 1] (+ labels for the CVAE) → ``z_mean`` ``[B, latent_dim]``."""
    return self.posterior(state, x, labels, styles)[0]

  def posterior(self, state, x, labels, styles):
    """float ``[B, H, W, 1]`` in [0, 1] → ``(z_mean, z_logvar)`` of q(z | x), ``[B, latent_dim]``."""
    del labels, styles
    return self.model.apply({"params": state.params}, x, method=vae.BetaVAE.encode)

  def decode_logits(self, state, z, labels, styles):
    """float ``[B, latent_dim]`` → decoder logits float ``[B, H, W, 1]``."""
    del labels, styles
    return self.model.apply({"params": state.params}, z, method=vae.BetaVAE.decode)

  def sample(self, state, z, labels, styles):
    return jax.nn.sigmoid(self.decode_logits(state, z, labels, styles))

  def log_likelihood_bound(self, state, batch, key, num_samples: int,
                           chunk_size: int = 100) -> jax.Array:
    """The IWAE bound on log p(x) (log p(x | class, style) for the CVAE) with k =
    ``num_samples`` (Burda et al. 2015, Eq. 8; ``kjax.metrics.iwae_log_likelihood``).

    Args:
      batch: ``{'images': uint8 [B, H, W, 1], 'labels', 'styles': int32 [B]}``; the
        likelihood is the run's (Bernoulli on grey levels in [0, 1], or Gaussian).
      key: PRNG key of the k samples.

    Returns:
      float ``[B]`` in nats; ``−mean`` is the IWAE NLL of the batch.
    """
    x = base.to_unit_interval(batch["images"])
    labels, styles = batch["labels"], batch["styles"]
    z_mean, z_logvar = self.posterior(state, x, labels, styles)

    def log_px_given_z(z):  # [S, B, D] → [S, B]
      s, b, d = z.shape
      tile = lambda a: None if a is None else jnp.tile(a, s)  # noqa: E731
      logits = self.decode_logits(state, z.reshape(s * b, d), tile(labels), tile(styles))
      return -objectives.reconstruction_nll(logits.reshape(s, b, *x.shape[1:]), x[None],
                                            self.likelihood, self.gaussian_variance)

    return metrics.iwae_log_likelihood(z_mean, z_logvar, log_px_given_z, key, num_samples,
                                       chunk_size)

  # --- pure functions -----------------------------------------------------------------

  def objective_hparams(self, *, beta=None, gamma=None, c_max=None, c_steps=None,
              kl_warmup_steps=None) -> dict[str, jax.Array]:
    """The objective's per-run hyper-parameters, float32 ``[]`` each (``state.hparams``).

    Always ``beta``; ``gamma``, ``c_max``, ``c_steps`` for ``annealed_vae`` (which does not
    use ``beta``); ``kl_warmup_steps`` for ``beta_vae`` / ``beta_tc_vae`` when
    ``config.objective.kl_warmup_steps`` > 0 or it is passed here (pass it, 0 included,
    to stack runs with and without warm-up). So the default β-VAE keeps exactly
    ``{'beta'}``, and its checkpoints and trajectory are those of before the family.
    Arguments left ``None`` come from ``config.objective``; arrays are fine (``vmap``).

    Raises:
      ValueError: an argument the objective does not use.
    """
    annealed = self.objective == "annealed_vae"
    unused = ([k for k, v in (("gamma", gamma), ("c_max", c_max), ("c_steps", c_steps))
               if v is not None and not annealed]
              + (["kl_warmup_steps"] if kl_warmup_steps is not None and annealed else []))
    if unused:
      raise ValueError(f"{', '.join(unused)} not used by config.objective.name="
                       f"{self.objective!r}")
    field = self._objective_field
    values = {"beta": self.config.objective.beta if beta is None else beta}
    if annealed:
      values.update(gamma=field("gamma") if gamma is None else gamma,
                    c_max=field("c_max") if c_max is None else c_max,
                    c_steps=field("c_steps") if c_steps is None else c_steps)
    elif kl_warmup_steps is not None or field("kl_warmup_steps"):
      values["kl_warmup_steps"] = (field("kl_warmup_steps") if kl_warmup_steps is None
                                   else kl_warmup_steps)
    return {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}

  def init_state(self, key: jax.Array, *, beta: float | jax.Array | None = None,
                 learning_rate: float | jax.Array | None = None,
                 **overrides) -> base.TrainState:
    """Parameters from ``key``, Adam's state, step 0.

    ``beta`` and ``learning_rate`` default to ``config.objective.beta`` and
    ``config.optim.learning_rate``; ``overrides`` (``gamma``, ``c_max``, ``c_steps``,
    ``kl_warmup_steps``: see ``objective_hparams``) to ``config.objective``. Pass arrays
    to ``vmap`` over a sweep, e.g.
    ``jax.vmap(lambda k, b: task.init_state(k, beta=b))(keys, betas)``.

    Raises:
      ValueError: a hyper-parameter the objective does not use.
    """
    hparams = self.objective_hparams(beta=beta, **overrides)
    variables = self._init_variables(key)
    lr = self.config.optim.learning_rate if learning_rate is None else learning_rate
    optim = self.config.optim
    if optim.get("schedule", "constant") == "iwae":
      lr = iwae_schedule(lr, (self.num_train_examples or 0) // self.config.train.batch_size)
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=lr, eps=optim.get("eps", 1e-8))
    return base.TrainState.create(
        apply_fn=self.model.apply, params=variables["params"], tx=tx, hparams=hparams,
        batch_stats=variables.get("batch_stats", {}))

  def _terms(self, outputs, x, state, key, train, mask=None):
    """Per-example terms of ``config.objective.name`` (``objectives.*_terms``), float ``[B]``.

    The step index is ``state.step`` (updates made before this one). The KL warm-up weight
    applies in training only: evaluation reports the objective at full weight, so that eval
    losses are comparable across the warm-up and with runs without it. The annealed
    capacity C is the one reached at ``state.step`` in both.
    """
    logits, z_mean, z_logvar = outputs
    hp = state.hparams
    if self.objective == "annealed_vae":
      capacity = objectives.annealed_capacity(state.step, hp["c_max"], hp["c_steps"])
      return objectives.annealed_vae_terms(logits, x, z_mean, z_logvar, hp["gamma"], capacity,
                                           self.likelihood, self.gaussian_variance)
    weight = (objectives.linear_warmup(state.step, hp["kl_warmup_steps"])
              if train and "kl_warmup_steps" in hp else None)
    if self.objective == "beta_tc_vae":
      if self.num_train_examples is None:
        raise ValueError("BetaVAETask.num_train_examples is None: the beta_tc_vae objective "
                         "needs the train split size; set it before tracing the step")
      noise = jax.random.normal(jax.random.fold_in(key, TC_KEY), z_mean.shape, z_mean.dtype)
      z = z_mean + jnp.exp(0.5 * z_logvar) * noise
      return objectives.beta_tc_vae_terms(
          logits, x, z_mean, z_logvar, z, hp["beta"], self.num_train_examples,
          self.likelihood, self.gaussian_variance, 1.0 if weight is None else weight, mask)
    beta = hp["beta"] if weight is None else hp["beta"] * weight
    return objectives.beta_vae_terms(logits, x, z_mean, z_logvar, beta, self.likelihood,
                                     self.gaussian_variance)

  def train_step(self, state, batch, key):
    """One Adam step on the batch-mean loss of ``config.objective.name``.

    Args:
      state: ``TrainState`` (params, Adam state, ``hparams``, batch stats).
      batch: ``{'images': uint8 [B, H, W, 1], 'labels': int32 [B], 'styles': int32 [B]}``.
      key: the step's PRNG key (reparameterisation noise).

    Returns:
      The new state and the batch means of ``train_metrics``: ``{'loss', 'rec', 'kl',
      'nelbo'}`` (nats per image), plus ``'tc'`` (``beta_tc_vae``) or ``'capacity'``
      (``annealed_vae``).
    """
    x = base.to_unit_interval(batch["images"])

    def loss_fn(params):
      outputs, batch_stats = self._forward(params, state.batch_stats, x, batch, key, True)
      means = {k: v.mean() for k, v in self._terms(outputs, x, state, key, True).items()}
      return means["loss"], (means, batch_stats)

    grads, (metrics, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads).replace(batch_stats=batch_stats), metrics

  def eval_sums(self, state, batch, mask, key):
    """Sums of the per-example ``loss``, ``rec``, ``kl``, ``nelbo`` (nats) and ``tc`` or
    ``capacity`` (``_terms``, at full KL weight) over unmasked rows; with
    ``config.eval.epoch_iwae_samples`` = k > 0 also ``iwae_nll``, the IWAE bound on
    −log p(x) with k samples. The TC estimate uses the unmasked rows of the batch only, so
    it depends on ``config.train.eval_batch_size`` (M)."""
    x = base.to_unit_interval(batch["images"])
    outputs, _ = self._forward(state.params, state.batch_stats, x, batch, key, False)
    sums = {k: jnp.sum(jnp.where(mask, v, 0.0))
            for k, v in self._terms(outputs, x, state, key, False, mask).items()}
    if self.epoch_iwae_samples:
      bound = self.log_likelihood_bound(state, batch, jax.random.fold_in(key, 1),
                                        self.epoch_iwae_samples, self.iwae_chunk_size)
      sums["iwae_nll"] = -jnp.sum(jnp.where(mask, bound, 0.0))
    sums["count"] = mask.sum().astype(jnp.float32)
    return sums

  # --- captions (the previews and figures: vae_figures.VAEFigures) -------------------

  def objective_caption(self) -> str:
    """``β=4`` for the β-VAE; with the objective's name and weights otherwise."""
    field = self._objective_field
    if self.objective == "annealed_vae":
      return (f"annealed VAE γ={field('gamma'):g}, C_max={field('c_max'):g} nats over "
              f"{field('c_steps')} steps")
    caption = f"β={self.config.objective.beta:g}"
    if self.objective == "beta_tc_vae":
      caption = f"β-TCVAE {caption}"
    if field("kl_warmup_steps"):
      caption += f", KL warm-up {field('kl_warmup_steps')} steps"
    return caption

  def describe(self):
    c = self.config
    return (f"{c.data.name} {c.data.train_split}, {self.objective_caption()}, "
            f"latent_dim={c.model.latent_dim}, {c.objective.likelihood}, seed={c.seed}")

  def loss_panels(self):
    return (("loss", "nelbo", "iwae_nll"), ("rec",), ("kl",) + EXTRA_METRICS[self.objective])
