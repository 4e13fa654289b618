"""Thick/thin stroke-style labels (Shyam 2024, "Conditional Generation with VAE and GAN", §3.0.1).

An image's style statistic is its number of foreground pixels (pixels brighter than
``pixel_threshold``). Style is 1 ("thick") where the statistic exceeds the threshold of
the image's class, 0 ("thin") otherwise. Class thresholds are the per-class median of the
statistic on the training split (Shyam's default) or its mean (Shyam's
"Architecture 1" variant), and are applied unchanged to every other split.
"""

from __future__ import annotations

import numpy as np

from kjax import content_cache
from kjax import errors

STYLE_NAMES = ("thin", "thick")
REDUCTIONS = ("median", "mean")


def foreground_pixel_count(images: np.ndarray, pixel_threshold: int = 0) -> np.ndarray:
  """Counts foreground pixels per image.

  Args:
    images: uint8 ``[N, H, W]`` or ``[N, H, W, 1]``, values 0..255.
    pixel_threshold: a pixel is foreground where its value is strictly greater (0..254).

  Returns:
    int32 ``[N]``, pixels per image.
  """
  return (images.reshape(len(images), -1) > pixel_threshold).sum(axis=1).astype(np.int32)


def class_thresholds(counts: np.ndarray, labels: np.ndarray, num_classes: int,
                     reduction: str = "median") -> np.ndarray:
  """Per-class threshold of the style statistic.

  Args:
    counts: int ``[N]`` style statistic (``foreground_pixel_count``).
    labels: int ``[N]`` class labels in ``[0, num_classes)``.
    num_classes: number of classes.
    reduction: ``'median'`` (Shyam 2024) or ``'mean'`` (its Architecture 1).

  Returns:
    float64 ``[num_classes]``; a class absent from ``labels`` gets the statistic's
    reduction over all examples.

  Raises:
    ConfigError: unknown ``reduction``.
  """
  if reduction not in REDUCTIONS:
    raise errors.ConfigError(f"config.data.style_reduction={reduction!r} is not allowed; "
                     f"expected one of {REDUCTIONS}")
  reduce = np.median if reduction == "median" else np.mean
  overall = float(reduce(counts)) if len(counts) else 0.0
  return np.array([float(reduce(counts[labels == k])) if np.any(labels == k) else overall
                   for k in range(num_classes)])


def style_labels(counts: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
  """Style of each image: int32 ``[N]``, 1 (thick) where ``counts > thresholds[labels]``."""
  return (counts > thresholds[labels]).astype(np.int32)


def check_thresholds(thresholds, num_classes: int, max_count: int) -> str | None:
  """What is wrong with ``thresholds`` as the ``class_thresholds`` of ``num_classes``
  classes of images of ``max_count`` pixels, or None if nothing is.

  ``class_thresholds`` returns float64 ``[num_classes]``, each a median or mean of pixel
  counts, so each is finite and in ``[0, max_count]``; anything else (another type, shape
  or dtype, NaN, infinity, a negative or too large value) is described in a few words.
  """
  if not isinstance(thresholds, np.ndarray):
    return f"it holds a {type(thresholds).__name__}, not an array"
  if thresholds.dtype != np.float64:
    return f"dtype {thresholds.dtype}, expected float64"
  if thresholds.shape != (num_classes,):
    return f"shape {thresholds.shape}, expected ({num_classes},)"
  if not np.all(np.isfinite(thresholds)):
    return "it holds NaN or infinite values"
  if np.any(thresholds < 0):
    return f"it holds negative values (min {thresholds.min():g})"
  if np.any(thresholds > max_count):
    return (f"it holds values above {max_count}, the pixels of an image "
            f"(max {thresholds.max():g})")
  return None


def cached_class_thresholds(images: np.ndarray, labels: np.ndarray, num_classes: int,
                            pixel_threshold: int, reduction: str,
                            cache_dir: str | None) -> np.ndarray:
  """``class_thresholds`` of a training split, cached on disk by content.

  The cache key is a SHA-256 of the images, labels and parameters, so a changed split or
  setting never reuses a stale entry. ``cache_dir=None`` disables the cache. An entry is
  validated when it is read (``check_thresholds``: float64 ``[num_classes]``, finite, in
  ``[0, pixels per image]``; a readable ``.npy`` without pickled objects): a bad one
  (truncated, garbage, a pickle, wrong shape or dtype, NaN, negative) is recomputed and
  replaced, with one warning line naming the file and what was wrong. An entry that
  cannot be written (full disk, read-only cache) is skipped with a one-line warning.

  Args:
    images: uint8 ``[N, H, W]`` or ``[N, H, W, 1]``; labels: int ``[N]``.
    num_classes, pixel_threshold, reduction: see ``class_thresholds`` and
      ``foreground_pixel_count``.
    cache_dir: the cache's root (entries in ``<cache_dir>/style/*.npy``), or None.

  Returns:
    float64 ``[num_classes]``, as ``class_thresholds``.

  Raises:
    ConfigError: unknown ``reduction``.
  """
  counts = foreground_pixel_count(images, pixel_threshold)
  max_count = int(np.prod(images.shape[1:])) if images.ndim > 1 else 0
  return content_cache.cached_npy(
      cache_dir, "style",
      content_cache.digest(images, labels, f"{num_classes}/{pixel_threshold}/{reduction}"),
      lambda: class_thresholds(counts, labels, num_classes, reduction),
      lambda cached: check_thresholds(cached, num_classes, max_count), "style thresholds")
