"""The per-epoch preview tiles of a run, ``WORKDIR/frames/epoch_NNNN.npz``: the GIFs' frames
(samples and reconstructions over the course of training, as in the "Variational Autoencoder"
post (2023))."""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np
from absl import logging

from kjax import errors
from kjax import files

FRAMES_DIR = "frames"


def save_frames(directory: str, epoch: int, frames: dict[str, np.ndarray]) -> None:
  """Writes an epoch's ``Task.previews`` (name → uint8 ``[H, W]`` tile) to
  ``directory/epoch_NNNN.npz`` atomically (temporary file, then rename); a resumed run
  rewrites the same file. Nothing is written for an empty ``frames``.

  Raises:
    WriteError: the folder or the file cannot be written (full disk, unwritable workdir);
      the message names the path and the OS error, and an earlier version is intact.
  """
  if not frames:
    return
  files.makedirs(directory)
  files.save_npz(os.path.join(directory, f"epoch_{epoch:04d}.npz"), **frames)


def _read(path: str) -> dict[str, np.ndarray] | None:
  """The arrays of one frames file, or None (after a one-line warning naming it) when it is
  damaged, truncated or unreadable.

  Raises:
    DataError: the file holds pickled objects (refused, never unpickled).
  """
  opened = False
  try:
    npz = np.load(path, allow_pickle=False)
    if not isinstance(npz, np.lib.npyio.NpzFile):  # e.g. an .npy file renamed
      raise ValueError("not an .npz archive")
    with npz:
      opened = True
      arrays = {k: np.asarray(npz[k]) for k in npz.files}
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile,
          zlib.error) as e:
    if opened and isinstance(e, ValueError) and "allow_pickle" in str(e):
      # Not damage but pickled objects, which kjax never writes: refused in one line.
      raise errors.DataError(f"{path} holds pickled objects, refused (np.load with "
                             "allow_pickle=False); kjax's frames are uint8 arrays: remove "
                             "the file") from e
    reason = " ".join(str(e).split()) or type(e).__name__
    logging.warning("kjax: skipping the damaged frames file %s (%s: %s)", path,
                    type(e).__name__, reason)
    return None
  if any(a.ndim != 2 for a in arrays.values()):
    logging.warning("kjax: skipping the frames file %s: its arrays are not [H, W] tiles", path)
    return None
  return arrays


def load_frames(directory: str) -> tuple[list[int], dict[str, list[np.ndarray]]]:
  """The frames ``save_frames`` wrote: ``(epochs, {name: [uint8 [H, W] per epoch]})``,
  ascending; ``([], {})`` when there are none.

  A damaged file (truncated by a full disk or a copy, not a zip, not ``[H, W]`` arrays) is
  skipped with a one-line warning naming it; so is a name that is not ``epoch_<int>.npz``.

  Raises:
    DataError: a file holds pickled objects (one line naming it; nothing is unpickled).
  """
  if not os.path.isdir(directory):
    return [], {}
  names = sorted(f for f in os.listdir(directory) if f.startswith("epoch_") and f.endswith(".npz"))
  epochs, frames = [], {}
  for name in names:
    try:
      epoch = int(name[len("epoch_"):-len(".npz")])
    except ValueError:
      logging.warning("kjax: skipping %s: not a frames file name (epoch_NNNN.npz)",
                      os.path.join(directory, name))
      continue
    arrays = _read(os.path.join(directory, name))
    if arrays is None:
      continue
    for k, a in arrays.items():
      frames.setdefault(k, []).append(a)
    epochs.append(epoch)
  return epochs, frames
