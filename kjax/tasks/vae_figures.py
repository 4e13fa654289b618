"""The β-VAE's previews and figures (host side), shared by ``BetaVAETask`` and
``CVAETask`` (``kjax.tasks.vae``, ``kjax.tasks.cvae``).

Images are the data set's ``[N, H, W, 1]`` (``DatasetInfo.image_shape``); the figures take
their size from the arrays they draw.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from kjax import figures
from kjax.tasks import base


class VAEFigures:
  """Mixin of a VAE task (``encode``, ``sample``, ``latent_dim``, ``describe``, ``config``):
  the fixed inputs of its previews, the previews after each epoch and the final figures
  (``figures.make_vae_figures``)."""

  @functools.cached_property
  def jit_encode(self):
    """``jax.jit(self.encode)``, compiled once per shape for the figures."""
    return jax.jit(self.encode)

  def figure_inputs(self, train_ds, eval_ds, key):
    """The eval split (its first images are reconstructed), 64 prior draws ``prior_z``
    float32 ``[64, latent_dim]`` from ``key`` and the previews' latents ``preview_z`` in
    ``preview_cols`` columns: for a 2-D latent the decoded latent grid, else the prior
    draws."""
    prior_z = jax.random.normal(key, (64, self.latent_dim()))
    fixed = {"eval": eval_ds, "prior_z": prior_z, "preview_z": prior_z, "preview_cols": 8}
    # 2-D: the decoded latent grid, as in the GIF of the "Variational Autoencoder" post (2023).
    if self.latent_dim() == 2:
      coords = figures.normal_quantile_grid(self.config.figures.grid_size)
      fixed["preview_z"] = np.stack(np.meshgrid(coords, coords[::-1]), -1).reshape(-1, 2)
      fixed["preview_cols"] = len(coords)
    return fixed

  def _reconstruction_tile(self, state, fixed) -> np.ndarray:
    """uint8 tile: the first 16 eval images (top row) over their reconstructions."""
    x, recon = self._reconstruct(state, fixed, 16)
    return figures.tile(np.concatenate([np.asarray(x), np.asarray(recon)]), 16)

  def _reconstruct(self, state, fixed, n):
    """``(x, reconstruction)``: the first ``n`` eval images float ``[n, H, W, 1]`` in [0, 1]
    and their decoder means from ``z_mean``, the same shape."""
    if ("reconstructed", n) not in fixed:  # on the device once, not every epoch
      ev = fixed["eval"]
      fixed["reconstructed", n] = (base.to_unit_interval(jnp.asarray(ev.images[:n])),
                                   jnp.asarray(ev.labels[:n]), jnp.asarray(ev.styles[:n]))
    x, labels, styles = fixed["reconstructed", n]
    return x, self.jit_sample(state, self.jit_encode(state, x, labels, styles), labels, styles)

  def previews(self, state, fixed):
    """``reconstructions``: the first 16 eval images over their reconstructions;
    ``samples``: the fixed latent grid (2-D latent) or 64 fixed prior draws, decoded."""
    zeros = jnp.zeros((len(fixed["preview_z"]),), jnp.int32)
    samples = self.jit_sample(state, jnp.asarray(fixed["preview_z"], jnp.float32), zeros, zeros)
    return {"reconstructions": self._reconstruction_tile(state, fixed),
            "samples": figures.tile(np.asarray(samples), fixed["preview_cols"])}

  def final_figures(self, state, fixed, history, fig_dir, train_ds, eval_ds):
    """``figures.make_vae_figures`` of the trained model; returns the paths written."""
    return figures.make_vae_figures(
        fig_dir, encode=lambda x: np.asarray(self.jit_encode(state, x, None, None)),
        decode=lambda z: np.asarray(self.jit_sample(state, z, None, None)),
        eval_images=eval_ds.images, eval_labels=eval_ds.labels, info=eval_ds.info,
        latent_dim=self.latent_dim(), history=history, prior_z=np.asarray(fixed["prior_z"]),
        config=self.config, caption=self.describe())
