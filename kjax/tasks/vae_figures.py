"""The β-VAE's previews and figures (host side), shared by ``BetaVAETask`` and
``CVAETask`` (``kjax.tasks.vae``, ``kjax.tasks.cvae``).

Images are the data set's ``[N, H, W, 1]`` (``DatasetInfo.image_shape``); the figures take
their size from the arrays they draw.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from kjax import figures
from kjax.tasks import base


class VAEFigures:
  """Mixin of a VAE task (``encode``, ``sample``, ``latent_dim``, ``describe``, ``config``):
  the fixed inputs of its previews, the previews after each epoch and the final figures
  (``figures.make_vae_figures``)."""

  def start_figures(self, train_ds, eval_ds, key):
    """Fixes the eval images to reconstruct, 64 prior draws (``key``) and, for a 2-D latent,
    the decoded latent grid of the previews."""
    self._eval = eval_ds
    self._prior_z = jax.random.normal(key, (64, self.latent_dim()))
    self._encode = jax.jit(self.encode)
    self._sample = jax.jit(self.sample)
    self._preview_z, self._preview_cols = self._prior_z, 8
    # 2-D: the decoded latent grid, as in the GIF of the "Variational Autoencoder" post (2023).
    if self.latent_dim() == 2:
      coords = figures.normal_quantile_grid(self.config.figures.grid_size)
      self._preview_z = np.stack(np.meshgrid(coords, coords[::-1]), -1).reshape(-1, 2)
      self._preview_cols = len(coords)

  def _reconstruction_tile(self, state) -> np.ndarray:
    """uint8 tile: the first 16 eval images (top row) over their reconstructions."""
    x, recon = self._reconstruct(state, 16)
    return figures.tile(np.concatenate([np.asarray(x), np.asarray(recon)]), 16)

  def _reconstruct(self, state, n):
    """``(x, reconstruction)``: the first ``n`` eval images float ``[n, H, W, 1]`` in [0, 1]
    and their decoder means from ``z_mean``, the same shape."""
    x = base.to_unit_interval(jnp.asarray(self._eval.images[:n]))
    labels, styles = jnp.asarray(self._eval.labels[:n]), jnp.asarray(self._eval.styles[:n])
    return x, self._sample(state, self._encode(state, x, labels, styles), labels, styles)

  def previews(self, state):
    """``reconstructions``: the first 16 eval images over their reconstructions;
    ``samples``: the fixed latent grid (2-D latent) or 64 fixed prior draws, decoded."""
    zeros = jnp.zeros((len(self._preview_z),), jnp.int32)
    samples = self._sample(state, jnp.asarray(self._preview_z, jnp.float32), zeros, zeros)
    return {"reconstructions": self._reconstruction_tile(state),
            "samples": figures.tile(np.asarray(samples), self._preview_cols)}

  def final_figures(self, state, history, fig_dir, train_ds, eval_ds):
    """``figures.make_vae_figures`` of the trained model; returns the paths written."""
    return figures.make_vae_figures(
        fig_dir, encode=lambda x: np.asarray(self._encode(state, x, None, None)),
        decode=lambda z: np.asarray(self._sample(state, z, None, None)),
        eval_images=eval_ds.images, eval_labels=eval_ds.labels, info=eval_ds.info,
        latent_dim=self.latent_dim(), history=history, prior_z=np.asarray(self._prior_z),
        config=self.config, caption=self.describe())
