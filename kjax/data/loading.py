"""Loads train and eval splits as uint8 arrays with class and style labels."""

from __future__ import annotations

import dataclasses
import os

import ml_collections
import numpy as np

from kjax import errors
from kjax.data import catalog
from kjax.data import local
from kjax.data import splits
from kjax.data import style
from kjax.data import tfds_builders


@dataclasses.dataclass(frozen=True)
class Dataset:
  """One split held in host memory, ready to be put on the device once.

  Attributes:
    images: uint8 ``[N, H, W, 1]`` (``info.image_shape``), pixel values 0..255.
    labels: int32 ``[N]``, class index.
    styles: int32 ``[N]``, 0 thin / 1 thick (``kjax.data.style``).
    info: the data set's catalogue entry (class names, sizes).
    split: the TFDS split spec it was loaded with, e.g. ``'test[:8000]'``.
  """

  images: np.ndarray
  labels: np.ndarray
  styles: np.ndarray
  info: catalog.DatasetInfo
  split: str

  def __len__(self) -> int:
    return len(self.images)


def default_cache_dir() -> str:
  """``$KJAX_CACHE_DIR``, else ``~/.cache/kjax``."""
  return os.environ.get("KJAX_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "kjax"))


def load_split_arrays(data_config: ml_collections.ConfigDict, split: str,
                      _files: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Reads a split, in TFDS slicing syntax, from the configured source.

  The source is the folder ``data_config.data_dir`` of official files when set, else TFDS.
  ``_files`` (internal) caches the official splits read from the folder across calls.

  Returns:
    ``(images, labels)``: uint8 ``[N, H, W]`` (the data set's ``image_shape``) and int32
    ``[N]``.

  Raises:
    ConfigError, DataError: unknown data set or bad split (before any file is read); images
      of another shape than the data set's ``image_shape``.
    DataFileNotFoundError, ChecksumError: see ``kjax.data.local``; from TFDS, a data set
      neither prepared nor downloadable fails within seconds
      (``kjax.data.tfds_builders.load_split_arrays``).
  """
  info = catalog.get_dataset_info(data_config.name)
  if not data_config.get("data_dir"):
    splits.resolve_split(split, info.split_sizes)
    return tfds_builders.load_split_arrays(info, split, data_config.get("tfds_data_dir") or None)
  names = splits.split_names(split, tuple(info.split_sizes))
  files = {} if _files is None else _files
  for name in names:
    if name not in files:
      files[name] = local.load_split_arrays(info, data_config.data_dir, name,
                                            data_config.verify_checksums)
  sizes = {name: len(files[name][0]) for name in names}
  for name, size in sizes.items():
    if data_config.verify_checksums and size != info.split_sizes[name]:
      raise errors.DataError(f"{info.name} {name!r}: {size} examples in {data_config.data_dir}, "
                       f"expected {info.split_sizes[name]}")
  # Slices are taken of the files' actual sizes: non-official files may be smaller.
  ranges = splits.resolve_split(split, {**info.split_sizes, **sizes})
  images = np.concatenate([files[name][0][start:stop] for name, start, stop in ranges])
  labels = np.concatenate([files[name][1][start:stop] for name, start, stop in ranges])
  return images, labels


def load_datasets(data_config: ml_collections.ConfigDict) -> tuple[Dataset, Dataset]:
  """Loads the train and eval splits with style labels.

  Style thresholds are computed on the train split (cached, see
  ``kjax.data.style.cached_class_thresholds``) and applied to both splits.

  Args:
    data_config: ``config.data`` (``name``, ``data_dir``, ``train_split``, ``eval_split``,
      ``verify_checksums``, ``style_pixel_threshold``, ``style_reduction``, ``cache_dir``).

  Returns:
    ``(train, eval)`` datasets.
  """
  info = catalog.get_dataset_info(data_config.name)
  # Validate both specs before reading any file (against the official sizes, unless
  # non-official files, whose sizes are only known once read, are accepted).
  for spec in (data_config.train_split, data_config.eval_split):
    if data_config.verify_checksums:
      splits.resolve_split(spec, info.split_sizes)
    else:
      splits.split_names(spec, tuple(info.split_sizes))
  splits.warn_if_seen(splits.eval_images_seen(
      data_config.name, data_config.eval_split, info.split_sizes, data_config.train_split),
      data_config.eval_split, data_config.train_split)
  files = {}  # each official file is read and verified once
  train_images, train_labels = load_split_arrays(data_config, data_config.train_split, files)
  eval_images, eval_labels = load_split_arrays(data_config, data_config.eval_split, files)
  cache_dir = data_config.get("cache_dir") or default_cache_dir()
  thresholds = style.cached_class_thresholds(
      train_images, train_labels, info.num_classes, data_config.style_pixel_threshold,
      data_config.style_reduction, cache_dir)

  def make(images, labels, spec):
    counts = style.foreground_pixel_count(images, data_config.style_pixel_threshold)
    return Dataset(images=images.reshape(-1, *info.image_shape), labels=labels,
                   styles=style.style_labels(counts, labels, thresholds), info=info, split=spec)

  train = make(train_images, train_labels, data_config.train_split)
  evaluation = make(eval_images, eval_labels, data_config.eval_split)
  mode = data_config.get("binarize", "none")  # style labels stay those of the grey images
  if mode != "none":  # the eval split once, whatever the mode: every evaluation sees it
    evaluation = dataclasses.replace(evaluation, images=binarize(evaluation.images, 1))
  if mode == "static":
    train = dataclasses.replace(train, images=binarize(train.images, 0))
  return train, evaluation


BINARIZATIONS = ("none", "dynamic", "static")


def binarize(images: np.ndarray, seed: int) -> np.ndarray:
  """Stochastic binarisation, fixed by ``seed`` (numpy's PCG64): each pixel of uint8
  ``images`` becomes 255 with probability value / 255, else 0 (uint8, same shape).

  ``config.data.binarize='static'`` binarises the train split once with seed 0 and the
  eval split with seed 1; ``'dynamic'`` draws the train batches afresh at every step
  (``kjax.train.binarize_batch``, Burda et al. 2015 §5) and uses the same fixed eval split.
  """
  u = np.random.default_rng(seed).random(images.shape, dtype=np.float32)
  return np.where(u * 255.0 < images, 255, 0).astype(np.uint8)
