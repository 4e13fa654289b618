"""Synthetic files in the official KMNIST / Kuzushiji-49 format, for timing at full size.

Only the training split of KMNIST's test set and no K49 file are offline here, so the
benchmarks time full-size runs (60,000 KMNIST or 232,365 K49 training images) on random
strokes written as ``{kmnist,k49}-{train,test}-{imgs,labels}.npz`` (key ``arr_0``, uint8
images ``[N, 28, 28]``, uint8 labels ``[N]``). Load them with
``--config.data.verify_checksums=False``: they are not the publisher's files. Numbers
from them are speeds, never results.
"""

from __future__ import annotations

import os

import numpy as np

NUM_CLASSES = {"kmnist": 10, "k49": 49}
# The official split sizes.
SIZES = {"kmnist": (60_000, 10_000), "k49": (232_365, 38_547)}


def strokes(n: int, rng: np.random.Generator) -> np.ndarray:
  """uint8 ``[n, 28, 28]``: three bright bars per image, of random place, length and
  thickness (1–3 pixels, so that the thick/thin style labels split them)."""
  images = np.zeros((n, 28, 28), np.uint8)
  rows, cols = np.arange(28)[None, :, None], np.arange(28)[None, None, :]
  for _ in range(3):
    r, c = rng.integers(2, 24, (n, 1, 1)), rng.integers(2, 20, (n, 1, 1))
    w, length = rng.integers(1, 4, (n, 1, 1)), rng.integers(4, 9, (n, 1, 1))
    bar = (rows >= r) & (rows < r + w) & (cols >= c) & (cols < c + length)
    images = np.maximum(images, np.where(bar, rng.integers(128, 256, (n, 1, 1)), 0)
                        .astype(np.uint8))
  return images


def write(folder: str, name: str, n_train: int | None = None, n_test: int | None = None,
          seed: int = 0) -> str:
  """Writes ``name``'s four official-format files into ``folder`` (created if needed).

  Args:
    name: ``'kmnist'`` or ``'k49'``.
    n_train, n_test: split sizes (default: the official ``SIZES``).

  Returns:
    ``folder``.

  Raises:
    ValueError: an unknown ``name``.
  """
  if name not in SIZES:
    raise ValueError(f"name={name!r} is not one of {tuple(SIZES)}")
  sizes = dict(zip(("train", "test"), SIZES[name]))
  sizes.update({k: v for k, v in (("train", n_train), ("test", n_test)) if v})
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  for split, n in sizes.items():
    labels = (np.arange(n) % NUM_CLASSES[name]).astype(np.uint8)  # every class present
    rng.shuffle(labels)
    np.savez(os.path.join(folder, f"{name}-{split}-imgs.npz"), strokes(n, rng))
    np.savez(os.path.join(folder, f"{name}-{split}-labels.npz"), labels)
  return folder
