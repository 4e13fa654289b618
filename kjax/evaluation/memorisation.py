"""Memorisation: does the model copy its training images?

Each sample's nearest training image is found in pixel space (Euclidean, [0, 1] grey
levels, H·W-D: 784-D for 28×28) and, with an evaluator, in its feature space. The
distances are compared with those of the real eval images, which the model never saw, to
their nearest training image: a model that copies has samples far closer to the training set than held-out
images are (ratio ≪ 1, many samples below the eval images' 1st percentile); one that does
not has a ratio near or above 1 and about 1% of samples below that percentile.
"""

from __future__ import annotations

import numpy as np

from kjax import figures
from kjax import metrics as kmetrics
from kjax.evaluation import base

plt = figures.plt
NUM_PAIRS = 8  # closest sample–train pairs drawn

METRIC_DOCS = {
    "memorisation_pixel_ratio": "median pixel distance of samples to their nearest train "
                                "image / the same median for real eval images (<< 1: copies)",
    "memorised_fraction_pixel": "share of samples closer (pixels) to a train image than 99% "
                                "of real eval images are (~0.01 without copying)",
    "memorisation_feature_ratio": "memorisation_pixel_ratio in the evaluator's features",
    "memorised_fraction_feature": "memorised_fraction_pixel in the evaluator's features",
}


def _flat(images: np.ndarray) -> np.ndarray:
  return np.asarray(images, np.float32).reshape(len(images), -1)


def copy_statistics(sample_distances: np.ndarray, real_distances: np.ndarray
                    ) -> tuple[float, float]:
  """``(ratio, fraction)``: the median nearest-train distance of samples over that of real
  held-out images, and the share of samples below the real images' 1st percentile.

  Args:
    sample_distances: float ``[N]``; real_distances: float ``[M]`` (same space and units).
  """
  ratio = float(np.median(sample_distances) / max(np.median(real_distances), 1e-12))
  fraction = float(np.mean(sample_distances < np.percentile(real_distances, 1)))
  return ratio, fraction


def memorisation(run: base.Run) -> base.Output:
  """Nearest-train-image distances of the ``num_generated`` samples and of the eval
  images, in pixels and (with an evaluator) features; ``memorisation.png`` draws both
  distributions and the ``NUM_PAIRS`` closest sample–train pairs."""
  generated = run.generated()[0]
  train_x = run.train_ds.images.astype(np.float32) / 255.0
  spaces = {"pixel": (_flat(generated), _flat(run.x_eval), _flat(train_x))}
  if run.evaluator is not None:
    spaces["feature"] = (run.features("generated"), run.features("eval"),
                         run.features("train"))
  out = base.Output(protocol={"memorisation": (
      f"{len(generated)} samples and {len(run.x_eval)} real eval images against their "
      f"nearest of {len(train_x)} train images, Euclidean, in {' and '.join(spaces)} space")})
  dists = {}
  for space, (samples, real, train) in spaces.items():
    d_samples, index = kmetrics.nearest_neighbours(samples, train)
    d_real = run.on_disk(  # the real images': the same for every run on this data
        "nearest_train", (run.eval_ds.images, run.train_ds.images, space),
        lambda real=real, train=train: kmetrics.nearest_neighbours(real, train)[0],
        (len(real),), f"the eval images' nearest-train distances ({space})")
    dists[space] = (d_samples, d_real, index)
    ratio, fraction = copy_statistics(d_samples, d_real)
    out.metrics[f"memorisation_{space}_ratio"] = ratio
    out.metrics[f"memorised_fraction_{space}"] = fraction
  out.figures = run.relative(_plot(run.figure_path("memorisation.png"), dists, generated,
                                   train_x, run.caption))
  return out


def _plot(path, dists, generated, train_x, caption) -> str:
  d_samples, _, index = dists["pixel"]
  closest = np.argsort(d_samples)[:NUM_PAIRS]
  fig = plt.figure(figsize=(4 * len(dists) + 2 * NUM_PAIRS * 0.6, 4.2))
  grid = fig.add_gridspec(2, len(dists) + NUM_PAIRS, width_ratios=[6] * len(dists)
                          + [1] * NUM_PAIRS)
  for col, (space, (d_s, d_r, _)) in enumerate(dists.items()):
    ax = fig.add_subplot(grid[:, col])
    bins = np.linspace(0, max(d_s.max(), d_r.max()), 40)
    ax.hist(d_r, bins, alpha=0.6, density=True, label="real eval images")
    ax.hist(d_s, bins, alpha=0.6, density=True, label="samples")
    ax.set_xlabel(f"distance to the nearest train image ({space})")
    ax.legend(fontsize=7)
  for i, s in enumerate(closest):
    for row, image in enumerate((generated[s], train_x[index[s]])):
      ax = fig.add_subplot(grid[row, len(dists) + i])
      ax.imshow(1 - image[..., 0], cmap="gray", vmin=0, vmax=1)
      ax.set_xticks([])
      ax.set_yticks([])
      if i == 0:
        ax.set_ylabel("sample" if row == 0 else "nearest\ntrain", fontsize=7)
      if row == 0:
        ax.set_title(f"{d_samples[s]:.2f}", fontsize=7)
  fig.suptitle(f"Memorisation: nearest train image of each sample vs of each real eval image; "
               f"the {NUM_PAIRS} closest pairs (pixel distance)\n{caption}", fontsize=9)
  return figures._save(fig, path)
