"""Thick/thin style labels (Shyam (2024), "Conditional Generation with VAE and GAN", §3.0.1)."""

import numpy as np
import pytest

from kjax.data import style


def _images_with_counts(counts):
  images = np.zeros((len(counts), 28, 28, 1), np.uint8)
  for i, c in enumerate(counts):
    images[i].reshape(-1)[:c] = 200
  return images


def test_foreground_count_and_pixel_threshold():
  images = _images_with_counts([0, 5, 784])
  np.testing.assert_array_equal(style.foreground_pixel_count(images), [0, 5, 784])
  images[1].reshape(-1)[:2] = 50  # two dim pixels
  np.testing.assert_array_equal(style.foreground_pixel_count(images, 100), [0, 3, 784])


def test_median_and_mean_thresholds_per_class():
  counts = np.array([10, 20, 30, 100, 1, 2, 3])
  labels = np.array([0, 0, 0, 0, 1, 1, 1])
  np.testing.assert_allclose(style.class_thresholds(counts, labels, 3, "median"), [25, 2, 10])  # class 2 absent: overall median
  np.testing.assert_allclose(style.class_thresholds(counts, labels, 3, "mean"),
                             [40, 2, counts.mean()])  # class 2 absent: overall statistic
  np.testing.assert_array_equal(style.style_labels(counts, labels, np.array([25.0, 2.0, 0.0])),
                                [0, 0, 1, 1, 0, 0, 1])
  with pytest.raises(ValueError, match="style_reduction='mode'"):
    style.class_thresholds(counts, labels, 3, "mode")


def test_train_thresholds_apply_to_other_splits():
  train = _images_with_counts([10, 20, 30, 40])
  labels = np.zeros(4, np.int32)
  thresholds = style.class_thresholds(style.foreground_pixel_count(train), labels, 1)
  assert thresholds[0] == 25
  test = _images_with_counts([24, 26])  # labelled with the train split's threshold
  np.testing.assert_array_equal(
      style.style_labels(style.foreground_pixel_count(test), np.zeros(2, np.int32), thresholds),
      [0, 1])


def test_thresholds_are_cached_by_content(tmp_path, monkeypatch):
  images = _images_with_counts([10, 20, 30])
  labels = np.zeros(3, np.int32)
  first = style.cached_class_thresholds(images, labels, 2, 0, "median", str(tmp_path))
  assert len(list((tmp_path / "style").iterdir())) == 1
  calls = []
  monkeypatch.setattr(style, "class_thresholds", lambda *a: calls.append(a))
  np.testing.assert_array_equal(
      style.cached_class_thresholds(images, labels, 2, 0, "median", str(tmp_path)), first)
  assert not calls  # served from the cache
  monkeypatch.undo()
  style.cached_class_thresholds(images, labels, 2, 0, "mean", str(tmp_path))
  assert len(list((tmp_path / "style").iterdir())) == 2  # other settings, other entry
