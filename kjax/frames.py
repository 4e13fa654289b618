"""The per-epoch preview tiles of a run, ``WORKDIR/frames/epoch_NNNN.npz``: the GIFs' frames
(samples and reconstructions over the course of training, as in the "Variational Autoencoder"
post (2023))."""

from __future__ import annotations

import os

import numpy as np

FRAMES_DIR = "frames"


def save_frames(directory: str, epoch: int, frames: dict[str, np.ndarray]) -> None:
  """Writes an epoch's ``Task.previews`` (name → uint8 ``[H, W]`` tile) to
  ``directory/epoch_NNNN.npz`` atomically (temporary file, then rename); a resumed run
  rewrites the same file. Nothing is written for an empty ``frames``."""
  if not frames:
    return
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, f"epoch_{epoch:04d}.npz")
  with open(path + ".tmp", "wb") as f:
    np.savez_compressed(f, **frames)
  os.replace(path + ".tmp", path)


def load_frames(directory: str) -> tuple[list[int], dict[str, list[np.ndarray]]]:
  """The frames ``save_frames`` wrote: ``(epochs, {name: [uint8 [H, W] per epoch]})``,
  ascending; ``([], {})`` when there are none."""
  if not os.path.isdir(directory):
    return [], {}
  names = sorted(f for f in os.listdir(directory) if f.startswith("epoch_") and f.endswith(".npz"))
  epochs, frames = [], {}
  for name in names:
    with np.load(os.path.join(directory, name), allow_pickle=False) as npz:
      for k in npz.files:
        frames.setdefault(k, []).append(npz[k])
    epochs.append(int(name[len("epoch_"):-len(".npz")]))
  return epochs, frames
