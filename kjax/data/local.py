"""The local-folder source: the official files in ``config.data.data_dir``."""

from __future__ import annotations

import functools
import os
from typing import Callable

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


def check_images(info: catalog.DatasetInfo, path: str, array: np.ndarray) -> np.ndarray:
  """``array`` as uint8 ``[N, H, W]`` with ``(H, W, 1) = info.image_shape`` (a trailing
  channel of 1 dropped: same bytes).

  Raises:
    DataError: another dtype or image shape; one line naming the file, the shape found and
      the one expected.
  """
  h, w, _ = info.image_shape
  if array.ndim == 4 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.dtype != np.uint8 or array.ndim != 3 or array.shape[1:] != (h, w):
    raise readers.DataError(f"{path}: images are {array.dtype} {list(array.shape)} "
                            f"(expected uint8 images [N, {h}, {w}])")
  return array


def _labels(path: str, array: np.ndarray) -> np.ndarray:
  """``array`` as integer ``[N]`` (a trailing axis of 1 dropped: same bytes).

  Raises:
    DataError: not integers, or another shape.
  """
  if array.ndim == 2 and array.shape[1] == 1:
    array = array[:, 0]
  if not np.issubdtype(array.dtype, np.integer) or array.ndim != 1:
    raise readers.DataError(f"{path}: labels are {array.dtype} {list(array.shape)} "
                            "(expected integer labels [N])")
  return array


def _read_verified(path: str, spec: catalog.FileSpec, verify: bool,
                   check: Callable[[str, np.ndarray], np.ndarray]) -> np.ndarray:
  """Reads, checks (``check``: ``check_images`` or ``_labels``) and verifies one file.

  A file with a published file checksum is verified before it is decoded; one known only
  by the checksum of its decoded array is decoded and checked first.

  Raises:
    ChecksumError: ``verify`` and the file (or its decoded array) is not the official one.
    DataError: the file cannot be read or decoded, or holds the wrong dtype or shape; one
      line naming the file, what is wrong and where the official file is.
  """
  try:
    if verify and spec.has_file_checksum:  # check before decoding
      readers.verify_file(path, spec)
      return check(path, readers.read_array(path))
    array = check(path, readers.read_array(path))
  except readers.DataError as e:
    raise readers.DataError(f"{e}; re-download it from {spec.url}") from e
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
    ``(images, labels)``: uint8 ``[N, H, W]`` (``info.image_shape``) and int32 ``[N]``
    with labels in ``[0, num_classes)``.

  Raises:
    DataFileNotFoundError: a file is missing (see ``find_split_files``).
    ChecksumError: a file is not the official one (only with ``verify_checksums``).
    DataError: a file cannot be read or decoded (empty, truncated, not gzip / idx / npz,
      pickled objects; see ``kjax.data.readers``), or the arrays have the wrong shape,
      dtype, count or label range. Every message is one line naming the file.
  """
  files, images_path, labels_path = find_split_files(info, data_dir, split)
  images = _read_verified(images_path, files.images, verify_checksums,
                          functools.partial(check_images, info))
  labels = _read_verified(labels_path, files.labels, verify_checksums, _labels)
  if len(labels) != len(images):
    raise readers.DataError(f"{labels_path}: {len(labels)} labels for the {len(images)} "
                            f"images in {images_path} (expected one label per image)")
  if len(labels) and (labels.min() < 0 or labels.max() >= info.num_classes):
    raise readers.DataError(f"{labels_path}: labels span [{labels.min()}, {labels.max()}] "
                            f"(expected [0, {info.num_classes - 1}] for {info.name})")
  return images, labels.astype(np.int32)
