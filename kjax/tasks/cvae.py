"""The conditional VAE as a training task: the β-VAE family's objectives
(``kjax.tasks.vae``) with networks that also see the class and the thick/thin style.

The CVAE of Shyam (2024), "Conditional Generation with VAE and GAN" (Sohn et al. 2015's
model, with labels), and variants (``kjax.models.cvae``).
"""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from kjax import config_fields
from kjax import figures
from kjax.models import cvae
from kjax.tasks import base
from kjax.tasks.vae import VAE_FIELDS, BetaVAETask, validate_vae_objective


class CVAETask(BetaVAETask):
  """Conditional VAE (``kjax.models.cvae.ConditionalVAE``), as in Shyam (2024), §4.2."""

  name = "cvae"
  conditional = True
  fields = {**VAE_FIELDS, **base.FIGURE_FIELDS, **config_fields.rows(
      config_fields.Field("model.architecture", "choice", "mlp (Shyam 2024), mlp_bn (its "
                          "Architecture 3) or conv (the β-VAE's trunk with label planes)",
                          choices=cvae.ARCHITECTURES))}

  @classmethod
  def has_convolutions(cls, model) -> bool:
    """``architecture='conv'``; the ``mlp`` and ``mlp_bn`` CVAEs have none."""
    return model.get("architecture") == "conv"

  @classmethod
  def vmaps_well_on_cpu(cls, model) -> bool:
    """The MLP CVAEs: 8 runs vmapped ran 1.11-1.24x the runs one after another here."""
    return model.get("architecture", "") in ("mlp", "mlp_bn")

  @classmethod
  def validate_config(cls, config, info) -> None:
    """The rules no row states: the objective's (``validate_vae_objective``); ``'conv'``:
    an image height and width divisible by 4.

    Raises:
      ConfigError: the first bad value.
    """
    validate_vae_objective(config)
    if cls.has_convolutions(config.model):
      base.check_conv_image_shape(config, info)

  def create_model(self) -> nn.Module:
    m = self.config.model
    return cvae.ConditionalVAE(num_classes=self.info.num_classes, latent_dim=m.latent_dim,
                               architecture=m.architecture, hidden=m.hidden,
                               channels=tuple(m.channels),
                               conv_impl=m.get("conv_impl", "auto"),
                               image_shape=self.image_shape)

  def _init_variables(self, key):
    params_key, latent_key = jax.random.split(key)
    zeros = jnp.zeros((1,), jnp.int32)
    return self.model.init({"params": params_key, "latent": latent_key},
                           jnp.zeros((1, *self.image_shape), jnp.float32), zeros, zeros)

  def _variables(self, params, batch_stats):
    return {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}

  def _forward(self, params, batch_stats, x, batch, key, train):
    variables = self._variables(params, batch_stats)
    args = (x, batch["labels"], batch["styles"], train)
    if train and batch_stats:  # batch norm: batch statistics, running averages updated
      outputs, updates = self.model.apply(variables, *args, rngs={"latent": key},
                                          mutable=["batch_stats"])
      return outputs, updates["batch_stats"]
    return self.model.apply(variables, *args, rngs={"latent": key}), batch_stats

  def posterior(self, state, x, labels, styles):
    return self.model.apply(self._variables(state.params, state.batch_stats), x, labels,
                            styles, method=cvae.ConditionalVAE.encode)

  def decode_logits(self, state, z, labels, styles):
    return self.model.apply(self._variables(state.params, state.batch_stats), z, labels,
                            styles, method=cvae.ConditionalVAE.decode)

  def describe(self):
    c = self.config
    return (f"CVAE ({c.model.architecture}) on {c.data.name} {c.data.train_split}, "
            f"{self.objective_caption()}, latent_dim={c.model.latent_dim}, seed={c.seed}")

  def figure_inputs(self, train_ds, eval_ds, key):
    """``base.Task.figure_inputs`` and the eval split (its first images reconstructed)."""
    return {**base.Task.figure_inputs(self, train_ds, eval_ds, key), "eval": eval_ds}

  def previews(self, state, fixed):
    return {**base.Task.previews(self, state, fixed),
            "reconstructions": self._reconstruction_tile(state, fixed)}

  def final_figures(self, state, fixed, history, fig_dir, train_ds, eval_ds):
    paths = base.Task.final_figures(self, state, fixed, history, fig_dir, train_ds, eval_ds)
    n = 16
    x, recon = self._reconstruct(state, fixed, n)
    row = lambda a: [f"{eval_ds.info.label(int(k))}" for k in a]  # noqa: E731
    paths.append(figures.plot_image_grid(
        os.path.join(fig_dir, "reconstructions.png"),
        np.concatenate([np.asarray(x), np.asarray(recon)]), n,
        f"Eval images (top) and reconstructions from z_mean and their labels (bottom)\n"
        f"classes: {' '.join(row(eval_ds.labels[:n]))}\n{self.describe()}",
        row_labels=["original", "reconstruction"]))
    xs = base.to_unit_interval(jnp.asarray(eval_ds.images))
    z_mean = np.concatenate([
        np.asarray(self.jit_encode(state, xs[i:i + 1000], jnp.asarray(eval_ds.labels[i:i + 1000]),
                                jnp.asarray(eval_ds.styles[i:i + 1000])))
        for i in range(0, len(xs), 1000)])
    paths.append(figures.plot_latent_manifold(
        os.path.join(fig_dir, "latent_manifold.png"), z_mean, eval_ds.labels, eval_ds.info,
        f"Eval-set z_mean by class ({len(xs)} images): the labels carry the class, so z "
        f"need not\n{self.describe()}"))
    return paths
