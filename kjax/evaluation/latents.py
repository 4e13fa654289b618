"""The latent space of a VAE on the eval split: reconstruction error from ``z_mean``, KL per
dimension and active units (Burda et al. 2015 §5.2), traversals along the dimensions with
the most KL, and a t-SNE of ``z_mean`` (Ahmed 2025, "Generative AI Theory & Applications
Report 1: Variational Autoencoders", Appendix B)."""

from __future__ import annotations

import numpy as np

from kjax import eval_figures
from kjax import metrics as kmetrics
from kjax.evaluation import base
from kjax.evaluation import factors as kfactors

ACTIVE_THRESHOLD = 0.01                       # Burda et al. 2015 §5.2
TRAVERSAL_VALUES = np.linspace(-3.0, 3.0, 9, dtype=np.float32)
MAX_TRAVERSAL_DIMS = 10

METRIC_DOCS = {
    "rec_mse": "mean squared error per pixel in [0, 1] of the decoder mean from z_mean",
    "active_units": "latent units with Cov_x E_q[z_d] > 0.01 (Burda et al. 2015)",
    "kl_per_dimension": "mean KL(q(z_d|x) || N(0, 1)) of each latent dimension, nats",
    "unit_activity": "Cov_x E_q[z_d] of each latent dimension",
}


def latents(run: base.Run) -> base.Output:
  """``rec_mse``, ``kl_per_dimension``, ``unit_activity``, ``active_units`` and the figure
  ``kl_per_dimension.png``, from the posterior of every eval image."""
  z_mean, z_logvar = run.posterior()
  recon = run.decode(z_mean, run.labels, run.styles)
  kl_dims = kmetrics.kl_per_dimension(z_mean, z_logvar)
  count, activity = kmetrics.active_units(z_mean, ACTIVE_THRESHOLD)
  path = eval_figures.plot_kl_per_dimension(
      run.figure_path("kl_per_dimension.png"), kl_dims, activity, ACTIVE_THRESHOLD,
      f"KL per latent dimension, eval split\n{run.caption}")
  return base.Output(
      metrics={"rec_mse": float(np.mean(np.square(recon - run.x_eval))), "active_units": count,
               "kl_per_dimension": kl_dims.round(4).tolist(),
               "unit_activity": activity.round(4).tolist()},
      figures=run.relative(path))


def traversals(run: base.Run) -> base.Output:
  """``traversals.png``: each of the (up to 10) dimensions with the most KL varied over
  [−3, 3] around the first eval image's ``z_mean``, labelled with its KL and the factor it
  captures most (``kjax.evaluation.factors.captured``)."""
  z_mean, z_logvar = run.posterior()
  kl_dims = kmetrics.kl_per_dimension(z_mean, z_logvar)
  order = np.argsort(-kl_dims)[:MAX_TRAVERSAL_DIMS]
  v = len(TRAVERSAL_VALUES)
  z = np.repeat(z_mean[:1], len(order) * v, 0).reshape(len(order), v, -1)
  for r, d in enumerate(order):
    z[r, :, d] = TRAVERSAL_VALUES
  labels = np.full(len(order) * v, run.labels[0], np.int32)
  styles = np.full(len(order) * v, run.styles[0], np.int32)
  images = run.decode(z.reshape(len(order) * v, -1), labels, styles)
  path = eval_figures.plot_traversals(
      run.figure_path("traversals.png"), images.reshape(len(order), v, *images.shape[1:]), order,
      kl_dims, TRAVERSAL_VALUES,
      f"Latent traversals around the first eval image's z_mean "
      f"({run.info.label(int(run.labels[0]))}), rows ordered by KL, each with the factor it "
      f"captures most\n{run.caption}", kfactors.captured(run))
  return base.Output(figures=run.relative(path))


def tsne(run: base.Run) -> base.Output:
  """``tsne.png`` of the first ``eval.tsne_max_points`` eval ``z_mean`` (scikit-learn),
  for latents of more than 2 dimensions with at least one active unit."""
  z_mean, _ = run.posterior()
  if z_mean.shape[1] <= 2:
    return base.Output(protocol={"tsne": "not drawn: the latent has <= 2 dimensions "
                                         "(see latent_manifold)"})
  if not kmetrics.active_units(z_mean, ACTIVE_THRESHOLD)[0]:
    # A collapsed posterior (every z_mean constant) has no structure to embed, and
    # scikit-learn's PCA-initialised t-SNE divides by its zero spread (NaN, then a crash).
    return base.Output(protocol={"tsne": "not drawn: no active unit (the posterior has "
                                         "collapsed)"})
  n = min(run.config.eval.tsne_max_points, len(z_mean))
  path = eval_figures.plot_tsne(
      run.figure_path("tsne.png"), z_mean[:n], run.eval_ds.labels[:n], run.info,
      f"t-SNE of eval z_mean ({n} images, {z_mean.shape[1]}-D)\n{run.caption}",
      seed=run.config.seed)
  return base.Output(protocol={"tsne_points": n}, figures=run.relative(path))
