"""The local-folder source: the official files in ``config.data.data_dir``."""

from __future__ import annotations

import os

from absl import logging
import numpy as np

from kjax.data import catalog
from kjax.data import readers


def find_split_files(info: catalog.DatasetInfo, data_dir: str,
                     split: str) -> tuple[catalog.SplitFiles, str, str]:
  """Finds the files of ``split`` in ``data_dir``, in the catalogue's order of formats.

  Returns:
    ``(split_files, images_path, labels_path)`` of the first format with both files present.

  Raises:
    DataFileNotFoundError: no format is complete; the message names the missing file,
      its official URL and where to put it.
  """
  for files in info.files[split]:
    images = os.path.join(data_dir, files.images.filename)
    labels = os.path.join(data_dir, files.labels.filename)
    if os.path.isfile(images) and os.path.isfile(labels):
      return files, images, labels
  preferred = info.files[split][0]
  missing = [f for f in (preferred.images, preferred.labels)
             if not os.path.isfile(os.path.join(data_dir, f.filename))]
  alternatives = [f"{f.images.filename} + {f.labels.filename}" for f in info.files[split][1:]]
  raise readers.DataFileNotFoundError(
      f"{info.name} {split!r} split: {missing[0].filename} not found in "
      f"{os.path.abspath(data_dir)}; download it from {missing[0].url} and put it there"
      + (f" (or the {' / '.join(alternatives)} variant)" if alternatives else ""))


def _read_verified(path: str, spec: catalog.FileSpec, verify: bool) -> np.ndarray:
  if verify and spec.has_file_checksum:  # check before decoding
    readers.verify_file(path, spec)
    return readers.read_array(path)
  array = readers.read_array(path)
  if not verify:
    logging.warning("config.data.verify_checksums=False: %s accepted without verification",
                    path)
  elif not readers.verify_file(path, spec, array):
    logging.warning("%s: no official checksum is known for this file; it is not verified",
                    path)
  return array


def load_split_arrays(info: catalog.DatasetInfo, data_dir: str, split: str,
                      verify_checksums: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Reads and verifies one whole official split from a folder.

  Args:
    info: the data set's catalogue entry.
    data_dir: folder holding the official files (idx ``.gz`` or ``.npz``).
    split: an official split name, ``'train'`` or ``'test'``.
    verify_checksums: check each file against its official checksum.

  Returns:
    ``(images, labels)``: uint8 ``[N, 28, 28]`` and int32 ``[N]`` with labels in
    ``[0, num_classes)``.

  Raises:
    DataFileNotFoundError: a file is missing (see ``find_split_files``).
    ChecksumError: a file is not the official one.
    DataError: the arrays have the wrong shape, dtype or label range.
  """
  files, images_path, labels_path = find_split_files(info, data_dir, split)
  images = _read_verified(images_path, files.images, verify_checksums)
  labels = _read_verified(labels_path, files.labels, verify_checksums)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
    raise readers.DataError(f"{images_path}: expected uint8 images [N, 28, 28], "
                     f"got {images.dtype} {list(images.shape)}")
  labels = labels.reshape(-1).astype(np.int32)
  if len(labels) != len(images):
    raise readers.DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images "
                     f"in {images_path}")
  if len(labels) and (labels.min() < 0 or labels.max() >= info.num_classes):
    raise readers.DataError(f"{labels_path}: labels span [{labels.min()}, {labels.max()}], "
                     f"expected [0, {info.num_classes - 1}]")
  return images, labels
