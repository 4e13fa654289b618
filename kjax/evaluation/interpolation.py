"""Interpolations (the GIFs of the anonymous "Variational Autoencoder" project post on KMNIST,
2023): between two encoded eval characters for models with an encoder, between two noise
draws for the others; and the training GIFs from ``frames/``."""

from __future__ import annotations

import os

import jax
import numpy as np

from kjax import figures
from kjax import frames as kframes
from kjax.evaluation import base

MAX_GIF_FRAMES = 40  # frames of a GIF over training (keeps report.html to a few MB)
METRIC_DOCS: dict[str, str] = {}


def encoded_interpolation(run: base.Run) -> base.Output:
  """``interpolation_encoded.png|gif``: decodings along the segment between the
  ``z_mean`` of two eval characters (same class for conditional models, else classes
  ``figures.interpolate_classes``)."""
  z_mean, _ = run.posterior()
  labels = run.eval_ds.labels
  if run.task.conditional:  # same class: the condition is fixed along the path
    same = np.flatnonzero(labels == labels[0])
    i, j = (0, same[1]) if len(same) > 1 else (0, 0)
  else:
    a, b = run.config.figures.get("interpolate_classes", (0, 1))
    ia, ib = np.flatnonzero(labels == a), np.flatnonzero(labels == b)
    i, j = (ia[0], ib[0]) if len(ia) and len(ib) else (0, min(1, len(labels) - 1))
  t = np.linspace(0.0, 1.0, 10, dtype=np.float32)[:, None]
  z = (1 - t) * z_mean[i] + t * z_mean[j]
  frames = run.decode(z, np.full(len(t), labels[i], np.int32),
                      np.full(len(t), run.styles[i], np.int32))[..., 0]
  strip = np.concatenate([run.x_eval[i:i + 1, ..., 0], frames, run.x_eval[j:j + 1, ..., 0]])
  title = (f"Between two encoded eval characters ({run.info.label(int(labels[i]))} → "
           f"{run.info.label(int(labels[j]))}); first and last: the originals\n{run.caption}")
  return base.Output(figures=run.relative(figures.plot_image_grid(
      run.figure_path("interpolation_encoded.png"), strip, len(strip), title))
      + run.relative(figures.save_gif(run.figure_path("interpolation_encoded.gif"), frames)))


def noise_interpolation(run: base.Run) -> base.Output:
  """``interpolation_noise.png|gif``: for models without an encoder, the segment between
  two noise draws, the first eval image's class, thin."""
  z = np.asarray(jax.random.normal(run.key("interp"), (2, run.task.latent_dim())))
  t = np.linspace(0.0, 1.0, 10, dtype=np.float32)[:, None]
  label = int(run.labels[0])
  frames = run.decode((1 - t) * z[0] + t * z[1], np.full(10, label, np.int32),
                      np.zeros(10, np.int32))[..., 0]
  return base.Output(figures=run.relative(figures.plot_image_grid(
      run.figure_path("interpolation_noise.png"), frames, len(frames),
      f"Between two noise draws, class {run.info.label(label)}, thin\n{run.caption}"))
      + run.relative(figures.save_gif(run.figure_path("interpolation_noise.gif"), frames)))


def training_gifs(run: base.Run) -> base.Output:
  """``training_<preview>.gif``: the previews of ``frames/`` over training (at most
  ``MAX_GIF_FRAMES`` epochs, evenly spaced, the first and the last included)."""
  epochs, frames = kframes.load_frames(os.path.join(run.workdir, kframes.FRAMES_DIR))
  keep = np.unique(np.linspace(0, len(epochs) - 1, MAX_GIF_FRAMES).round().astype(int))
  out = base.Output()
  for name, tiles in frames.items():
    out.figures += run.relative(figures.save_training_gif(
        run.figure_path(f"training_{name}.gif"), [tiles[i] for i in keep],
        [epochs[i] for i in keep]))
  if not frames:
    out.protocol["training_gifs"] = ("not drawn: no readable frames/ (run trained before "
                                      "they existed, or its files are damaged)")
  return out
