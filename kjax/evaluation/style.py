"""Conditioning of conditional models: does a "thick" request give a thick character?

The style statistic is the data's own (``kjax.data.style``: foreground pixels of the uint8
image against its class's threshold on the train split), and also the ink count (pixels
above half intensity), since decoder means have a faint haze that the first counts.
"""

from __future__ import annotations

import functools

import numpy as np

from kjax.data import style as kstyle
from kjax.evaluation import base

# The "_ink" style metrics count pixels above half intensity: decoder means have a faint
# haze around strokes that the data's own statistic (any pixel > 0) counts as foreground.
INK_PIXEL_THRESHOLD = 127

METRIC_DOCS = {
    "style_accuracy": "share of samples whose foreground-pixel count is above (thick) or "
                      "at/below (thin) their class's threshold, as requested",
    "thickness_shift_pixels": "mean foreground pixels of thick minus thin samples, same z "
                              "and class",
    "real_thickness_gap_pixels": "mean foreground pixels of thick minus thin real eval images",
    "style_accuracy_ink": "style_accuracy with the ink count (pixels > 127) as statistic, "
                          "class thresholds recomputed on the train split",
    "thickness_shift_ink_pixels": "thickness_shift_pixels counting ink pixels (> 127)",
    "real_thickness_gap_ink_pixels": "real_thickness_gap_pixels counting ink pixels (> 127)",
}


def class_accuracy(predicted: np.ndarray, labels: np.ndarray, num_classes: int
                   ) -> tuple[float, float]:
  """``(accuracy, balanced accuracy)`` of int ``[N]`` predictions against int ``[N]`` labels;
  the balanced one averages the per-class accuracy over the classes present in ``labels``."""
  correct = np.asarray(predicted) == np.asarray(labels)
  per_class = [correct[labels == k].mean() for k in range(num_classes) if np.any(labels == k)]
  return float(correct.mean()), float(np.mean(per_class))


def style_accuracy(images: np.ndarray, labels: np.ndarray, requested: np.ndarray,
                   thresholds: np.ndarray, pixel_threshold: int = 0) -> float:
  """Share of images whose style by the data's own statistic is the requested one.

  The statistic is ``kjax.data.style``'s: foreground pixels (value > ``pixel_threshold``)
  of the uint8 image; style 1 (thick) where it exceeds ``thresholds[label]``.

  Args:
    images: uint8 ``[N, H, W(, 1)]`` (``base.to_uint8`` for generated images).
    labels: int ``[N]`` classes; requested: int ``[N]`` styles (0 thin, 1 thick).
    thresholds: float ``[num_classes]`` class thresholds of the training split.

  Returns:
    A fraction in [0, 1]; 1.0 for real images labelled by their own statistic.
  """
  counts = kstyle.foreground_pixel_count(images, pixel_threshold)
  return float(np.mean(kstyle.style_labels(counts, labels, thresholds) == requested))


def style(run: base.Run) -> base.Output:
  """Style accuracy and the thickness shift when only the style label flips (same z and
  class), by the data's statistic and by the ink count, on ``num_generated`` pairs."""
  ds = run.eval_ds
  n = run.num_generated()
  labels, _ = run.conditioning(n)
  z = run.latents("style", labels)
  thin = base.to_uint8(run.decode(z, labels, np.zeros(n, np.int32)))
  thick = base.to_uint8(run.decode(z, labels, np.ones(n, np.int32)))
  c = run.config.data
  out = base.Output()
  for suffix, pixel_threshold in (("", c.style_pixel_threshold), ("_ink", INK_PIXEL_THRESHOLD)):
    count = functools.partial(kstyle.foreground_pixel_count, pixel_threshold=pixel_threshold)
    thresholds = kstyle.class_thresholds(count(run.train_ds.images), run.train_ds.labels,
                                         run.info.num_classes, c.style_reduction)
    out.metrics[f"style_accuracy{suffix}"] = style_accuracy(
        np.concatenate([thin, thick]), np.concatenate([labels, labels]),
        np.repeat(np.array([0, 1], np.int32), n), thresholds, pixel_threshold)
    out.metrics[f"thickness_shift{suffix}_pixels"] = float(np.mean(count(thick) - count(thin)))
    real = count(ds.images)
    out.metrics[f"real_thickness_gap{suffix}_pixels"] = float(
        real[ds.styles == 1].mean() - real[ds.styles == 0].mean())
  out.protocol.update(style_pairs=n, style_statistics=(
      f"foreground pixels > {c.style_pixel_threshold} (the data's style statistic) and "
      f"ink pixels > {INK_PIXEL_THRESHOLD} (_ink), class {c.style_reduction}s of the train split"))
  return out
