"""Factors of variation of handwriting images, for the disentanglement scores (``mig``,
``dci``, ``sap``, ``factor_vae``) and the traversal figure's labels.

Every image carries two labelled factors, and four stroke factors are measured from its
pixels (``FACTORS``, in this order):

* ``class``: the character (discrete, ``info.num_classes`` values);
* ``style``: thin 0 / thick 1 (discrete, ``kjax.data.style``);
* ``ink``: mean intensity in [0, 1], the ink mass per pixel;
* ``slant``: the shear μ₁₁ / μ₀₂ of the intensity's second central moments, column offset
  per row (the deskewing angle's tangent of LeCun et al.'s MNIST preprocessing; > 0: the
  top leans right, rows counted downwards);
* ``width``, ``height``: of the bounding box of the ink pixels (≥ ``INK_THRESHOLD``), in
  pixels (0 for a blank image).

The discrete scores (MIG, DCI, the FactorVAE score) see the continuous factors (and, for
MIG, the latents) discretised into ``NUM_BINS`` equal-width bins, as disentanglement_lib's
``_histogram_discretize`` does (Locatello et al. 2019); SAP uses them as real values.
"""

from __future__ import annotations

import numpy as np

from kjax.evaluation import base

FACTORS = ("class", "style", "ink", "slant", "width", "height")
DISCRETE = (True, True, False, False, False, False)
NUM_BINS = 20                 # disentanglement_lib's num_bins
INK_THRESHOLD = 128           # uint8 grey level of an ink pixel for the bounding box
TRAIN_FRACTION = 0.8          # DCI's and SAP's predictors: fit on the first 80% of the split


def stroke_factors(images: np.ndarray) -> np.ndarray:
  """The four measured factors of each image.

  Args:
    images: uint8 ``[N, H, W]`` or ``[N, H, W, 1]``, grey levels 0..255 (ink bright).

  Returns:
    float64 ``[N, 4]``: ``ink`` (mean intensity in [0, 1]), ``slant`` (μ₁₁ / μ₀₂, 0 for an
    image without ink), ``width`` and ``height`` of the ink's bounding box (pixels).

  Raises:
    ValueError: ``images`` is not uint8 of rank 3 or 4.
  """
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim not in (3, 4):
    raise ValueError(f"images of dtype {images.dtype} and shape {images.shape} are not "
                     "allowed: expected uint8 [N, H, W] or [N, H, W, 1]")
  x = images.reshape(images.shape[:3]).astype(np.float64) / 255.0
  n, h, w = x.shape
  rows, cols = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
  mass = x.sum((1, 2))
  safe = np.where(mass > 0, mass, 1.0)
  r_mean = (x.sum(2) @ rows) / safe
  c_mean = (x.sum(1) @ cols) / safe
  dr = rows[None, :] - r_mean[:, None]                       # [N, H]
  dc = cols[None, :] - c_mean[:, None]                       # [N, W]
  mu02 = np.einsum("nhw,nh->n", x, dr ** 2)
  mu11 = np.einsum("nhw,nh,nw->n", x, dr, dc)
  slant = np.where(mu02 > 0, -mu11 / np.where(mu02 > 0, mu02, 1.0), 0.0)
  ink = images.reshape(n, h, w) >= INK_THRESHOLD
  any_rows, any_cols = ink.any(2), ink.any(1)

  def extent(present):
    first = np.argmax(present, 1)
    last = present.shape[1] - 1 - np.argmax(present[:, ::-1], 1)
    return np.where(present.any(1), last - first + 1, 0).astype(np.float64)

  return np.stack([mass / (h * w), slant, extent(any_cols), extent(any_rows)], 1)


def factor_values(images: np.ndarray, labels: np.ndarray, styles: np.ndarray) -> np.ndarray:
  """float64 ``[N, 6]``: the ``FACTORS`` of uint8 ``images`` ``[N, H, W(, 1)]`` with int
  ``labels`` and ``styles`` ``[N]``."""
  return np.concatenate([np.stack([labels, styles], 1).astype(np.float64),
                         stroke_factors(images)], 1)


def histogram_discretize(values: np.ndarray, num_bins: int = NUM_BINS) -> np.ndarray:
  """Each column of float ``[N, K]`` into ``num_bins`` equal-width bins over its own range:
  int64 ``[N, K]`` in 1..num_bins (disentanglement_lib's ``_histogram_discretize``)."""
  values = np.asarray(values, np.float64)
  out = np.zeros(values.shape, np.int64)
  for j in range(values.shape[1]):
    out[:, j] = np.digitize(values[:, j], np.histogram(values[:, j], num_bins)[1][:-1])
  return out


def discretize_factors(values: np.ndarray, discrete=DISCRETE,
                       num_bins: int = NUM_BINS) -> np.ndarray:
  """int64 ``[N, K]``: discrete columns of float ``[N, K]`` as they are, the others
  ``histogram_discretize``d (``discrete``: bool per column)."""
  binned = histogram_discretize(values, num_bins)
  return np.where(np.asarray(discrete)[None, :], np.rint(values).astype(np.int64), binned)


def mutual_information(codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
  """float64 ``[D, K]``: I(code_d; factor_k) in nats of int ``[N, D]`` and int ``[N, K]``
  (plug-in estimate, scikit-learn's ``mutual_info_score``)."""
  from sklearn import metrics as skmetrics  # noqa: PLC0415  (0.7 s: only when measured)
  return np.array([[skmetrics.mutual_info_score(factors[:, k], codes[:, d])
                    for k in range(factors.shape[1])] for d in range(codes.shape[1])])


def entropy(factors: np.ndarray) -> np.ndarray:
  """float64 ``[K]``: H(factor_k) in nats of int ``[N, K]`` (plug-in estimate)."""
  from sklearn import metrics as skmetrics  # noqa: PLC0415  (0.7 s: only when measured)
  return np.array([skmetrics.mutual_info_score(f, f) for f in np.asarray(factors).T])


def split(n: int) -> int:
  """The number of examples that fit DCI's and SAP's predictors (the rest test them)."""
  return max(1, min(n - 1, int(round(TRAIN_FRACTION * n))))


def of_run(run: base.Run) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``(codes, values, binned)`` of the eval split, computed once per run: ``z_mean``
  float32 ``[N, D]``, the ``FACTORS`` float64 ``[N, 6]`` and them discretised int64
  ``[N, 6]`` (``discretize_factors``)."""
  if "factors" not in run._cache:
    values = factor_values(run.eval_ds.images, run.labels, run.styles)
    run._cache["factors"] = (run.posterior()[0], values, discretize_factors(values))
  return run._cache["factors"]


def captured(run: base.Run) -> list[str]:
  """For each latent dimension, the factor it captures most: the largest MI(z_d; factor_k) /
  H(factor_k), the normalisation of MIG (Chen et al. 2018); ``'-'`` where that share is
  below 0.05."""
  codes, _, binned = of_run(run)
  share = mutual_information(histogram_discretize(codes), binned) / np.maximum(
      entropy(binned), 1e-12)[None, :]
  return [FACTORS[int(np.argmax(row))] if row.max() >= 0.05 else "-" for row in share]


def protocol(run: base.Run) -> dict:
  """What the scores were measured against (``metrics.json``'s protocol)."""
  return {"disentanglement_factors": list(FACTORS), "disentanglement_num_bins": NUM_BINS,
          "disentanglement_images": len(run.eval_ds),
          "disentanglement_representation": "z_mean of the eval images"}
