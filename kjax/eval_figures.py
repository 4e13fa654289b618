"""The evaluation's own figures (issue 4; the "Variational Autoencoder" project post of
2023, Ahmed 2025): KL per latent dimension, latent traversals, inpainting and a t-SNE of the
latents (``kjax.evaluation``).

As in ``kjax.figures``, every function takes plain numpy arrays; images are float
``[..., H, W(, 1)]`` in [0, 1] of any size, read from the arrays.
"""

from __future__ import annotations

from typing import Sequence

# kjax.figures chooses the backend once (Agg), before pyplot: a second matplotlib.use here
# would undo a notebook's `%matplotlib inline` set after kjax.figures was imported.
from kjax import figures
from kjax.data import catalog
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np


def plot_kl_per_dimension(path: str, kl: np.ndarray, activity: np.ndarray, threshold: float,
                          title: str) -> str:
  """Bar chart of the mean KL(q(z_d | x) ‖ N(0, 1)) of each latent dimension d (nats), with
  the active units (``Cov_x E_q[z_d] > threshold``, Burda et al. 2015) in a darker colour.

  Args:
    kl, activity: float ``[D]`` (``kjax.metrics.kl_per_dimension``, ``active_units``).
  """
  d = len(kl)
  active = np.asarray(activity) > threshold
  fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * d + 1.5), 3.6))
  ax.bar(np.arange(d), kl, color=np.where(active, "tab:blue", "lightgray"))
  ax.set_xticks(np.arange(d))
  ax.set_xlabel("latent dimension")
  ax.set_ylabel("mean KL (nats)")
  ax.set_title(f"{title}\n{int(active.sum())} of {d} units active "
               f"(Cov_x E_q[z_d] > {threshold:g}; grey: inactive)")
  ax.grid(axis="y", alpha=0.3)
  return figures._save(fig, path)


def plot_traversals(path: str, images: np.ndarray, dims: Sequence[int], kl: np.ndarray,
                    values: np.ndarray, title: str,
                    captured: Sequence[str] | None = None) -> str:
  """Latent traversals: row r varies dimension ``dims[r]`` over ``values``, all other
  dimensions fixed at one encoded image's ``z_mean`` (Higgins et al. 2017, Fig. 1–2).

  Args:
    images: float ``[R, V, H, W(, 1)]`` decoder means in [0, 1].
    dims: the dimension of each row (ordered by KL, largest first); kl: float ``[D]``.
    values: float ``[V]``, the values given to the row's dimension.
    captured: per latent dimension ``[D]``, the factor it captures most
      (``kjax.evaluation.factors.captured``), shown beside its KL; None: KL only.
  """
  r, v = images.shape[:2]
  tiles = figures.grey(np.reshape(images, (r * v, *images.shape[2:])))
  h, w = tiles.shape[1:]
  fig, ax = plt.subplots(figsize=(v * 0.55 + 1.8, r * 0.55 + 1.0))
  ax.imshow(figures.tile(tiles, v), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
  ax.set_xticks(figures.tile_centres(v, w))
  ax.set_xticklabels([f"{x:+.1f}" for x in values], fontsize=8)
  ax.set_yticks(figures.tile_centres(r, h))
  ax.set_yticklabels([f"z{d} ({kl[d]:.2f} nats" + (f"; {captured[d]})" if captured else ")")
                      for d in dims], fontsize=8)
  ax.set_xlabel("value of the traversed dimension")
  ax.set_title(title)
  return figures._save(fig, path)


INPAINTING_ROWS = ("original", "masked", "patch filled in", "full reconstruction")


def plot_inpainting(path: str, original: np.ndarray, masked: np.ndarray, filled: np.ndarray,
                    reconstruction: np.ndarray, title: str,
                    patch: tuple[slice, slice] | None = None) -> str:
  """Inpainting, as in Ahmed (2025), §2.1: one column per example, one labelled row each for
  ``INPAINTING_ROWS``.

  Args:
    original: float ``[N, H, W(, 1)]`` in [0, 1], the eval images.
    masked: the same images with the patch zeroed (the model's input).
    filled: the masked images with only the patch filled in by the model
      (``kjax.evaluation.inpainting.fill_patch``): original pixels outside it.
    reconstruction: the model's full decoding of the masked images.
    title: the figure's title.
    patch: ``(rows, columns)`` slices of the masked patch, outlined in the "masked" and
      "patch filled in" rows; None draws no outline.

  Returns:
    ``path``, a PNG.
  """
  n = len(original)
  rows = (original, masked, filled, reconstruction)
  images = np.concatenate([figures.grey(r) for r in rows])
  h, w = images.shape[1:]
  fig, ax = plt.subplots(figsize=(max(4.0, n * 0.55 + 1.8), len(rows) * 0.55 + 0.8))
  ax.imshow(figures.tile(images, n), cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
  if patch is not None:
    r0, r1 = patch[0].indices(h)[:2]
    c0, c1 = patch[1].indices(w)[:2]
    for row in (1, 2):  # masked, patch filled in
      for col in range(n):
        top, left = 1 + (h + 1) * row + r0, 1 + (w + 1) * col + c0
        ax.add_patch(matplotlib.patches.Rectangle(
            (left - 0.5, top - 0.5), c1 - c0, r1 - r0, fill=False, edgecolor="tab:red",
            lw=0.6, ls=(0, (2, 1))))
  ax.set_xticks([])
  ax.set_yticks(figures.tile_centres(len(rows), h))
  ax.set_yticklabels(INPAINTING_ROWS)
  ax.set_title(title)
  return figures._save(fig, path)


def plot_tsne(path: str, z: np.ndarray, labels: np.ndarray, info: catalog.DatasetInfo,
              title: str, seed: int = 0) -> str:
  """t-SNE (scikit-learn; van der Maaten & Hinton 2008) of ``[N, D]`` latents, coloured by
  class with each class's character in the legend (Ahmed 2025, Appendix B).

  Uses ``init='pca'``, ``learning_rate='auto'``, perplexity min(30, (N − 1) / 3) and
  ``random_state=seed``, so the figure is reproducible.
  """
  from sklearn.manifold import TSNE  # noqa: PLC0415  (slow import; only here)

  perplexity = float(min(30.0, (len(z) - 1) / 3))
  xy = TSNE(n_components=2, init="pca", learning_rate="auto", perplexity=perplexity,
            random_state=seed).fit_transform(np.asarray(z, np.float64))
  fig, ax = plt.subplots(figsize=(8, 7))
  for k, color in enumerate(figures.class_colors(info.num_classes)):
    sel = labels == k
    ax.scatter(xy[sel, 0], xy[sel, 1], s=4, alpha=0.6, color=color, label=info.label(k))
  ax.set_xlabel("t-SNE 1")
  ax.set_ylabel("t-SNE 2")
  ax.set_title(title)
  ax.legend(markerscale=4, fontsize=10, loc="center left", bbox_to_anchor=(1.01, 0.5),
            title="class", ncols=1 if info.num_classes <= 20 else 2)
  return figures._save(fig, path)
